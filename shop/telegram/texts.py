"""What the bot says, in the customer's language, from gettext catalogs.

The catalogs are ``locales/<lang>/LC_MESSAGES/shop.po`` (edit them with any PO editor,
or ``pybabel``). Message ids are keys such as ``menu.greeting``; every language,
English included, has its own catalog, so no customer-facing text lives in code. The
``.po`` files are compiled in memory with Babel when the shop starts. A key missing in
a language falls back to English; placeholders use ``{name}`` and the caller escapes
customer-supplied values for HTML.

Operators replace any text without rebuilding: ``TEXTS_DIR`` holds ``<language>.po``
files (``en.po``, ``ru.po``...) whose entries override the shipped ones. An override is
checked at start: its key must exist, and it may only use the placeholders the shipped
text has (the shop passes no others); anything else stops the start with the file and
key named.
"""

from __future__ import annotations

import io
import string
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from ..errors import ConfigError

LANGUAGES = ("en", "ru", "uk")
DEFAULT_LANGUAGE = "en"
_LOCALES = Path(__file__).with_name("locales")


def pick_language(language_code: str | None) -> str:
    """The shop language for a Telegram ``language_code`` (``ru``, ``uk-UA``, ``en``...)."""
    code = (language_code or "").lower().split("-")[0]
    if code in LANGUAGES:
        return code
    if code in ("be", "kk"):
        return "ru"  # languages whose speakers usually read Russian better than English
    return DEFAULT_LANGUAGE


class Texts:
    def __init__(self, catalogs: dict[str, Translations]) -> None:
        self._catalogs = catalogs

    def __call__(self, language: str, key: str, /, **params: object) -> str:
        catalog = self._catalogs.get(language) or self._catalogs[DEFAULT_LANGUAGE]
        text = catalog.gettext(key)
        if text == key and language != DEFAULT_LANGUAGE:
            text = self._catalogs[DEFAULT_LANGUAGE].gettext(key)
        return text.format(**params) if params else text


def load_texts(locales: Path = _LOCALES, overrides: Path | None = None) -> Texts:
    """The shipped catalogs, with ``overrides/<language>.po`` laid over them; raises
    ConfigError naming every override that could not work."""
    catalogs = {}
    problems: list[str] = []
    for language in LANGUAGES:
        with (locales / language / "LC_MESSAGES" / "shop.po").open("rb") as po:
            catalog = read_po(po, locale=language)
        if overrides is not None:
            _override(catalog, overrides / f"{language}.po", language, problems)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogs[language] = Translations(compiled)
    if problems:
        raise ConfigError(problems)
    return Texts(catalogs)


def _override(catalog: Catalog, path: Path, language: str, problems: list[str]) -> None:
    if not path.exists():
        return
    where = f"TEXTS_DIR ({path})"
    try:
        with path.open("rb") as po:
            given = read_po(po, locale=language)
    except (OSError, ValueError) as exc:
        problems.append(f"{where}: cannot read it as a .po file: {exc}")
        return
    for message in given:
        key, text = message.id, message.string
        if not key or not isinstance(key, str) or not isinstance(text, str) or not text:
            continue
        shipped = catalog.get(key)
        if shipped is None or not isinstance(shipped.string, str):
            problems.append(f"{where}: {key}: no such text")
            continue
        try:
            extra = _placeholders(text) - _placeholders(shipped.string)
        except ValueError as exc:
            problems.append(f"{where}: {key}: {exc}")
            continue
        if extra:
            names = ", ".join("{" + name + "}" for name in sorted(extra))
            problems.append(f"{where}: {key}: uses {names}, which this text is not given")
            continue
        shipped.string = text


def _placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a text (raises ValueError for a malformed one)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
