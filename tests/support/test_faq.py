"""Help → FAQ from the catalog, in the customer's language; a broken [[faq]] stops the start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from shop.catalog import EXAMPLE, load_catalog
from shop.errors import ConfigError
from tests.customer import Customer

ANN, BORIS, ADMIN = 1001, 1002, 9001


async def test_the_faq_speaks_each_customers_language(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"ADMIN_IDS": str(ADMIN)}) as shop:
        faq = shop.app.catalog.faq
        ann, boris = Customer(shop, ANN), Customer(shop, BORIS, language="ru")
        seen = {}
        for who in (ann, boris):
            await who.send("/start")
            await who.press("help")
            assert who.buttons() == ["faq", "sup", "menu"]
            await who.press("faq")
            questions = (who.last_text(), who.buttons())
            await who.press("faq:1")
            seen[who.language] = (questions, who.last_text(), who.buttons())
        await ann.press("faq:7", on=ann.menu())  # a stale or forged question
        stale = ann.answers()[-1]
    t = shop.app.texts
    for language in ("en", "ru"):
        (title, question_buttons), answer, answer_buttons = seen[language]
        assert title == t(language, "faq.title")
        assert question_buttons == [f"faq:{n}" for n in range(len(faq))] + ["help"]
        assert answer == f"<b>{faq[1].question(language)}</b>\n\n{faq[1].answer(language)}"
        assert answer_buttons == ["sup", "faq"]
    assert seen["ru"][1].startswith("<b>Где мой доступ?</b>")
    assert stale == t("en", "not.found")


def catalog_file(tmp_path: Path, faq: str) -> str:
    """The example catalog with these [[faq]] tables instead of its own."""
    path = tmp_path / "catalog.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").split("[[faq]]")[0] + faq, "utf-8")
    return str(path)


async def test_an_entry_without_the_language_is_shown_in_english_as_plain_text(
    shop_at: Any, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    catalog = catalog_file(
        tmp_path, '[[faq]]\nquestion = "Is it fast?"\nanswer = "Very & <b>really</b>."\n'
    )
    async with shop_at(environ={"SHOP_CATALOG": catalog}) as shop:
        boris = Customer(shop, BORIS, language="ru")
        await boris.send("/start")
        await boris.press("help")
        await boris.press("faq")
        question = boris.menu()["reply_markup"]["inline_keyboard"][0][0]["text"]
        await boris.press("faq:0")
        answer = boris.last_text()
        answer_buttons = boris.buttons()
    assert question == "Is it fast?"
    assert answer == "<b>Is it fast?</b>\n\nVery &amp; &lt;b&gt;really&lt;/b&gt;."  # plain text
    assert answer_buttons == ["faq"]  # no SUPPORT_CHAT_ID, no ADMIN_IDS: nowhere to write


async def test_no_questions_no_faq_button(
    shop_at: Any, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with shop_at(environ={"SHOP_CATALOG": catalog_file(tmp_path, "")}) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("help")
        help_buttons = ann.buttons()
    assert help_buttons == ["menu"]


def test_a_broken_faq_is_refused_with_every_problem_named(tmp_path: Path) -> None:
    broken = """
[[faq]]
question = { ru = "Без английского" }
answer = "An answer"
[[faq]]
question = "Fine?"
answer = { en = "Yes", ru = "Да", de = "Ja" }
qustion = "a typo"
[[faq]]
question = { en = "Two languages?", uk = "Дві мови?" }
answer = { en = "Only English here" }
[[faq]]
question = "Empty answer"
answer = "   "
[[faq]]
question = "Long"
answer = "%s"
""" % ("x" * 4000)
    path = Path(catalog_file(tmp_path, broken))
    with pytest.raises(ConfigError) as caught:
        load_catalog(path)
    found = "\n".join(caught.value.problems)
    for expected in (
        'faq[0] question: expected a text, or a table with at least en = "..."',
        "faq[1] answer de: unknown language (expected en, ru, uk)",
        "faq[1] qustion: unknown key",
        "faq[1] ru: has an answer but no question in this language",
        "faq[2] uk: has a question but no answer in this language",
        "faq[3] answer: expected a text",
        "faq[4] answer en: longer than 3900 characters",
    ):
        assert expected in found, expected
    assert "faq[1] question" not in found
    without = EXAMPLE.read_text(encoding="utf-8").split("[[faq]]")[0]
    path.write_text("faq = 3\n" + without, "utf-8")  # top level, before any table
    with pytest.raises(ConfigError, match=r"faq: expected \[\[faq\]\] tables"):
        load_catalog(path)
