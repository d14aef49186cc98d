"""The web chat in a real browser (headless Chromium driven by Selenium): a newcomer opens the
page, buys a plan with Stars and with a stand-in provider, and sees their subscription.

Screenshots of each step are kept in ``.ci/artifacts/sandbox/`` (README's picture is one).
The test skips, saying why, only where no Chromium and chromedriver are installed
(``.ci/run`` installs Debian's ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from shop.sandbox.botapi import TOKEN
from shop.sandbox.run import RunningSandbox
from tests.sandbox.conftest import CUSTOMER, OPERATOR

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as shown  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / ".ci" / "artifacts" / "sandbox"
CHAT = f'section.chat[data-chat="{CUSTOMER}"]'
SECOND = f'section.chat[data-chat="{CUSTOMER + 1}"]'
OPERATOR_CHAT = f'section.chat[data-chat="{OPERATOR}"]'
WAIT = 20  # seconds for one step; a step usually takes well under one
#: Every kind of formatting the Bot API's HTML has, and text that must stay text.
EVERY_FORMAT = (
    "<b>bold</b> <i>italic</i> <u>under</u> <s>struck</s> <a href='https://example.com/'>"
    "link</a> <a href='javascript:alert(1)'>trap</a> <code>code</code> <pre>pre</pre> "
    "<tg-spoiler>hidden</tg-spoiler> <blockquote>quote</blockquote> "
    "&lt;img src=x onerror=alert(1)&gt;"
)
FORMATS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strike": "s",
    "link": 'a[href="https://example.com/"][target="_blank"][rel~="noopener"]',
    "trap": ".link-dead",
    "code": "code",
    "pre": "pre",
    "spoiler": ".spoiler",
    "quote": "blockquote",
}


def _browser_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "no headless browser: install Debian's chromium and chromium-driver"
            " (.ci/run does) to run the web chat's browser test"
        )
    return browser, driver


def _start_browser() -> Any:
    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1360,860")
    service = webdriver.ChromeService(executable_path=driver_path)
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture
async def browser(sandbox: RunningSandbox) -> AsyncIterator[Any]:
    """Chromium, closed before the sandbox stops (so its page does not hold the shop up)."""
    driver = await trio.to_thread.run_sync(_start_browser)
    try:
        yield driver
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(driver.quit)


class Page:
    """The web chat as a person uses it; every step waits for what it expects to see."""

    def __init__(self, driver: Any, url: str, telegram_url: str) -> None:
        self.driver = driver
        self.url = url
        self.telegram_url = telegram_url
        self.wait = WebDriverWait(driver, WAIT)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def open(self) -> None:
        self.driver.get(self.url)
        self.wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "body[data-ready]")))
        self.wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, CHAT)))

    def type(self, text: str, chat: str = CHAT) -> None:
        box = self.wait.until(
            shown.visibility_of_element_located((By.CSS_SELECTOR, f"{chat} .composer input"))
        )
        box.send_keys(text, Keys.ENTER)

    def press(self, callback: str, chat: str = CHAT) -> None:
        """Press the newest button with this callback data, once it is there."""
        selector = f'{chat} button[data-callback="{callback}"]'
        self.wait.until(shown.element_to_be_clickable((By.CSS_SELECTOR, selector)))
        self.driver.find_elements(By.CSS_SELECTOR, selector)[-1].click()

    def click(self, selector: str) -> None:
        self.wait.until(shown.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()

    def bot_message_after(self, kind: str, chat: int = CUSTOMER) -> Any:
        """The first message of the bot after the last ``from-<kind>`` entry."""
        after = (
            f"//section[@data-chat='{chat}']//div[contains(@class, 'from-{kind}')][last()]"
            "/following-sibling::div[contains(@class, 'from-bot')]"
        )
        return self.wait.until(shown.visibility_of_element_located((By.XPATH, after)))

    def bot_says(self, html: str) -> dict[str, str]:
        """The bot sends ``html`` (through the Bot API, as the shop would); what it became."""
        before = self.bot_messages()
        call = f"{self.telegram_url}/bot{TOKEN}/sendMessage"
        params = {"chat_id": CUSTOMER, "text": html, "parse_mode": "HTML"}
        httpx.post(call, json=params, timeout=10).raise_for_status()
        self.wait.until(lambda driver: self.bot_messages() > before)
        bubble = self.driver.find_elements(By.CSS_SELECTOR, f"{CHAT} .entry.from-bot .text")[-1]
        found = {}
        for name, selector in FORMATS.items():
            nodes = bubble.find_elements(By.CSS_SELECTOR, selector)
            found[name] = nodes[0].get_attribute("textContent") if nodes else ""
        found["markup"] = str(len(bubble.find_elements(By.CSS_SELECTOR, "img, script, iframe")))
        found["text"] = bubble.get_attribute("textContent")
        self.snap("05-formatting")
        return found

    def bot_messages(self, chat: str = CHAT) -> int:
        return len(self.driver.find_elements(By.CSS_SELECTOR, f"{chat} .entry.from-bot"))

    def snap(self, name: str) -> None:
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def buy_with_stars_and_with_stripe(page: Page) -> dict[str, str]:
    """The whole walk, in the browser's thread; returns texts the test checks afterwards.

    Ann pays with Stars while Oksana, added in Ukrainian, pays through the stand-in Stripe:
    their steps interleave, because the shop answers each chat at most once a second.
    """
    page.open()
    form = page.driver.find_element(By.ID, "add-person")
    form.find_element(By.NAME, "name").send_keys("Оксана")
    Select(form.find_element(By.NAME, "language")).select_by_value("uk")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    page.type("/admin", OPERATOR_CHAT)  # the operator's own view, in the operator's chat
    for chat in (CHAT, SECOND):
        page.type("/start", chat)
    for chat in (CHAT, SECOND):
        page.press("buy", chat)
    page.snap("01-plans")
    for chat in (CHAT, SECOND):
        page.press("plan:m1", chat)
    page.press("pay:p:m1:stars:XTR")
    page.press("pay:p:m1:stripe:USD", SECOND)

    page.click(f"{CHAT} button[data-pay]")
    page.wait.until(shown.visibility_of_element_located((By.ID, "sheet-pay")))
    page.snap("02-payment-sheet")
    page.click("#sheet-pay")
    paid = page.wait.until(
        shown.visibility_of_element_located((By.CSS_SELECTOR, f"{CHAT} .entry.from-service"))
    )
    page.wait.until(shown.invisibility_of_element_located((By.ID, "sheet")))
    page.type("/start")  # on to My subscription while the confirmation is on its way

    page.click(f"{SECOND} button.kind-checkout")
    before = page.bot_messages(SECOND)
    page.wait.until(shown.frame_to_be_available_and_switch_to_it((By.ID, "browser-frame")))
    page.click('button[data-action="pay"]')
    result = page.wait.until(
        lambda driver: driver.find_element(By.ID, "result").text.startswith("Paid") and driver
    ).find_element(By.ID, "result")
    webhook = result.text
    page.driver.switch_to.default_content()
    page.snap("03-stand-in-checkout")
    page.click("#browser-close")

    confirmation = page.bot_message_after("service").text
    page.bot_message_after("user")
    page.press("sub")
    page.wait.until(
        lambda driver: not driver.find_elements(By.CSS_SELECTOR, f'{CHAT} [data-callback="sub"]')
    )
    subscription = page.driver.find_elements(By.CSS_SELECTOR, f"{CHAT} .entry.from-bot")[-1].text
    # The shop confirms Oksana's payment once the webhook's event completed it.
    page.wait.until(lambda driver: page.bot_messages(SECOND) > before)
    page.wait.until(lambda driver: page.bot_messages(OPERATOR_CHAT) > 0)
    page.snap("04-sandbox")  # the README's picture
    formatting = page.bot_says(EVERY_FORMAT)
    return {
        "paid": paid.text,
        "confirmation": confirmation,
        "subscription": subscription,
        "webhook": webhook,
        **formatting,
    }


@pytest.mark.slow
async def test_a_newcomer_buys_a_plan_in_the_browser(sandbox: RunningSandbox, browser: Any) -> None:
    page = Page(browser, sandbox.url, sandbox.telegram.base_url)
    with trio.fail_after(120):
        seen = await trio.to_thread.run_sync(buy_with_stars_and_with_stripe, page)
    assert seen["paid"].startswith("You paid 250 ⭐")
    assert seen["confirmation"]
    assert "The shop answered the webhook with 200." in seen["webhook"]
    assert {name: seen[name] for name in FORMATS} == {
        "bold": "bold",
        "italic": "italic",
        "underline": "under",
        "strike": "struck",
        "link": "link",
        "trap": "trap",  # a javascript: link is no link at all
        "code": "code",
        "pre": "pre",
        "spoiler": "hidden",
        "quote": "quote",
    }
    assert seen["markup"] == "0"
    assert seen["text"].endswith("<img src=x onerror=alert(1)>")

    rows = await sandbox.app.store.run(
        lambda conn: conn.execute(
            "SELECT c.telegram_id, c.language, p.provider, p.status, s.expires_at"
            " FROM customers c JOIN payments p USING (telegram_id)"
            " JOIN subscriptions s USING (telegram_id) ORDER BY c.telegram_id"
        ).fetchall()
    )
    assert [row[:4] for row in rows] == [
        (CUSTOMER, "en", "stars", "completed"),
        (CUSTOMER + 1, "uk", "stripe", "completed"),
    ]
    assert str(rows[0][4].year) in seen["subscription"]
