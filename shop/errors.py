"""The shop's exceptions.

Every error the shop raises on purpose derives from :class:`ShopError`::

    * ShopError
      + ConfigError          - the environment or the catalog is invalid (exit 2)
      + StartupFailed        - the shop cannot start (exit ``code``)
      + ActorError
      | - AskTimeout         - an actor did not answer in time
      | - ShuttingDown       - the runtime no longer takes messages
      + DomainError
      | - NotFound           - a reference names nothing this customer owns
      | - InsufficientBalance
      + StoreError
      | - StoreUnavailable   - the database cannot be reached
      | - UnstorableData     - the database refuses a value as data
      + TelegramError        - the Bot API answered an error, or did not answer
      | - RetryAfter         - 429 flood control: wait ``retry_after`` seconds
      | - MigrateToChat      - a group became a supergroup with a new id
      | - BadRequest         - 400 (``not_modified`` when an edit changed nothing)
      | - Unauthorized       - 401: the token is wrong or revoked
      | - Forbidden          - 403: the customer blocked the bot or deleted the account
      | - TelegramNotFound   - 404: unknown method
      | - Conflict           - 409: another poller, or a webhook is set
      | - EntityTooLarge     - 413
      | - TelegramServerError - 5xx, or an answer that is not the Bot API's
      | - TelegramNetworkError - no answer at all (connection, timeout)
      + ProviderError        - see :mod:`shop.payments` for payment providers
      + FulfilmentFailed     - a backend (VPN panel, channel) could not apply access

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


class StartupFailed(ShopError):
    """Raised when the shop cannot start; ``code`` is the process exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


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


class StoreError(ShopError):
    """Base class of database failures."""


class StoreUnavailable(StoreError):
    """Raised when the database cannot be reached."""


class UnstorableData(StoreError):
    """Raised when the database refuses a value as data (an invalid character, say)."""


class TelegramError(ShopError):
    """Raised when the Bot API answers an error; ``code`` and ``description`` as sent."""

    def __init__(self, method: str, code: int, description: str) -> None:
        self.method, self.code, self.description = method, code, description
        super().__init__(f"{method}: {code} {description}")


class RetryAfter(TelegramError):
    """Raised on flood control; the same call may be repeated after ``retry_after`` s."""

    def __init__(self, method: str, code: int, description: str, retry_after: int) -> None:
        super().__init__(method, code, description)
        self.retry_after = retry_after


class MigrateToChat(TelegramError):
    """Raised when a group was upgraded; repeat the call with ``chat_id`` set to the new id."""

    def __init__(self, method: str, code: int, description: str, migrate_to_chat_id: int) -> None:
        super().__init__(method, code, description)
        self.migrate_to_chat_id = migrate_to_chat_id


class BadRequest(TelegramError):
    """Raised on 400: the call was wrong, or (``not_modified``) changed nothing."""

    @property
    def not_modified(self) -> bool:
        return "message is not modified" in self.description


class Unauthorized(TelegramError):
    """Raised on 401: Telegram does not accept the bot token."""


class Forbidden(TelegramError):
    """Raised on 403: the customer blocked the bot, or the account is deactivated."""


class TelegramNotFound(TelegramError):
    """Raised on 404: the method does not exist (or the token's URL is wrong)."""


class Conflict(TelegramError):
    """Raised on 409: another getUpdates poller runs for this token, or a webhook is set."""


class EntityTooLarge(TelegramError):
    """Raised on 413: the request is too large."""


class TelegramServerError(TelegramError):
    """Raised on 5xx, or when the answer is not a Bot API answer at all."""


class TelegramNetworkError(TelegramError):
    """Raised when no answer arrived: connection refused or reset, or a timeout."""

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(method, 0, reason)


class FulfilmentFailed(ShopError):
    """Raised when a fulfilment backend could not apply an access state (tried again later)."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend}: {reason}")
        self.backend = backend
        self.reason = reason
