"""The catalog: plans (time-limited access) and packages (balance top-ups), from TOML.

``SHOP_CATALOG`` names the file; without it the example shipped in the package is used.
It is checked at start like the environment: every problem is reported with where it
is, and the shop exits with code 2. Shape (``[trial]`` and ``[[packages]]`` optional)::

    [trial]
    days = 3                      # 0, or no [trial], means no trial
    [[plans]]
    id = "m1"
    days = 30
    title = { en = "1 month", ru = "1 месяц", uk = "1 місяць" }
    prices = { XTR = 250, RUB = "299.00", USD = "3.49" }
    stars_subscription = true     # also offered as a 30-day Telegram Stars subscription
    traffic_gb = 50               # VPN panels: traffic per period, devices, squads
    devices = 3                   # (all optional; [trial] takes them too)
    squads = ["9c6f6f0e-3c2a-4a4e-9a53-0b1c2d3e4f50"]
    [[packages]]
    id = "p100"
    credit = { XTR = 100 }
    bonus = { XTR = 10 }
    title = { en = "100 ⭐ +10 bonus" }
    prices = { XTR = 100 }
    [topup]                       # a top-up of any amount (default: 1-10000 Stars)
    min = { XTR = 1, RUB = "100.00" }
    max = { XTR = 10000, RUB = "50000.00" }
    bonus_percent = 5             # credited on top of what is paid
    [referral]                    # for the referrer, once per referee's first purchase
    days = 7                      # and/or credit = { XTR = 50 }
    welcome_days = 3              # for the referee, with that purchase (optional)
    [[faq]]                       # Help → FAQ, in the customer's language (plain text)
    question = { en = "How do I pay?", ru = "Как оплатить?" }
    answer = { en = "Choose a plan under Buy.", ru = "Выберите тариф в разделе «Купить»." }

Amounts are whole Stars (integers) for XTR and decimal strings for other currencies;
they are held as integer minor units.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError
from .money import STARS, MoneyError, to_minor
from .telegram.texts import LANGUAGES

EXAMPLE = Path(__file__).with_name("catalog_example.toml")
STARS_SUBSCRIPTION_DAYS = 30  # Telegram's only subscription period (2592000 s)
STARS_SUBSCRIPTION_MAX = 10_000  # Stars, per period
_ID = re.compile(r"[a-z0-9_]{1,16}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@attrs.frozen
class Limits:
    """What a plan (or the trial) allows at a VPN panel; None means no limit."""

    traffic_gb: int | None = None  # per plan period; TRAFFIC_ON_RENEWAL says how it adds up
    devices: int | None = None
    squads: tuple[str, ...] = ()  # Remnawave internal squad uuids


@attrs.frozen
class Plan:
    id: str
    days: int
    titles: Mapping[str, str]
    prices: Mapping[str, int]  # currency -> minor units
    stars_subscription: bool = False
    limits: Limits = Limits()

    def title(self, language: str) -> str:
        return self.titles.get(language) or self.titles["en"]


@attrs.frozen
class Package:
    id: str
    titles: Mapping[str, str]
    prices: Mapping[str, int]
    credit: Mapping[str, int]  # what the customer's balance receives, bonus included

    def title(self, language: str) -> str:
        return self.titles.get(language) or self.titles["en"]


@attrs.frozen
class TopUp:
    """A top-up of any amount within ``[min, max]`` per currency, plus a bonus percent."""

    minimum: Mapping[str, int] = attrs.field(factory=lambda: {STARS: 1})
    maximum: Mapping[str, int] = attrs.field(factory=lambda: {STARS: 10_000})
    bonus_percent: int = 0

    def bonus(self, amount: int) -> int:
        """What is credited on top of ``amount`` (rounded down: never more than promised)."""
        return amount * self.bonus_percent // 100


@attrs.frozen
class Referral:
    """What a referee's first paid purchase earns: the referrer, and the referee."""

    days: int = 0
    credit: Mapping[str, int] = attrs.field(factory=dict)
    welcome_days: int = 0
    welcome_credit: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def rewards(self) -> bool:
        return bool(self.days or self.credit or self.welcome_days or self.welcome_credit)


@attrs.frozen
class Faq:
    """A question and its answer, per language (English is always there)."""

    questions: Mapping[str, str]
    answers: Mapping[str, str]

    def question(self, language: str) -> str:
        return self.questions.get(language) or self.questions["en"]

    def answer(self, language: str) -> str:
        return self.answers.get(language) or self.answers["en"]


@attrs.frozen
class Catalog:
    trial_days: int
    plans: tuple[Plan, ...]
    packages: tuple[Package, ...]
    trial_limits: Limits = Limits()
    topup: TopUp = TopUp()
    referral: Referral = Referral()
    faq: tuple[Faq, ...] = ()

    def plan(self, plan_id: str) -> Plan | None:
        return next((p for p in self.plans if p.id == plan_id), None)

    def limits(self, plan_id: str | None) -> Limits | None:
        """The limits of a subscription's plan ("trial" for the trial); None when the plan
        is not in the catalog (removed since, or imported): what the panel has then stays."""
        if plan_id == "trial":
            return self.trial_limits
        plan = self.plan(plan_id) if plan_id else None
        return plan.limits if plan is not None else None

    def package(self, package_id: str) -> Package | None:
        return next((p for p in self.packages if p.id == package_id), None)


