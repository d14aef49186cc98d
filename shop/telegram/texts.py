"""What the bot says, in the customer's language, from gettext catalogs.

The catalogs are ``locales/<lang>/LC_MESSAGES/shop.po`` (edit them with any PO editor,
or ``pybabel``). Message ids are keys such as ``menu.greeting``; every language,
English included, has its own catalog, so no customer-facing text lives in code. The
``.po`` files are compiled in memory with Babel when the shop starts. A key missing in
a language falls back to English; placeholders use ``{name}`` and the caller escapes
customer-supplied values for HTML.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

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


def load_texts(locales: Path = _LOCALES) -> Texts:
    catalogs = {}
    for language in LANGUAGES:
        with (locales / language / "LC_MESSAGES" / "shop.po").open("rb") as po:
            catalog = read_po(po, locale=language)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogs[language] = Translations(compiled)
    return Texts(catalogs)
