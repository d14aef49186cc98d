"""Just enough of zod to answer like nestjs-zod: the checks Remnawave's contract uses.

Remnawave validates every body, path and query with zod through nestjs-zod's global
``ZodValidationPipe``; a failure is a 400 whose body is ``{"statusCode": 400, "message":
"Validation failed", "errors": <the zod issues>}`` (nestjs-zod ``packages/nestjs-zod/src/
exception.ts`` at v4.3.1, ``error.errors``, and at v5.5.0, ``error.issues``). Panel 2.8.1 pins
nestjs-zod 4.3.1 with zod 3.25.76 and panel 3.3.2 pins nestjs-zod 5.5.0 with zod 4.4.3
(``package.json`` at each tag), and the two zod majors word and shape their issues
differently. The messages here come from zod's own sources at those tags:
``packages/zod/src/v3/locales/en.ts`` and ``packages/zod/src/v4/locales/en.ts``, the
regexes from ``v3/types.ts`` and ``v4/core/regexes.ts``.

A schema is a function ``(issues, path, value) -> parsed value | INVALID``; ``MISSING`` stands
for JavaScript's ``undefined`` (a key that is absent). Simplifications: v4 format issues carry
no ``pattern`` except for ``regex``, and a failed field check stops that field's later
refinements (zod sometimes still runs them).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

Json = dict[str, Any]
Path = list[str | int]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING: Any = _Sentinel("MISSING")  # JavaScript's undefined: the key is absent
INVALID: Any = _Sentinel("INVALID")

_V3_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_V4_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff"
)
_EMAIL = re.compile(
    r"(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}"
)
_DATE = (
    r"(?:(?:\d\d[2468][048]|\d\d[13579][26]|\d\d0[48]|[02468][048]00|[13579][26]00)-02-29"
    r"|\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|(?:02)-(?:0[1-9]|1\d|2[0-8])))"
)
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
# ``z.string().datetime({offset: true, local: true})``: v3 takes offsets as ±HH, ±HHMM or
# ±HH:MM; v4 only ±HH:MM.
_DATETIME = {
    3: re.compile(rf"{_DATE}T{_TIME}(?:Z?|[+-]\d{{2}}:?\d{{2}})"),
    4: re.compile(rf"{_DATE}T{_TIME}(?:Z|(?:)|[+-](?:[01]\d|2[0-3]):[0-5]\d)"),
}
_FORMAT_NAMES = {  # v4 en locale FormatDictionary
    "uuid": "UUID",
    "guid": "GUID",
    "email": "email address",
    "datetime": "ISO datetime",
}


class Issues:
    """The issues of one parse, worded by zod ``major`` (3 or 4)."""

    def __init__(self, major: int) -> None:
        self.v4 = major >= 4
        self.items: list[Json] = []
        self.aborted = False  # a type error happened: zod skips object-level refinements

    def invalid_type(
        self,
        path: Path,
        expected: str,
        value: Any,
        message: str | None = None,
        *,
        required: str | None = None,
        extra: Json | None = None,
    ) -> Any:
        """``message`` is v3's ``invalid_type_error``, ``required`` its ``required_error``."""
        received = parsed_type(value)
        self.aborted = True
        if self.v4:
            shown = "NaN" if received == "nan" else received
            issue = {"expected": expected, "code": "invalid_type", **(extra or {})}
            if received == "nan":
                issue["received"] = "NaN"
            return self._add(
                issue, path, message or f"Invalid input: expected {expected}, received {shown}"
            )
        if received == "undefined":
            text = required or "Required"
        else:
            text = message or f"Expected {expected}, received {received}"
        return self._add(
            {"code": "invalid_type", "expected": expected, "received": received}, path, text
        )

    def too_small(
        self, path: Path, kind: str, minimum: float, inclusive: bool, message: str | None
    ) -> Any:
        if self.v4:
            adj = ">=" if inclusive else ">"
            default = (
                f"Too small: expected string to have {adj}{_num(minimum)} characters"
                if kind == "string"
                else f"Too small: expected number to be {adj}{_num(minimum)}"
            )
            issue = {"origin": kind, "code": "too_small", "minimum": minimum}
            return self._add(issue | {"inclusive": inclusive}, path, message or default)
        if kind == "string":
            default = f"String must contain at least {_num(minimum)} character(s)"
        else:
            adj = "greater than or equal to " if inclusive else "greater than "
            default = f"Number must be {adj}{_num(minimum)}"
        issue = {"code": "too_small", "minimum": minimum, "type": kind, "inclusive": inclusive}
        return self._add(issue | {"exact": False}, path, message or default)

    def too_big(
        self, path: Path, kind: str, maximum: float, inclusive: bool, message: str | None
    ) -> Any:
        if self.v4:
            adj = "<=" if inclusive else "<"
            default = (
                f"Too big: expected string to have {adj}{_num(maximum)} characters"
                if kind == "string"
                else f"Too big: expected number to be {adj}{_num(maximum)}"
            )
            issue = {"origin": kind, "code": "too_big", "maximum": maximum}
            return self._add(issue | {"inclusive": inclusive}, path, message or default)
        if kind == "string":
            default = f"String must contain at most {_num(maximum)} character(s)"
        else:
            adj = "less than or equal to" if inclusive else "less than"
            default = f"Number must be {adj} {_num(maximum)}"
        issue = {"code": "too_big", "maximum": maximum, "type": kind, "inclusive": inclusive}
        return self._add(issue | {"exact": False}, path, message or default)

    def bad_format(self, path: Path, fmt: str, message: str | None, pattern: str = "") -> Any:
        """A string format (``regex``, ``uuid``, ``guid``, ``email``, ``datetime``) failed."""
        if self.v4:
            issue = {"origin": "string", "code": "invalid_format", "format": fmt}
            if fmt == "regex":
                issue["pattern"] = pattern
                default = f"Invalid string: must match pattern {pattern}"
            else:
                default = f"Invalid {_FORMAT_NAMES[fmt]}"
            return self._add(issue, path, message or default)
        validation = "uuid" if fmt == "guid" else fmt
        default = "Invalid" if fmt == "regex" else f"Invalid {validation}"
        return self._add(
            {"validation": validation, "code": "invalid_string"}, path, message or default
        )

    def bad_option(
        self, path: Path, options: Sequence[str], value: Any, message: str | None
    ) -> Any:
        if self.v4:
            default = "Invalid option: expected one of " + "|".join(f'"{o}"' for o in options)
            issue = {"code": "invalid_value", "values": list(options)}
            return self._add(issue, path, message or default)
        joined = " | ".join(f"'{o}'" for o in options)
        default = f"Invalid enum value. Expected {joined}, received '{value}'"
        issue = {"received": value, "code": "invalid_enum_value", "options": list(options)}
        return self._add(issue, path, message or default)

    def custom(self, path: Path, message: str) -> Any:
        return self._add({"code": "custom"}, path, message)

    def _add(self, issue: Json, path: Path, message: str) -> Any:
        if self.v4:
            self.items.append(issue | {"path": list(path), "message": message})
        else:
            self.items.append(issue | {"message": message, "path": list(path)})
        return INVALID


