"""A top-up of any amount: every kind of bad input answered and asked again, the bounds, the
bonus, and a duplicate payment of one top-up credited once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from shop.catalog import EXAMPLE
from tests.customer import Customer

ANN = 1001
TOPUP = "\n[topup]\nmin = { XTR = 10 }\nmax = { XTR = 5000 }\nbonus_percent = 10\n"
TWO = '\n[topup]\nmin = { XTR = 10, RUB = "100.00" }\nmax = { XTR = 5000, RUB = "900.00" }\n'


def catalog_with(tmp_path: Path, extra: str) -> dict[str, str]:
    path = tmp_path / "catalog.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return {"SHOP_CATALOG": str(path)}


@pytest.fixture
def catalog(tmp_path: Path) -> dict[str, str]:
    return catalog_with(tmp_path, TOPUP)


async def test_bad_amounts_are_answered_and_asked_again_and_the_bounds_hold(
    shop_at: Any, catalog: dict[str, str], autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=catalog) as shop:
        ann = Customer(shop, ANN)
        t = shop.app.texts
        await ann.send("/start")
        await ann.press("bal", on=ann.menu())
        await ann.press("topup")
        assert "from 10 ⭐ to 5,000 ⭐" in ann.last_text()
        for typed, problem in (
            ("lots", t("en", "topup.not_a_number")),
            ("12.5", t("en", "topup.whole")),
            ("-20", t("en", "topup.range", min="10 ⭐", max="5,000 ⭐")),
            ("9", t("en", "topup.range", min="10 ⭐", max="5,000 ⭐")),
            ("5001", t("en", "topup.range", min="10 ⭐", max="5,000 ⭐")),
        ):
            await ann.send(typed)
            assert ann.texts()[-1].startswith(problem), typed
            assert "Type the amount" in ann.texts()[-1]  # the same question again
        await ann.send("5000")
        assert "pay:t:5000:stars:XTR" in ann.buttons()
        await ann.press("bal", on=ann.menu())
        await ann.press("topup")
        await ann.send("10")
        assert "pay:t:10:stars:XTR" in ann.buttons()
        before = len(ann.invoices())
        await ann.press("pay:t:5001:stars:XTR")  # forged beyond the bound: a stale button
        await ann.press("pay:t:1e3:stars:XTR", on=ann.menu())
        assert len(ann.invoices()) == before
    assert shop.query("SELECT count(*) FROM payments") == [(0,)]


async def test_the_bonus_is_credited_and_a_duplicate_payment_credits_once(
    shop_at: Any, catalog: dict[str, str], autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=catalog) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("bal", on=ann.menu())
        await ann.press("topup")
        await ann.send("123")
        assert "(+12 ⭐ bonus)" in ann.last_text()  # 10 % of 123, rounded down
        await ann.press("pay:t:123:stars:XTR")
        invoice = ann.invoices()[-1]
        assert invoice["prices"][0]["amount"] == 123
        payload, charge = await ann.pay_last_invoice()
        await ann.paid(payload, 123, charge_id=charge)  # delivered twice
        balance = shop.query("SELECT amount FROM balances WHERE telegram_id = %s", ANN)
        ledger = shop.query("SELECT delta, reason FROM ledger")
    assert balance == [(135,)]
    assert ledger == [(135, "topup")]


async def test_with_several_currencies_the_currency_is_asked_first(
    shop_at: Any, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=catalog_with(tmp_path, TWO)) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("bal", on=ann.menu())
        await ann.press("topup")
        assert ann.buttons()[:2] == ["topup:XTR", "topup:RUB"]
        await ann.press("topup:RUB")
        await ann.send("150,50")
        text = ann.last_text()
    assert "150.50" in text  # no RUB provider here: the screen says there is no way to pay
    assert shop.app.texts("en", "method.none") in text
