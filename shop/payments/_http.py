"""What the four provider modules share: one way to call an API, and typed JSON reads.

:func:`call_api` sends one request and maps every failure onto the errors of
:mod:`shop.payments.base`:

- no answer (connection error, timeout), a 5xx, 408, 425 or 429, or an answer that is
  not a JSON object -> :class:`ProviderUnavailable` (worth retrying later);
- any other 4xx -> :class:`ProviderRefused`, with the provider's own error text.

Messages never carry credentials: httpx exception text can name URLs and headers, so
only the exception's class name is kept, and the provider's error text is cut short.

:func:`retrying` repeats a call that failed with :class:`ProviderUnavailable`. Use it
only for calls that are safe to repeat: reading a status, and creating a payment at a
provider whose create is idempotent (``provider.idempotent_create``).
"""

from __future__ import annotations

import hmac
import json
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import httpx
import trio

from ..money import MoneyError, exponent, to_decimal, to_minor
from .base import MalformedWebhook, ProviderRefused, ProviderUnavailable

T = TypeVar("T")

#: 4xx answers that mean "not now" rather than "not like this".
RETRYABLE_4XX = frozenset({408, 425, 429})
#: Longest provider error text kept in an exception message.
MAX_ERROR_TEXT = 300
#: What a currency code or crypto asset may look like when the shop does not know it:
#: it is stored with the event, so it is kept short and plain.
_CURRENCY_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")