Schema = Callable[[Issues, Path, Any], Any]
Check = Callable[[Issues, Path, Any], bool]


def parsed_type(value: Any) -> str:
    """zod's name for a JSON value's type (v3 ``getParsedType``, v4 ``util.parsedType``)."""
    if value is MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "nan" if isinstance(value, float) and math.isnan(value) else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def js_length(text: str) -> int:
    """``String.prototype.length``: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def js_number(value: Any) -> float:
    """JavaScript's ``Number(value)`` for what a query string or path can hold."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return math.nan
    text = value.strip()
    if not text:
        return 0.0
    if re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", text):
        return float(text)
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if text[:2].lower() == prefix:
            try:
                return float(int(text[2:], base))
            except ValueError:
                return math.nan
    if text.lstrip("+-") == "Infinity":
        return -math.inf if text.startswith("-") else math.inf
    return math.nan


# ----------------------------------------------------------------------- string checks


def regex(pattern: str, message: str | None = None) -> Check:
    compiled = re.compile(pattern)

    def check(issues: Issues, path: Path, value: str) -> bool:
        if compiled.fullmatch(value):
            return True
        issues.bad_format(path, "regex", message, f"/^{pattern}$/")
        return False

    return check


def min_length(minimum: int, message: str | None = None) -> Check:
    def check(issues: Issues, path: Path, value: str) -> bool:
        if js_length(value) >= minimum:
            return True
        issues.too_small(path, "string", minimum, True, message)
        return False

    return check