def load_catalog(path: Path | None) -> Catalog:
    """Read and check a catalog file; raise ConfigError naming every problem."""
    source = path or EXAMPLE
    where = f"SHOP_CATALOG ({source})"
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read the file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    catalog = _catalog(data, _Problems(where, problems))
    if problems:
        raise ConfigError(problems)
    return catalog


@attrs.define
class _Problems:
    where: str
    found: list[str]

    def add(self, place: str, problem: str) -> None:
        self.found.append(f"{self.where}: {place}: {problem}")


def _catalog(data: dict[str, Any], problems: _Problems) -> Catalog:
    trial = data.get("trial", {})
    trial_days = trial.get("days", 0) if isinstance(trial, dict) else None
    if not isinstance(trial_days, int) or isinstance(trial_days, bool) or trial_days < 0:
        problems.add("[trial] days", "expected a whole number of days, 0 for no trial")
        trial_days = 0
    trial_limits = _limits(trial if isinstance(trial, dict) else {}, "[trial]", problems)
    plans = tuple(
        plan
        for n, raw in enumerate(_tables(data, "plans", problems))
        if (plan := _plan(raw, f"plans[{n}]", problems)) is not None
    )
    packages = tuple(
        package
        for n, raw in enumerate(_tables(data, "packages", problems))
        if (package := _package(raw, f"packages[{n}]", problems)) is not None
    )
    if not plans and not packages:
        problems.add("plans", "the catalog sells nothing: add at least one [[plans]]")
    for kind, items in (("plans", plans), ("packages", packages)):
        ids = [item.id for item in items]
        for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
            problems.add(kind, f"id {duplicate!r} is used twice")
    topup = _topup(data.get("topup", {}), problems)
    referral = _referral(data.get("referral", {}), problems)
    faq = tuple(
        entry
        for n, raw in enumerate(_tables(data, "faq", problems))
        if (entry := _faq(raw, f"faq[{n}]", problems)) is not None
    )
    return Catalog(trial_days, plans, packages, trial_limits, topup, referral, faq)


#: How long an FAQ question (a button) and its answer (a message, with the question) may be.
FAQ_QUESTION_MAX = 120
FAQ_ANSWER_MAX = 3900


def _faq(raw: dict[str, Any], place: str, problems: _Problems) -> Faq | None:
    for key in sorted(raw.keys() - {"question", "answer"}):
        problems.add(f"{place} {key}", "unknown key: an entry has a question and an answer")
    question = _localised(raw.get("question"), f"{place} question", FAQ_QUESTION_MAX, problems)
    answer = _localised(raw.get("answer"), f"{place} answer", FAQ_ANSWER_MAX, problems)
    if question is None or answer is None:
        return None
    for language in sorted((question.keys() ^ answer.keys()) & set(LANGUAGES)):
        has = "a question but no answer" if language in question else "an answer but no question"
        problems.add(f"{place} {language}", f"has {has} in this language")
    return Faq(question, answer)


def _localised(value: Any, place: str, limit: int, problems: _Problems) -> dict[str, str] | None:
    """A text, or a table of texts by language with at least ``en``."""
    if isinstance(value, str):
        value = {"en": value}
    if (
        not isinstance(value, dict)
        or "en" not in value
        or not all(isinstance(v, str) and v.strip() for v in value.values())
    ):
        problems.add(place, 'expected a text, or a table with at least en = "..."')
        return None
    texts = {language: text.strip() for language, text in value.items()}
    for language, text in texts.items():
        if language not in LANGUAGES:
            expected = ", ".join(LANGUAGES)
            problems.add(f"{place} {language}", f"unknown language (expected {expected})")
        elif len(text) > limit:
            problems.add(f"{place} {language}", f"longer than {limit} characters")
    return texts


def _topup(raw: Any, problems: _Problems) -> TopUp:
    if not isinstance(raw, dict):
        problems.add("[topup]", "expected a table")
        return TopUp()
    if not raw:
        return TopUp()
    low = _amounts(raw.get("min"), "[topup] min", problems, required=True)
    high = _amounts(raw.get("max"), "[topup] max", problems, required=True)
    for currency in sorted({*low, *high}):
        if currency not in low or currency not in high:
            problems.add(f"[topup] {currency}", "needs both a min and a max")
        elif low[currency] > high[currency]:
            problems.add(f"[topup] {currency}", "min is above max")
    bonus = raw.get("bonus_percent", 0)
    if not isinstance(bonus, int) or isinstance(bonus, bool) or not 0 <= bonus <= 100:
        problems.add("[topup] bonus_percent", "expected a whole number from 0 to 100")
        bonus = 0
    both = {c: low[c] for c in low if c in high}
    return TopUp(both, {c: high[c] for c in both}, bonus)