class Fields:
    """Typed reads from one decoded JSON object.

    A missing or mistyped field raises the exception ``fail(message)`` builds, so a
    webhook reader raises :class:`MalformedWebhook` and an API reader raises
    :class:`ProviderUnavailable` without checking each field by hand.
    """

    def __init__(
        self, data: Mapping[str, object], fail: Callable[[str], Exception], where: str = ""
    ) -> None:
        self.data, self._fail, self._where = data, fail, where

    def error(self, message: str) -> Exception:
        return self._fail(f"{self._where}{message}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # ids arrive as numbers at some providers
        raise self.error(f"{key} is missing or not a string")

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self.error(f"{key} is missing or not an integer")

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if isinstance(value, bool):
            return value
        raise self.error(f"{key} is not a boolean")

    def section(self, key: str) -> Fields:
        value = self.data.get(key)
        if isinstance(value, Mapping):
            return Fields(value, self._fail, f"{self._where}{key}.")
        raise self.error(f"{key} is missing or not an object")

    def optional_section(self, key: str) -> Fields:
        """The object under ``key``, or an empty one when it is absent or null."""
        return self.section(key) if self.has(key) else Fields({}, self._fail, self._where)

    def items(self, key: str) -> list[Fields]:
        value = self.data.get(key)
        if not isinstance(value, list):
            raise self.error(f"{key} is missing or not a list")
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self.error(f"{key}[{index}] is not an object")
            items.append(Fields(item, self._fail, f"{self._where}{key}[{index}]."))
        return items

    def currency(self, key: str) -> str:
        """An ISO code or asset the shop knows (``shop.money.EXPONENTS``), upper-cased."""
        code = self.text(key).upper()
        try:
            exponent(code)
        except MoneyError:
            raise self.error(f"{key}: unknown currency {code!r}") from None
        return code

    def currency_code(self, key: str) -> str:
        """A currency code or asset, upper-cased, whether or not the shop knows it.

        For webhooks: an authentic event in a currency the shop does not use must still be
        stored and answered 200 (the provider would retry it for days), so only the shape
        of the code is checked here.
        """
        code = self.text(key)
        if not _CURRENCY_CODE.fullmatch(code):
            raise self.error(f"{key} is not a currency code")
        return code.upper()

    def minor(self, key: str, currency: str) -> int:
        """A decimal amount (string, or integer) in minor units of ``currency``."""
        value = self.data.get(key)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.error(f"{key} is missing or not a decimal string")
        try:
            return to_minor(value, currency)
        except MoneyError as error:
            raise self.error(f"{key}: {error}") from None

    def minor_if_known(self, key: str, currency: str) -> int | None:
        """Like :meth:`minor`, but None for a currency the shop does not know: it has no
        minor unit there, so the amount cannot be expressed (it is still checked to be a
        number)."""
        try:
            exponent(currency)
        except MoneyError:
            self.decimal(key)
            return None
        return self.minor(key, currency)

    def decimal(self, key: str) -> Decimal:
        """A finite decimal amount (string, or integer), in any currency."""
        value = self.data.get(key)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.error(f"{key} is missing or not a decimal string")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.error(f"{key}: {value!r} is not a number") from None
        if not number.is_finite():
            raise self.error(f"{key}: {value!r} is not a number")
        return number


def load_webhook(provider: str, body: bytes) -> Fields:
    """A webhook body as :class:`Fields` that raise :class:`MalformedWebhook`."""

    def malformed(message: str) -> Exception:
        return MalformedWebhook(f"{provider}: {message}")

    return Fields(_decode(body, malformed), malformed)


def decimal_text(minor: int, currency: str, *, trim: bool = False) -> str:
    """``29900 RUB`` -> ``"299.00"``; with ``trim``, ``5_000_000 USDT`` -> ``"5"``."""
    value = to_decimal(minor, currency)
    return format(value.normalize() if trim else value, "f")  # "f": never "1E+2"


def equal_digests(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex digests; any text is safe to pass."""
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8", "replace"))


async def call_api(
    http: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    json_body: object = None,
    form: Mapping[str, str] | None = None,
    content: bytes | None = None,
) -> Fields:
    """Send one request; return the JSON object answered with a 2xx, or raise.

    The returned :class:`Fields` raise :class:`ProviderUnavailable`: an answer without
    the fields the provider documents is not one the shop can act on.
    """
    try:
        response = await http.request(
            method,
            url,
            headers=headers,
            auth=auth,
            json=json_body,
            data=form,
            content=content,
        )
    except httpx.HTTPError as error:
        # str(error) can name the URL and, for some errors, the request: keep the class.
        raise ProviderUnavailable(provider, f"no answer ({type(error).__name__})") from None

    def unavailable(message: str) -> Exception:
        return ProviderUnavailable(provider, message)

    status = response.status_code
    if 200 <= status < 300:
        return Fields(_decode(response.content, unavailable), unavailable)
    detail = error_text(response.content) or response.reason_phrase
    message = f"HTTP {status}: {detail}"
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        raise ProviderRefused(provider, message)
    raise ProviderUnavailable(provider, message)


def error_text(body: bytes) -> str:
    """The human part of an error answer, in any of the providers' shapes.

    YooKassa ``{"description"}``, Stripe ``{"error": {"message"}}``, Crypto Pay
    ``{"error": {"name"}}``, Heleket ``{"message", "errors"}``.
    """
    try:
        answer = load_json(body)
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    parts: list[str] = []
    error = answer.get("error")
    if isinstance(error, dict):
        parts += [str(error[k]) for k in ("code", "name", "message") if error.get(k)]
    elif isinstance(error, str):
        parts.append(error)
    parts += [str(answer[k]) for k in ("code", "description", "message") if answer.get(k)]
    if isinstance(errors := answer.get("errors"), dict):
        parts += [f"{field}: {problem}" for field, problem in errors.items()]
    return "; ".join(parts)[:MAX_ERROR_TEXT]


def load_json(body: bytes) -> object:
    """``json.loads``, raising ValueError for every body it cannot read.

    Python's decoder recurses once per level of nesting and raises RecursionError for a
    body like ``[[[[…]]]]`` (a few thousand levels fit in 64 KiB): without this, such a
    body would be a 500 rather than a 400.
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _decode(body: bytes, fail: Callable[[str], Exception]) -> Mapping[str, object]:
    try:
        data = load_json(body)
    except ValueError:
        raise fail("the body is not JSON") from None
    if not isinstance(data, dict):
        raise fail("the body is not a JSON object")
    return data


async def retrying(
    call: Callable[[], Awaitable[T]],
    attempts: int = 3,
    *,
    rng: random.Random,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
) -> T:
    """``await call()``, repeated on :class:`ProviderUnavailable` up to ``attempts`` times.

    Waits ``first_delay * 2**n`` seconds (at most ``max_delay``) before repeat ``n+1``,
    scaled by a random factor in [0.5, 1) so that many callers do not retry in step.
    Other errors, :class:`ProviderRefused` and ``CircuitOpen`` included, pass at once.
    """
    for attempt in range(attempts - 1):
        try:
            return await call()
        except ProviderUnavailable:
            delay = min(max_delay, first_delay * 2**attempt)
            await trio.sleep(delay * (0.5 + rng.random() / 2))
    return await call()
