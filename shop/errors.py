"""The shop's exceptions.

Every error the shop raises on purpose derives from :class:`ShopError`::

    * ShopError
      + ConfigError          - the environment or the catalog is invalid (exit 2)
      + ActorError
      | - AskTimeout         - an actor did not answer in time
      | - ShuttingDown       - the runtime no longer takes messages
      + DomainError
      | - NotFound           - a reference names nothing this customer owns
      | - InsufficientBalance
      | - InvalidTransition  - a payment event that its state does not allow
      + StoreError
      | - StoreUnavailable   - the database cannot be reached
      + TelegramError        - see :mod:`shop.telegram.api` for the Bot API family
      + ProviderError        - see :mod:`shop.payments` for payment providers

Errors carry their data as attributes so callers can act on them without parsing text.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


class ShopError(Exception):
    """Base class of every error the shop raises on purpose."""


class ConfigError(ShopError):
    """Raised when configuration is invalid; ``problems`` lists every one found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    def render(self) -> str:
        lines = ["shop: invalid configuration:"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


class ActorError(ShopError):
    """Base class of errors raised by the actor runtime itself."""


class AskTimeout(ActorError):
    """Raised when an actor did not answer an ``ask`` within its timeout."""

    def __init__(self, kind: str, key: Hashable, message: object, timeout: float) -> None:
        self.kind, self.key, self.message, self.timeout = kind, key, message, timeout
        super().__init__(
            f"{kind}[{key}] did not answer {type(message).__name__} within {timeout:g} s"
        )


class ShuttingDown(ActorError):
    """Raised when a message is sent after the runtime stopped taking new work."""


class DomainError(ShopError):
    """Base class of business-rule refusals that a customer can be told about."""


class NotFound(DomainError):
    """Raised when a reference names nothing that the asking customer owns."""


class InsufficientBalance(DomainError):
    """Raised when a balance does not cover a purchase."""

    def __init__(self, currency: str, needed: int, available: int) -> None:
        self.currency, self.needed, self.available = currency, needed, available
        super().__init__(f"need {needed} {currency}, have {available}")


class InvalidTransition(DomainError):
    """Raised when a payment event is not allowed in the payment's current state."""

    def __init__(self, payment_id: str, state: str, event: str) -> None:
        self.payment_id, self.state, self.event = payment_id, state, event
        super().__init__(f"payment {payment_id}: {event} is not allowed in state {state}")


class StoreError(ShopError):
    """Base class of database failures."""


class StoreUnavailable(StoreError):
    """Raised when the database cannot be reached."""
