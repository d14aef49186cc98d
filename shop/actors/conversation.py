"""What a feature's screens may do with the person they talk to: a narrow interface.

The UserActor implements it; feature modules (``shop.admin``...) are written against it,
so they never import the actor, and the actor imports them. ``awaiting`` is what the
next plain text message answers (an amount an operator was asked for, a broadcast being
composed); it lives in memory only, so a restart forgets a half-typed answer, never an
action: actions are done by the message that completes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from ..app import App
from ..telegram.types import CallbackQuery, Message
from .screens import Screen


@attrs.frozen
class Awaiting:
    """The next text message goes to ``handler`` (with ``state``) instead of the shop."""

    handler: Callable[[Conversation, Message, Any], Awaitable[None]]
    state: Any = None


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
