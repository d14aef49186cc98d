"""Remnawave's request schemas and error codes, per major, transcribed from the contract.

Sources (``remnawave/backend``; 2.8.1 = ba518681, 3.3.2 = 347e6de1):

- ``libs/contract/commands/users/create-user.command.ts`` and ``update-user.command.ts``
- ``libs/contract/commands/users/actions/revoke-user-subscription.command.ts`` and, 3.x only,
  ``actions/extend-user.command.ts``
- ``libs/contract/commands/users/get-users-stream.command.ts``
- path parameters: 2.8.1 ``get-user-by-uuid.command.ts`` (``z.string().uuid()``) and
  ``get-by/get-user-by-id.command.ts`` (``z.coerce.bigint()``); 3.3.2
  ``models/path-params.schema.ts`` (``numberParamSchema = z.coerce.number().positive()``)
- ``libs/contract/constants/errors/errors.ts`` (the codes used here are identical at both tags)
- ``libs/contract/constants/users/status/status.constant.ts`` and
  ``reset-periods/reset-periods.constant.ts``
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from . import _zod as z

USERS_STATUS = ("ACTIVE", "DISABLED", "LIMITED", "EXPIRED")
RESET_PERIODS = ("NO_RESET", "DAY", "WEEK", "MONTH", "MONTH_ROLLING")

#: ``ERRORS`` entries the users API answers with: name -> (code, message, HTTP status).
ERRORS = {
    "CREATE_USER_ERROR": ("A018", "Failed to create user", 500),
    "USER_USERNAME_ALREADY_EXISTS": ("A019", "User username already exists", 400),
    "USER_SHORT_UUID_ALREADY_EXISTS": ("A020", "User short UUID already exists", 400),
    "GET_ALL_USERS_ERROR": ("A024", "Get all users error", 500),
    "USER_NOT_FOUND": ("A025", "User not found", 404),
    "GET_USER_BY_ERROR": ("A026", "Get user by error", 500),
    "REVOKE_USER_SUBSCRIPTION_ERROR": ("A027", "Revoke user subscription error", 500),
    "DISABLE_USER_ERROR": ("A028", "Disable user error", 500),
    "USER_ALREADY_DISABLED": ("A029", "User already disabled", 400),
    "USER_ALREADY_ENABLED": ("A030", "User already enabled", 400),
    "ENABLE_USER_ERROR": ("A031", "Enable user error", 500),
    "DELETE_USER_ERROR": ("A037", "Delete user error", 500),
    "UPDATE_USER_ERROR": ("A039", "Update user error", 500),
    "RESET_USER_TRAFFIC_ERROR": ("A056", "Reset user traffic error", 500),
    "GET_USER_BY_UNIQUE_FIELDS_NOT_FOUND": ("A063", "User with specified params not found", 404),
}

USERNAME = r"[a-zA-Z0-9_-]+"
TAG = r"[A-Z0-9_]+"
PAST = "Expiration date cannot be in the past"  # update-user.command.ts, both tags


def _username(major: int) -> z.Schema:
    checks = (
        z.regex(USERNAME, "Username can only contain letters, numbers, underscores and dashes"),
        z.max_length(36, "Username must be less than 36 characters"),
        z.min_length(3, "Username must be at least 3 characters"),
    )
    if major < 3:
        return z.string(
            *checks, type_error="Username must be a string", required="Username is required"
        )
    return z.string(*checks)


def _tag() -> z.Schema:
    return z.optional(
        z.nullable(
            z.string(
                z.regex(TAG, "Tag can only contain uppercase letters, numbers, underscores"),
                z.max_length(16, "Tag must be less than 16 characters"),
            )
        )
    )


def _password(label: str, type_error: str | None) -> z.Schema:
    return z.optional(
        z.string(
            z.min_length(8, f"{label} password must be at least 8 characters"),
            z.max_length(32, f"{label} password must be less than 32 characters"),
            type_error=type_error,
        )
    )


def create_user(major: int) -> z.Schema:
    """``CreateUserCommand.RequestSchema`` (2.8.1) / ``RequestBodySchema`` (3.3.2)."""
    v3 = major < 3
    bad_date = "Invalid date format" if v3 else None
    uuid = z.string(z.fmt("uuid"))
    fields: dict[str, z.Schema] = {
        "username": _username(major),
        "status": z.optional(z.enum(USERS_STATUS), "ACTIVE"),
        "shortUuid": z.optional(z.string(type_error="Short UUID must be a string" if v3 else None)),
        "trojanPassword": _password("Trojan", "Trojan password must be a string" if v3 else None),
        "vlessUuid": z.optional(
            z.string(
                z.fmt("uuid" if v3 else "guid", "Invalid Vless UUID format"),
                type_error="Vless UUID must be a string" if v3 else None,
            )
        ),
        "ssPassword": _password("SS", "SS password must be a string" if v3 else None),
        "trafficLimitBytes": z.optional(
            z.number(
                z.gte(0, "Traffic limit must be greater than 0"),
                type_error="Traffic limit must be a number" if v3 else None,
            )
        ),
        "trafficLimitStrategy": z.optional(z.enum(RESET_PERIODS), "NO_RESET"),
        "expireAt": z.datetime(
            bad_date, type_error=bad_date, required="Expiration date is required" if v3 else None
        ),
        "createdAt": z.optional(z.datetime(bad_date, type_error=bad_date)),
        "lastTrafficResetAt": z.optional(z.datetime(bad_date, type_error=bad_date)),
        "description": z.optional(z.string()),
        "tag": _tag(),
        # 2.8.1: z.number().int(); 3.3.2: z.number() (a fraction fails later, in BigInt()).
        "telegramId": z.nullish(z.number(integer=v3)),
        "email": z.nullish(z.string(z.fmt("email", "Invalid email format" if v3 else None))),
        "hwidDeviceLimit": z.optional(
            z.number(
                z.gte(0, "Device limit must be greater than 0" if v3 else None),
                integer=True,
                int_error="Device limit must be an integer" if v3 else None,
                type_error="Device limit must be a number" if v3 else None,
            )
        ),
        "activeInternalSquads": z.optional(
            z.array(uuid, type_error="Enabled internal squads must be an array" if v3 else None)
        ),
        "externalSquadUuid": z.optional(z.nullable(uuid)),
    }
    if v3:
        fields["uuid"] = z.optional(uuid)  # 3.0 dropped it: zod strips the key
    return z.obj(fields)


def update_user(major: int, now: Callable[[], dt.datetime]) -> z.Schema:
    """``UpdateUserCommand``: partial, by ``uuid`` or ``username`` (2.x), ``id`` or
    ``username`` (3.x); ``expireAt`` must be later than the server's clock."""
    v3 = major < 3
    uuid = z.string(z.fmt("uuid"))
    status_error = (
        "You can't change status to LIMITED or EXPIRED. These statuses handled by Remnawave."
    )
    fields: dict[str, z.Schema] = {"username": z.optional(z.string())}
    if v3:
        fields["uuid"] = z.optional(uuid)
    else:
        fields["id"] = z.optional(z.number())
    fields |= {
        "status": z.optional(z.enum(("ACTIVE", "DISABLED"), status_error if v3 else None)),
        "trafficLimitBytes": z.optional(
            z.number(
                z.gte(0, "Traffic limit must be greater than 0" if v3 else None),
                type_error="Traffic limit must be a number" if v3 else None,
            )
        ),
        "trafficLimitStrategy": z.optional(z.enum(RESET_PERIODS)),
        "expireAt": z.optional(
            z.refine(
                z.datetime("Invalid date format" if v3 else None),
                lambda date: date > now(),
                PAST,
            )
        ),
        "description": z.optional(z.nullable(z.string())),
        "tag": _tag(),
        "telegramId": z.nullish(z.number(integer=v3)),
        "email": z.nullish(z.string(z.fmt("email", "Invalid email format" if v3 else None))),
        "hwidDeviceLimit": z.nullish(
            z.number(z.gte(0, "Device limit must be non-negative" if v3 else None), integer=True)
        ),
        "activeInternalSquads": z.optional(
            z.array(
                uuid,
                type_error="Enabled internal squads must be an array of UUIDs" if v3 else None,
            )
        ),
        "externalSquadUuid": z.optional(z.nullable(uuid)),
    }
    if v3:
        check = (
            lambda d: bool(d.get("uuid") or d.get("username")),
            "Either uuid or username must be provided",
        )
    else:
        # ``d.username ?? d.id`` then JavaScript truthiness: "" and 0 fail too.
        check = (
            lambda d: bool(d["username"] if d.get("username") is not None else d.get("id")),
            "At least one of username, id must be provided",
        )
    return z.obj(fields, check=check)


