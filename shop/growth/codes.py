"""Entering a code: ``/promo CODE``, the 🎟 button, or a link ``/start v_<code>`` (a
voucher) or ``/start g_<code>`` (a gift). Every outcome gets a clear answer; redeeming is
once per customer and within the code's limit, whatever the concurrency (``store.codes``).
"""

from __future__ import annotations

from ..actors.conversation import Awaiting, Conversation, resumable
from ..actors.screens import Screen, back
from ..store import codes
from ..store.codes import CodeRefused
from ..telegram.formatting import money, when
from ..telegram.keyboards import button, keyboard
from ..telegram.outbox import Lane
from ..telegram.types import Message


async def ask(conv: Conversation, target: Message | None) -> None:
    """The 🎟 button: the next message is the code."""
    conv.awaiting = Awaiting(_typed)
    screen = Screen("promo", conv.t("promo.ask"), keyboard(back(conv.app.texts, conv.lang)))
    await conv.show(target, screen)


@resumable()
async def _typed(conv: Conversation, message: Message, state: object) -> None:
    await redeem(conv, message.text or "")


async def redeem(conv: Conversation, code_text: str) -> None:
    app = conv.app
    try:
        redeemed = await app.store.run(
            codes.redeem, code_text, conv.id, app.clock.now(), app.instance
        )
    except CodeRefused as exc:
        await conv.send_text(conv.t(f"code.refused.{exc.reason}"))
        return
    if redeemed.notice is not None:  # a gift's buyer is told it was redeemed
        await app.courier.deliver([redeemed.notice], Lane.INTERACTIVE)
    code = redeemed.code
    if code.kind == "days":
        app.fulfilment_due.poke()  # the subscription trigger queued the change
        expires = redeemed.expires_at
        date = when(expires, app.config.timezone, conv.lang) if expires else ""
        text = conv.t("code.days", days=code.value, date=date)
        rows = [[button(conv.t("btn.subscription"), "sub")]]
    elif code.kind == "balance":
        assert code.currency is not None
        assert redeemed.balance is not None
        text = conv.t(
            "code.balance",
            amount=money(code.value, code.currency, conv.lang),
            balance=money(redeemed.balance, code.currency, conv.lang),
        )
        rows = [[button(conv.t("btn.balance"), "bal")]]
    else:
        text = conv.t("code.discount", percent=code.value)
        rows = [[button(conv.t("btn.buy"), "buy")]]
    await conv.show_new(Screen("promo", text, keyboard(*rows, back(app.texts, conv.lang))))
