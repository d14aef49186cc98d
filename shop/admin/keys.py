"""Once-only keys for operator actions (see ``store.audit``)."""

from __future__ import annotations

import secrets

from ..actors.conversation import Conversation
from ..store.audit import Act


def nonce() -> str:
    """A key for one button as drawn: pressing it twice is one action."""
    return secrets.token_urlsafe(6)


def act(conv: Conversation, key: str) -> Act:
    return Act(key, conv.id, conv.app.clock.now())
