"""``/newpromo CODE KIND VALUE [uses=N] [until=YYYY-MM-DD] [new]``: a promo code from the
operator's chat, checked as the promos API checks it, with an audit row.

``KIND`` is ``days``, ``balance`` (``VALUE`` an amount with its currency: ``100XTR`` or
``2.50USD``) or ``discount`` (a percent); ``until`` is the last day it works, in the
shop's time zone; ``new`` limits it to customers who never paid.
"""

from __future__ import annotations

import datetime as dt
import html
import re

from ..actors.conversation import Conversation
from ..growth.offers import Invalid, checked_code, checked_moment, checked_offer, whole_in
from ..store import audit, codes
from ..store.pool import Connection
from ..telegram.types import Message
from .keys import act

USAGE = (
    "Usage: <code>/newpromo CODE KIND VALUE [uses=N] [until=YYYY-MM-DD] [new]</code>\n"
    "KIND: days (VALUE days), balance (VALUE like 100XTR), discount (VALUE percent)."
)
_AMOUNT = re.compile(r"([0-9.]+)([A-Za-z]{3,4})")


async def create(conv: Conversation, message: Message, argument: str) -> None:
    words = argument.split()
    try:
        if len(words) < 3:
            raise Invalid("a code, a kind and a value are needed")
        code, kind, value, *options = words
        currency = None
        if kind == "balance":
            amount = _AMOUNT.fullmatch(value)
            if amount is None:
                raise Invalid("a balance code's value is an amount with its currency: 100XTR")
            value, currency = amount.group(1), amount.group(2).upper()
        offer = checked_offer(kind, value, currency)
        uses, until, new_only = None, None, False
        for option in options:
            name, _, given = option.partition("=")
            if name == "uses":
                uses = whole_in(given, "uses", 1, 10**8)
            elif name == "until":
                until = _end_of(given, conv)
            elif option == "new":
                new_only = True
            else:
                raise Invalid(f"unknown option {option}")
        checked = checked_code(code)
    except Invalid as exc:
        await conv.send_text(f"{html.escape(str(exc))}.\n{USAGE}")
        return
    key = f"msg:{message.chat.id}:{message.message_id}"
    made = await conv.app.store.run(
        _create, act(conv, key), checked, offer.kind, offer.value, offer.currency, uses, until,
        new_only,
    )  # fmt: skip
    if made:
        await conv.send_text(f"Promo code <code>{html.escape(checked)}</code> created.")
    else:
        await conv.send_text(f"<code>{html.escape(checked)}</code> exists already.")


def _end_of(day: str, conv: Conversation) -> dt.datetime:
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise Invalid("until must be a date: YYYY-MM-DD") from None
    zone = conv.app.config.timezone
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), zone)
    moment = checked_moment(end.isoformat(), "until", conv.app.clock.now())
    assert moment is not None
    return moment


def _create(
    conn: Connection,
    act: audit.Act,
    code: str,
    kind: str,
    value: int,
    currency: str | None,
    uses: int | None,
    until: dt.datetime | None,
    new_only: bool,
) -> bool:
    row_id = audit.begin(conn, act, "promo", code)
    if row_id is None:
        return True  # this very message made it before (a replay)
    made = codes.create_promo(
        conn, code, kind, value, currency, uses, until, new_only, act.admin_id, act.now
    )
    after = {"kind": kind, "value": value, "currency": currency, "max_uses": uses,
             "expires_at": until, "new_only": new_only, "created": made}  # fmt: skip
    audit.settle(conn, row_id, None, after)
    return made
