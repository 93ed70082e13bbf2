"""End to end in a real headless Chromium: the app as `make run` starts it, under the network guard.

Every app here runs under the socket guard of ``test_app_privacy`` (non-loopback connections are
recorded and refused); a test fails if the app reached for the network at any point.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.test_app_privacy import RunningApp, cross_origin_websocket, start_app

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow

# every element attribute that makes a browser fetch or navigate, raw and resolved
_LINKS_JS = """
const out = [];
for (const el of document.querySelectorAll('[src],[href],[srcset],[poster],[action],[formaction],[data]')) {
  for (const a of ['src', 'href', 'srcset', 'poster', 'action', 'formaction', 'data']) {
    const raw = el.getAttribute(a);
    if (raw !== null) out.push([el.tagName, a, raw, String(el[a] || '')]);
  }
}
return out;
"""


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[RunningApp]:
    with start_app(tmp_path) as running:
        yield running
        outbound = running.outbound()
    assert outbound == [], f"the app reached for the network: {outbound}"


@pytest.fixture()
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian chromium and chromium-driver are required: run `make install` "
                    "(apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def screenshot(browser, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def assert_no_developer_chrome(browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    for testid in ("stAppDeployButton", "stMainMenu"):
        assert not browser.find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']"), testid
    assert "Deploy" not in browser.find_element(By.TAG_NAME, "body").text


def remote_links(browser, origin: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Elements whose src/href (as written, or as the browser resolved it) is not this app."""
    bad = []
    for tag, attr, raw, resolved in browser.execute_script(_LINKS_JS):
        if "example.invalid" in raw or "example.invalid" in resolved:
            bad.append([tag, attr, raw, resolved])
        elif resolved and not resolved.startswith((origin, "data:", "blob:", "about:", "javascript:")):
            bad.append([tag, attr, raw, resolved])
    return bad


def test_upload_ask_and_see_a_cited_answer(app: RunningApp, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    doc = tmp_path / "zephyr-pump-manual.md"
    doc.write_text("# Zephyr-9 pump manual\n\nThe Zephyr-9 pump is primed by opening the bleed valve and filling "
                   "the casing with water until no air escapes. Never run the Zephyr-9 pump dry.\n",
                   encoding="utf-8")
    wait = WebDriverWait(browser, 240)
    browser.get(app.url)
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "no collection yet"))

    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]"))).send_keys(str(doc))
    add = wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//button[.//p[contains(., 'Add 1 file(s)')]]")))
    add.click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Indexed 1 file(s)"))
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "zephyr-pump-manual.md"))

    box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")))
    box.send_keys("How is the Zephyr-9 pump primed?")
    box.send_keys(Keys.ENTER)
    # a cited answer: the numbered source appears under it
    source = wait.until(ec.presence_of_element_located(
        (By.XPATH, "//*[@data-testid='stExpander']//*[contains(., '[1] zephyr-pump-manual.md')]")))
    assert source is not None
    answer = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")[-1].text
    assert "Sources" in answer
    assert_no_developer_chrome(browser)
    screenshot(browser, "browser-answer.png")


def test_untrusted_names_and_urls_stay_text(app: RunningApp, browser, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """File names with Markdown image/link syntax and bare URLs in answers: shown, never live."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_ui import EVIL_FILES, ZEPHYR_QUESTION, build_collection

    build_collection(tmp_path, "zephyr", EVIL_FILES, embedder)  # the app reads tmp_path/idx
    wait = WebDriverWait(browser, 120)
    browser.get(app.url)
    wait.until(ec.presence_of_element_located((By.XPATH, "//h1[contains(., 'zephyr')]")))
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//*[@data-testid='stRadio']//label[contains(., 'extractive')]"))).click()
    box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")))
    box.send_keys(ZEPHYR_QUESTION)
    box.send_keys(Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[@data-testid='stExpander']//summary[contains(., '[3]')]")))
    for summary in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage'] [data-testid='stExpander'] summary"):
        browser.execute_script("arguments[0].click()", summary)  # the chat input box may cover it
    assert remote_links(browser, app.url) == []
    body = browser.find_element(By.TAG_NAME, "body").text
    for name in ("![x](https:example.invalid).md", "[click](https:example.invalid).md", "www.example.invalid.md",
                 "![x](https:/example.invalid/p.png)/zephyr-notes.md", "https://example.invalid/register"):
        assert name in body, f"{name!r} is not shown as text"
    # tooltips are Markdown too: hover every document's re-index button
    hovered = 0
    for button in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebar'] button"):
        if "refresh" not in button.text or not button.is_displayed():
            continue
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        ActionChains(browser).move_to_element(button).perform()
        tip = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid='stTooltipContent']")))
        assert tip.text.startswith("Re-index ")
        assert remote_links(browser, app.url) == []
        hovered += 1
    assert hovered == len(EVIL_FILES)
    ActionChains(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [u for u in fetched if not u.startswith(app.url)], fetched
    assert_no_developer_chrome(browser)
    # a foreign page's WebSocket is refused without Streamlit looking up this machine's public IP
    assert cross_origin_websocket(app.port).startswith(b"HTTP/1.1 403")
    screenshot(browser, "browser-untrusted-names.png")


def test_an_error_offers_no_web_search(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Under the project's config an uncaught error shows no "Ask Google"/"Ask ChatGPT", and no Deploy/menu."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    script = tmp_path / "broken_app.py"
    script.write_text("import streamlit as st\nst.title('An app that fails')\n"
                      "raise RuntimeError('secret path ' + str(6 * 7))\n", encoding="utf-8")
    with start_app(tmp_path, script=script) as app:
        browser.get(app.url)
        wait = WebDriverWait(browser, 60)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid='stException']")))
        body = browser.find_element(By.TAG_NAME, "body").text
        links = browser.execute_script(_LINKS_JS)
        screenshot(browser, "browser-error-no-links.png")
        assert "RuntimeError" in body
        assert "Ask Google" not in body and "Ask ChatGPT" not in body
        assert not [link for link in links if "google" in link[3] or "chatgpt" in link[3]], links
        assert_no_developer_chrome(browser)
        outbound = app.outbound()
    assert "secret path 42" not in body  # the message stays in the console
    assert outbound == []
