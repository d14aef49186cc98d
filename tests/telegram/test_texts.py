"""Every language has every text the code uses."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from shop.telegram.texts import LANGUAGES, load_texts, pick_language

SHOP = Path(__file__).resolve().parents[2] / "shop"
LOCALES = SHOP / "telegram" / "locales"


def keys(language: str) -> set[str]:
    with (LOCALES / language / "LC_MESSAGES" / "shop.po").open("rb") as po:
        return {m.id for m in read_po(po) if m.id and m.string}


def test_all_languages_have_the_same_texts() -> None:
    english = keys("en")
    for language in LANGUAGES:
        assert keys(language) == english, language


def test_every_text_the_code_names_exists() -> None:
    # Calls such as t(lang, "menu.title"), actor.t("slow.down"), t(lang, f"status.{state}").
    call = re.compile(r"""\bt\(\s*(?:[\w.]+,\s*)?f?["']([a-z_]+(?:\.[a-z_{}]+)+)["']""")
    used = set()
    for source in SHOP.rglob("*.py"):
        used |= set(call.findall(source.read_text()))
    english = keys("en")
    static = {key for key in used if "{" not in key}
    assert static, "the pattern found no calls"
    assert static <= english, sorted(static - english)
    for dynamic in used - static:  # every variant of an f-string key exists somewhere
        prefix = dynamic.split("{")[0]
        assert any(key.startswith(prefix) for key in english), dynamic


def test_placeholders_match_across_languages() -> None:
    texts = load_texts()
    for key in keys("en"):
        english = set(re.findall(r"{(\w+)}", texts("en", key)))
        for language in LANGUAGES:
            assert set(re.findall(r"{(\w+)}", texts(language, key))) == english, (language, key)


def test_language_is_picked_from_telegram() -> None:
    assert pick_language("ru") == "ru"
    assert pick_language("uk-UA") == "uk"
    assert pick_language("be") == "ru"
    assert pick_language("de") == "en"
    assert pick_language(None) == "en"
