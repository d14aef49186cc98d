"""What a feature's screens may do with the person they talk to: a narrow interface.

The UserActor implements it; feature modules (``shop.admin``...) are written against it,
so they never import the actor, and the actor imports them. ``awaiting`` is what the
next plain text message answers (an amount an operator was asked for, a broadcast being
composed). It lives in the actor and, with Redis (``REDIS_URL``), also there for an hour
(:func:`encode`, :func:`decode`), so that the next message finds it on another instance,
after a restart or after the actor was passivated. Without Redis those forget a
half-typed answer, never an action: actions are done by the message that completes them.
Handlers are resumable only if registered with :func:`resumable`, with their state's type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import attrs
import cattrs
import orjson

from ..app import App
from ..limits import key_prefix
from ..telegram.types import CallbackQuery, Message
from .screens import Screen


@attrs.frozen
class Awaiting:
    """The next text message goes to ``handler`` (with ``state``) instead of the shop."""

    handler: Callable[[Conversation, Message, Any], Awaitable[None]]
    state: Any = None


Handler = Callable[["Conversation", Message, Any], Awaitable[None]]
H = TypeVar("H", bound=Handler)

#: How long a question waits for its answer in Redis.
KEPT_FOR = 3600
_RESUMABLE: dict[str, tuple[Handler, type | None]] = {}
_converter = cattrs.Converter()


def resumable(state: type | None = None) -> Callable[[H], H]:
    """Register a handler (whose state is a ``state``, or None) so that a question can
    outlive its actor."""

    def register(handler: H) -> H:
        _RESUMABLE[f"{handler.__module__}.{handler.__qualname__}"] = (handler, state)
        return handler

    return register


async def recall(app: App, telegram_id: int) -> Awaiting | None:
    """The question kept in Redis for this person, if any (and Redis is there)."""
    if app.redis is None:
        return None
    saved = await app.redis.get(_key(app, telegram_id))
    return None if saved is None else decode(saved)


async def remember(app: App, telegram_id: int, awaiting: Awaiting | None) -> None:
    """Keep (or, with None or one that cannot be resumed, forget) the question in Redis."""
    if app.redis is not None:
        await app.redis.put(_key(app, telegram_id), encode(awaiting), ttl=KEPT_FOR)


def _key(app: App, telegram_id: int) -> str:
    return f"{key_prefix(app.config)}conv:{telegram_id}"


def encode(awaiting: Awaiting | None) -> bytes | None:
    """``awaiting`` as JSON for Redis; None if there is nothing (or nothing resumable)."""
    if awaiting is None:
        return None
    name = f"{awaiting.handler.__module__}.{awaiting.handler.__qualname__}"
    if name not in _RESUMABLE:
        return None
    return orjson.dumps({"handler": name, "state": _converter.unstructure(awaiting.state)})


def decode(data: bytes) -> Awaiting | None:
    """What :func:`encode` wrote, or None if it no longer makes sense (a handler renamed)."""
    try:
        saved = orjson.loads(data)
        handler, state_type = _RESUMABLE[saved["handler"]]
        if state_type is None:
            return Awaiting(handler)
        return Awaiting(handler, _converter.structure(saved["state"], state_type))
    except (ValueError, TypeError, KeyError, cattrs.BaseValidationError):
        return None


@attrs.frozen
class BanChanged:
    """Told to a customer's actor when an operator banned or unbanned them."""

    banned: bool


class Conversation(Protocol):
    app: App
    id: int
    awaiting: Awaiting | None

    @property
    def lang(self) -> str: ...

    def t(self, key: str, **params: object) -> str: ...

    async def answer(
        self, query: CallbackQuery, text: str | None = None, *, alert: bool = False
    ) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def show_new(self, screen: Screen) -> None: ...

    async def show(self, target: Message | None, screen: Screen) -> None: ...