def revoke(major: int) -> z.Schema:
    """``RevokeUserSubscriptionCommand.RequestBodySchema`` (``z.preprocess(val => val || {},
    ...)``)."""
    if major < 3:
        short = z.string(
            z.min_length(6, "Short UUID must be at least 6 characters"),
            z.max_length(48, "Short UUID must be at most 48 characters"),
        )
    else:
        short = z.string(z.min_length(16), z.max_length(64))
    inner = z.obj(
        {
            "revokeOnlyPasswords": z.optional(z.boolean(), False),
            "shortUuid": z.optional(short),
        }
    )

    def parse(issues: z.Issues, path: z.Path, value: Any) -> Any:
        falsy = value is z.MISSING or value in (None, False, 0, "")
        return inner(issues, path, {} if falsy else value)

    return parse


def extend() -> z.Schema:
    """3.x ``ExtendUserCommand.RequestBodySchema``: ``{days: z.number().min(1)}``."""
    return z.obj({"days": z.number(z.gte(1))})


def stream_query(major: int) -> z.Schema:
    """``GetUsersStreamCommand.RequestQuerySchema``. 2.8.1 takes only ``cursor`` and
    ``size``: zod strips any filter, so ``?telegramId=`` there lists every user."""
    if major < 3:
        return z.obj(
            {
                "cursor": z.optional(
                    z.string(z.regex(r"\d+", "Cursor must be a positive integer string"))
                ),
                "size": z.optional(
                    z.number(
                        z.gte(1, "Size (limit) must be greater than 0"),
                        z.lte(1000, "Size (limit) must be less than 1000"),
                        integer=True,
                        coerce=True,
                    ),
                    250,
                ),
            }
        )

    def telegram_id(issues: z.Issues, path: z.Path, value: Any) -> Any:
        # z.string().transform(Number).pipe(z.number().nonnegative())
        if not isinstance(value, str):
            return issues.invalid_type(path, "string", value)
        return z.number(z.gte(0))(issues, path, z.js_number(value))

    return z.obj(
        {
            "cursor": z.optional(z.number(coerce=True)),
            "size": z.optional(z.number(z.gte(1), z.lte(1000), coerce=True), 250),
            "status": z.optional(z.enum(USERS_STATUS)),
            "trafficLimitStrategy": z.optional(z.enum(RESET_PERIODS)),
            "telegramId": z.optional(telegram_id),
            "email": z.optional(z.string(z.fmt("email"))),
            "tag": z.optional(z.string()),
            "externalSquadUuid": z.optional(z.string(z.fmt("uuid"))),
        }
    )


def user_key(major: int) -> z.Schema:
    """The ``{uuid}`` (2.x) or ``{userId}`` (3.x) path parameter of get, delete, actions."""
    if major < 3:
        return z.obj({"uuid": z.string(z.fmt("uuid"))})
    return z.obj({"userId": z.number(z.gt(0), coerce=True)})
