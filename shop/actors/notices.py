"""Messages sent to a customer when something happens to their money or access."""

from __future__ import annotations

from ..app import App
from ..store.payments import Grant, Refund
from ..telegram.formatting import money, when
from ..telegram.outbox import Lane


async def fulfilled(app: App, grant: Grant) -> None:
    """The one confirmation of a completed payment, with the new expiry or balance."""
    t, lang, payment = app.texts, grant.language, grant.payment
    lines = [t(lang, "paid.title", title=payment.title)]
    subscription = grant.subscription
    if subscription is not None:
        if subscription.lifetime or subscription.expires_at is None:
            lines.append(t(lang, "paid.lifetime"))
        else:
            expiry = when(subscription.expires_at, app.config.timezone, lang)
            lines.append(t(lang, "paid.until", date=expiry))
    for currency, amount in sorted(payment.credit.items()):
        lines.append(
            t(
                lang,
                "paid.credited",
                amount=money(amount, currency, lang),
                balance=money(grant.balances.get(currency, 0), currency, lang),
            )
        )
    await tell(app, payment.telegram_id, "\n".join(lines))


async def refunded(app: App, refund: Refund) -> None:
    t, lang, payment = app.texts, refund.language, refund.payment
    lines = [t(lang, "refund.title", amount=money(payment.amount, payment.currency, lang))]
    subscription = refund.subscription
    if subscription is not None and subscription.expires_at is not None:
        if subscription.active(app.clock.now()):
            expiry = when(subscription.expires_at, app.config.timezone, lang)
            lines.append(t(lang, "refund.until", date=expiry))
        else:
            lines.append(t(lang, "refund.ended"))
    await tell(app, payment.telegram_id, "\n".join(lines))


async def tell(app: App, telegram_id: int, text: str, lane: Lane = Lane.INTERACTIVE) -> None:
    params = {"chat_id": telegram_id, "text": text, "parse_mode": "HTML"}
    await app.outbox.send("sendMessage", params, lane=lane)