def max_length(maximum: int, message: str | None = None) -> Check:
    def check(issues: Issues, path: Path, value: str) -> bool:
        if js_length(value) <= maximum:
            return True
        issues.too_big(path, "string", maximum, True, message)
        return False

    return check


def fmt(name: str, message: str | None = None) -> Check:
    """``.uuid()`` / ``z.uuid()``, ``z.guid()``, ``.email()`` (v3's uuid is v4's guid)."""

    def check(issues: Issues, path: Path, value: str) -> bool:
        if name == "email":
            ok = _EMAIL.fullmatch(value) is not None
        elif name == "uuid" and issues.v4:
            ok = _V4_UUID.fullmatch(value) is not None
        else:
            ok = _V3_UUID.fullmatch(value) is not None
        if not ok:
            issues.bad_format(path, name, message)
        return ok

    return check


# ----------------------------------------------------------------------- number checks


def gte(minimum: float, message: str | None = None) -> Check:
    def check(issues: Issues, path: Path, value: float) -> bool:
        if value >= minimum:
            return True
        issues.too_small(path, "number", minimum, True, message)
        return False

    return check


def gt(minimum: float, message: str | None = None) -> Check:
    def check(issues: Issues, path: Path, value: float) -> bool:
        if value > minimum:
            return True
        issues.too_small(path, "number", minimum, False, message)
        return False

    return check


def lte(maximum: float, message: str | None = None) -> Check:
    def check(issues: Issues, path: Path, value: float) -> bool:
        if value <= maximum:
            return True
        issues.too_big(path, "number", maximum, True, message)
        return False

    return check


# ----------------------------------------------------------------------- schemas


def string(*checks: Check, type_error: str | None = None, required: str | None = None) -> Schema:
    def parse(issues: Issues, path: Path, value: Any) -> Any:
        if not isinstance(value, str):
            return issues.invalid_type(path, "string", value, type_error, required=required)
        results = [check(issues, path, value) for check in checks]  # zod runs every check
        return value if all(results) else INVALID

    return parse


def number(
    *checks: Check,
    integer: bool = False,
    int_error: str | None = None,
    type_error: str | None = None,
    coerce: bool = False,
) -> Schema:
    """``z.number()`` (v3 ``.int()``, v4 ``z.int()`` when ``integer``); ``coerce`` is
    ``z.coerce.number()``."""

    def parse(issues: Issues, path: Path, value: Any) -> Any:
        if coerce:
            value = js_number(value)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or math.isnan(value) or math.isinf(value):
            return issues.invalid_type(path, "number", value, type_error)
        if integer and not float(value).is_integer():
            if issues.v4:
                extra = {"format": "safeint"}
                return issues.invalid_type(path, "int", value, int_error, extra=extra)
            issue = {"code": "invalid_type", "expected": "integer", "received": "float"}
            return issues._add(issue, path, int_error or "Expected integer, received float")
        results = [check(issues, path, value) for check in checks]
        return value if all(results) else INVALID

    return parse


