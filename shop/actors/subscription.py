"""My subscription: what the customer has, how to use it, the trial and auto-renewal.

The access shown comes from the fulfilment backend (a VPN panel's link, traffic and
device limit); while the fulfilment queue has not applied the latest change yet, the
customer reads that their access is being set up, never an error.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

from ..errors import FulfilmentFailed, NotFound
from ..fulfilment.qr import qr_png
from ..store import customers, fulfilment, subscriptions
from ..telegram.api import InputFile
from ..telegram.formatting import when
from ..telegram.types import CallbackQuery, Message
from . import screens

if TYPE_CHECKING:
    from .user import UserActor

log = logging.getLogger(__name__)


async def show_subscription(actor: UserActor, target: Message | None) -> None:
    app = actor.app
    subscription, auto_renew = await app.store.run(subscriptions.load_with_auto_renew, actor.id)
    access = None
    if subscription is not None and subscription.active(app.clock.now()):
        if await app.store.run(fulfilment.pending, actor.id) and app.fulfilment.name != "none":
            access = actor.t("access.pending")  # paid and recorded; the panel catches up
        else:
            try:
                access = await app.fulfilment.access_text(actor.id, actor.lang)
            except FulfilmentFailed as exc:  # the panel is down: the screen still shows
                log.warning("access of %s not shown: %s", actor.id, exc)
                access = actor.t("access.pending")
    plan = app.catalog.plan(subscription.plan_id) if subscription and subscription.plan_id else None
    screen = screens.subscription_screen(
        app.texts,
        actor.lang,
        subscription,
        app.clock.now(),
        app.config.timezone,
        access,
        plan.title(actor.lang) if plan else None,
        auto_renew,
        can_qr=access is not None and hasattr(app.fulfilment, "subscription_link"),
        can_relink=access is not None and hasattr(app.fulfilment, "reset_link"),
    )
    await actor.show(target, screen)


async def send_qr(actor: UserActor, target: Message | None) -> None:
    """``qr``: the subscription link as a QR code photo, to scan from another screen."""
    find_link = getattr(actor.app.fulfilment, "subscription_link", None)
    link = await find_link(actor.id) if find_link is not None else None
    if link is None:
        raise NotFound("qr")
    photo = InputFile("subscription.png", qr_png(link), "image/png")
    caption = f"<code>{html.escape(link)}</code>"
    params = {"chat_id": actor.id, "photo": photo, "caption": caption, "parse_mode": "HTML"}
    await actor.app.outbox.send("sendPhoto", params)


async def reset_link(
    actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
) -> bool:
    """``relink`` asks to be sure; ``relink:yes`` gets a new subscription link."""
    reset = getattr(actor.app.fulfilment, "reset_link", None)
    if reset is None or args not in ([], ["yes"]):
        raise NotFound(":".join(args))
    if not args:
        await actor.show(target, screens.relink_screen(actor.app.texts, actor.lang))
        return False
    try:
        done = await reset(actor.id)
    except FulfilmentFailed as exc:
        log.warning("link of %s not reset: %s", actor.id, exc)
        done = False
    await actor.answer(query, actor.t("relink.done" if done else "relink.failed"))
    await show_subscription(actor, target)
    return True


async def switch_auto_renew(
    actor: UserActor, query: CallbackQuery, target: Message | None, value: str
) -> None:
    """``auto:1`` / ``auto:0`` on My subscription."""
    if value not in ("0", "1"):
        raise NotFound(value)
    await actor.app.store.run(customers.set_auto_renew, actor.id, value == "1")
    await actor.answer(query, actor.t("autorenew.on" if value == "1" else "autorenew.off"))
    await show_subscription(actor, target)


async def take_trial(actor: UserActor, query: CallbackQuery, target: Message | None) -> None:
    app, days = actor.app, actor.app.catalog.trial_days
    granted = None
    if days:
        granted = await app.store.run(subscriptions.take_trial, actor.id, days, app.clock.now())
    actor.trial_open = False
    if granted is None or granted.expires_at is None:
        await actor.answer(query, actor.t("trial.unavailable"))
        await actor.show(target, actor.menu())
        return
    await actor.answer(query)
    date = when(granted.expires_at, app.config.timezone, actor.lang)
    await actor.send_text(actor.t("trial.granted", date=date))
    app.fulfilment_due.poke()  # the trial's queue row was written with it