def _referral(raw: Any, problems: _Problems) -> Referral:
    if not isinstance(raw, dict):
        problems.add("[referral]", "expected a table")
        return Referral()
    days = {}
    for key in ("days", "welcome_days"):
        value = raw.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3650:
            problems.add(f"[referral] {key}", "expected a whole number of days")
            value = 0
        days[key] = value
    credit = _amounts(raw.get("credit", {}), "[referral] credit", problems, required=False)
    welcome = _amounts(
        raw.get("welcome_credit", {}), "[referral] welcome_credit", problems, required=False
    )
    return Referral(days["days"], credit, days["welcome_days"], welcome)


def _tables(data: dict[str, Any], key: str, problems: _Problems) -> list[dict[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.add(key, f"expected [[{key}]] tables")
        return []
    return tables


def _plan(raw: dict[str, Any], place: str, problems: _Problems) -> Plan | None:
    plan_id = _id(raw, place, problems)
    days = raw.get("days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 36_600:
        problems.add(f"{place} days", "expected a whole number of days from 1")
    titles = _titles(raw, place, problems)
    prices = _amounts(raw.get("prices"), f"{place} prices", problems, required=True)
    subscription = raw.get("stars_subscription", False)
    if not isinstance(subscription, bool):
        problems.add(f"{place} stars_subscription", "expected true or false")
    elif subscription and not 1 <= prices.get(STARS, 0) <= STARS_SUBSCRIPTION_MAX:
        problems.add(
            f"{place} stars_subscription",
            f"needs an XTR price from 1 to {STARS_SUBSCRIPTION_MAX} Stars",
        )
    limits = _limits(raw, place, problems)
    if plan_id is None or titles is None or not isinstance(days, int):
        return None
    return Plan(plan_id, days, titles, prices, bool(subscription), limits)


def _limits(raw: dict[str, Any], place: str, problems: _Problems) -> Limits:
    """``traffic_gb``, ``devices`` (whole numbers from 1) and ``squads`` (uuids)."""
    counts: dict[str, int | None] = {}
    for key in ("traffic_gb", "devices"):
        value = raw.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000
        ):
            problems.add(
                f"{place} {key}", "expected a whole number from 1 (leave it out: no limit)"
            )
            value = None
        counts[key] = value
    squads = raw.get("squads", [])
    if not isinstance(squads, list) or not all(
        isinstance(s, str) and _UUID.fullmatch(s) for s in squads
    ):
        problems.add(f"{place} squads", "expected a list of squad uuids")
        squads = []
    return Limits(counts["traffic_gb"], counts["devices"], tuple(squads))


def _package(raw: dict[str, Any], place: str, problems: _Problems) -> Package | None:
    package_id = _id(raw, place, problems)
    titles = _titles(raw, place, problems)
    prices = _amounts(raw.get("prices"), f"{place} prices", problems, required=True)
    credit = _amounts(raw.get("credit"), f"{place} credit", problems, required=True)
    bonus = _amounts(raw.get("bonus", {}), f"{place} bonus", problems, required=False)
    if package_id is None or titles is None:
        return None
    total = {c: credit.get(c, 0) + bonus.get(c, 0) for c in {*credit, *bonus}}
    return Package(package_id, titles, prices, total)


def _id(raw: dict[str, Any], place: str, problems: _Problems) -> str | None:
    value = raw.get("id")
    if not isinstance(value, str) or not _ID.fullmatch(value):
        problems.add(f"{place} id", "expected 1-16 characters from a-z, 0-9 and _")
        return None
    return value


def _titles(raw: dict[str, Any], place: str, problems: _Problems) -> dict[str, str] | None:
    titles = raw.get("title")
    if isinstance(titles, str):
        titles = {"en": titles}
    if (
        not isinstance(titles, dict)
        or not all(isinstance(v, str) and v.strip() for v in titles.values())
        or "en" not in titles
    ):
        problems.add(f"{place} title", 'expected a title, or a table with at least en = "..."')
        return None
    return {lang: text.strip() for lang, text in titles.items()}


def _amounts(value: Any, place: str, problems: _Problems, *, required: bool) -> dict[str, int]:
    if not isinstance(value, dict) or (required and not value):
        problems.add(place, 'expected a table such as { XTR = 250, RUB = "299.00" }')
        return {}
    amounts = {}
    for currency, amount in value.items():
        if currency == STARS and not (isinstance(amount, int) and not isinstance(amount, bool)):
            problems.add(f"{place} {currency}", "Stars are whole numbers, e.g. XTR = 250")
            continue
        if currency != STARS and not isinstance(amount, str):
            problems.add(f"{place} {currency}", 'expected a decimal string, e.g. "299.00"')
            continue
        try:
            minor = to_minor(amount, currency)
        except MoneyError as exc:
            problems.add(f"{place} {currency}", str(exc))
            continue
        if minor <= 0:
            problems.add(f"{place} {currency}", "expected an amount above zero")
            continue
        amounts[currency] = minor
    return amounts