def boolean() -> Schema:
    def parse(issues: Issues, path: Path, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        return issues.invalid_type(path, "boolean", value)

    return parse


def enum(options: Sequence[str], message: str | None = None) -> Schema:
    """``z.enum`` / ``z.nativeEnum`` over string values; ``message`` replaces every issue's
    message, as a v3 ``errorMap`` or a v4 ``error`` does."""

    def parse(issues: Issues, path: Path, value: Any) -> Any:
        if isinstance(value, str) and value in options:
            return value
        if not issues.v4 and not isinstance(value, str):  # v3 checks the type first
            expected = " | ".join(f"'{o}'" for o in options)
            return issues.invalid_type(path, expected, value, message, required=message)
        return issues.bad_option(path, options, value, message)

    return parse


def datetime(
    message: str | None = None, *, type_error: str | None = None, required: str | None = None
) -> Schema:
    """``z.string().datetime({offset: true, local: true}).transform(s => new Date(s))``
    (v4: ``z.iso.datetime``). Gives an aware UTC datetime with millisecond precision; a time
    with no offset is read as UTC, the panel container's time zone."""

    def parse(issues: Issues, path: Path, value: Any) -> Any:
        if not isinstance(value, str):
            return issues.invalid_type(path, "string", value, type_error, required=required)
        if not _DATETIME[4 if issues.v4 else 3].fullmatch(value):
            return issues.bad_format(path, "datetime", message)
        return parse_js_date(value)

    return parse


def array(item: Schema, *, type_error: str | None = None) -> Schema:
    def parse(issues: Issues, path: Path, value: Any) -> Any:
        if not isinstance(value, list):
            return issues.invalid_type(path, "array", value, type_error)
        parsed = [item(issues, [*path, i], element) for i, element in enumerate(value)]
        return INVALID if any(p is INVALID for p in parsed) else parsed

    return parse


def optional(schema: Schema, default: Any = MISSING) -> Schema:
    def parse(issues: Issues, path: Path, value: Any) -> Any:
        if value is MISSING:
            return default
        return schema(issues, path, value)

    return parse


def nullable(schema: Schema) -> Schema:
    def parse(issues: Issues, path: Path, value: Any) -> Any:
        return None if value is None else schema(issues, path, value)

    return parse


def nullish(schema: Schema) -> Schema:
    return optional(nullable(schema))


def refine(schema: Schema, predicate: Callable[[Any], bool], message: str) -> Schema:
    def parse(issues: Issues, path: Path, value: Any) -> Any:
        parsed = schema(issues, path, value)
        if parsed is INVALID or parsed is MISSING or predicate(parsed):
            return parsed
        return issues.custom(path, message)

    return parse


def obj(
    fields: dict[str, Schema],
    *,
    check: tuple[Callable[[Json], bool], str] | None = None,
    type_error: str | None = None,
) -> Schema:
    """``z.object(fields)``, which strips unknown keys; ``check`` is an object ``.refine``."""

    def parse(issues: Issues, path: Path, value: Any) -> Any:
        if not isinstance(value, dict):
            return issues.invalid_type(path, "object", value, type_error)
        parsed: Json = {}
        for name, schema in fields.items():
            result = schema(issues, [*path, name], value.get(name, MISSING))
            if result is not MISSING:
                parsed[name] = result
        if check is not None and not issues.aborted and not check[0](parsed):
            issues.custom(path, check[1])
        return INVALID if issues.items else parsed

    return parse


def validate(major: int, schema: Schema, value: Any) -> tuple[Any, list[Json]]:
    """Parse ``value``; gives ``(parsed, [])`` or ``(INVALID, issues)``."""
    issues = Issues(major)
    parsed = schema(issues, [], value)
    if issues.items:
        return INVALID, issues.items
    return parsed, []


def parse_js_date(text: str) -> dt.datetime:
    """``new Date(text)`` for a string the datetime regex accepted (ms precision, UTC)."""
    match = re.fullmatch(
        r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?"
        r"(Z|[+-]\d\d(?::?\d\d)?)?",
        text,
    )
    if match is None:  # pragma: no cover - the regex above was checked first
        raise ValueError(text)
    year, month, day, hour, minute = (int(g) for g in match.groups()[:5])
    second = int(match[6] or 0)
    millis = int((match[7] or "0")[:3].ljust(3, "0"))
    offset = dt.timedelta()
    if match[8] and match[8] != "Z":
        sign = -1 if match[8][0] == "-" else 1
        digits = match[8][1:].replace(":", "")
        offset = sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    local = dt.datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=dt.UTC)
    return local - offset
