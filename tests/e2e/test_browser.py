"""End to end in a real headless Chromium: the app as `make run` starts it, under the network guard.

Every app here runs under the socket guard of ``test_app_privacy`` (non-loopback connections are
recorded and refused); a test fails if the app reached for the network at any point.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.test_app_privacy import RunningApp, cross_origin_websocket, start_app

REPO = Path(__file__).resolve().parents[2]
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


# sets window.__seenText once any text on the page contains arguments[0] (checked on every DOM change)
_WATCH_TEXT_JS = """
const wanted = arguments[0];
window.__seenText = false;
new MutationObserver(() => {
  if (!window.__seenText && document.body.innerText.includes(wanted)) window.__seenText = true;
}).observe(document.body, {subtree: true, childList: true, characterData: true});
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


def open_all(browser, css: str) -> None:  # type: ignore[no-untyped-def]
    """Click every element matching ``css`` by script (the chat input box may cover one), finding them again if a
    rerun of the page replaced them meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        try:
            for element in browser.find_elements(By.CSS_SELECTOR, css):
                browser.execute_script("arguments[0].click()", element)
            return
        except StaleElementReferenceException:
            time.sleep(1.0)
    raise AssertionError(f"the elements {css!r} kept being replaced")


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
    # record whether "Checking sources…" was ever on screen (it shows while the support check runs)
    browser.execute_script(_WATCH_TEXT_JS, "Checking sources")
    box.send_keys("How is the Zephyr-9 pump primed?")
    box.send_keys(Keys.ENTER)

    def question_box(b):  # type: ignore[no-untyped-def]
        return b.find_element(By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")

    # while the answer is written the box is disabled: a question sent then used to wipe the answer
    WebDriverWait(browser, 120, poll_frequency=0.05).until(
        lambda b: not question_box(b).is_enabled() and "Answering" in (question_box(b).get_attribute("placeholder") or ""))

    def status_then_source(b):  # type: ignore[no-untyped-def]
        if not getattr(status_then_source, "shot", False) and "Checking sources" in b.find_element(By.TAG_NAME,
                                                                                               "body").text:
            screenshot(b, "browser-checking-sources.png")  # best effort: the status shows for a fraction of a second
            status_then_source.shot = True  # type: ignore[attr-defined]
        return b.find_elements(By.XPATH, "//*[@data-testid='stExpander']//*[contains(., '[1] zephyr-pump-manual.md')]")

    # a cited answer: the numbered source appears under it
    source = WebDriverWait(browser, 240, poll_frequency=0.05).until(status_then_source)
    assert source
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[@data-testid='stExpander']//summary[contains(., 'Trace')]")))
    answer = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")[-1].text
    assert "Sources" in answer
    assert browser.execute_script("return window.__seenText === true"), "no status while the sources were checked"
    assert "Checking sources" not in answer  # ...and it is gone once the marks are shown
    assert "s in total: loading models" in answer  # the real time, model loading included
    WebDriverWait(browser, 60).until(lambda b: question_box(b).is_enabled())  # and open again once it is done
    assert_no_developer_chrome(browser)
    screenshot(browser, "browser-answer.png")


def test_untrusted_names_and_urls_stay_text(app: RunningApp, browser, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """File names with Markdown image/link syntax and bare URLs in answers: shown, never live."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.ui.test_app import EVIL_FILES, ZEPHYR_QUESTION, build_collection

    build_collection(tmp_path, "zephyr", EVIL_FILES, embedder)  # the app reads tmp_path/idx
    wait = WebDriverWait(browser, 120)
    browser.get(app.url)
    wait.until(ec.presence_of_element_located((By.XPATH, "//h1[contains(., 'zephyr')]")))
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//*[@data-testid='stRadio']//label[contains(., 'extractive')]"))).click()
    _ask(browser, wait, ZEPHYR_QUESTION)
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[@data-testid='stExpander']//summary[contains(., '[3]')]")))
    open_all(browser, "[data-testid='stChatMessage'] [data-testid='stExpander'] summary")
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


def _click_toggle(browser, source: str, label: str) -> None:  # type: ignore[no-untyped-def]
    """Click the toggle ``label`` in the source expander whose summary names ``source``.

    Streamlit may redraw the expander at any moment, so it is found again on every try rather
    than held (a held element goes stale: a flake seen once in a full run)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    xpath = (f"//*[@data-testid='stExpander'][.//summary[contains(., '{source}')]]"
             f"//label[contains(., '{label}')]//input")
    for attempt in range(5):
        # an expander draws its content once opened
        toggle = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda b: (b.find_elements(By.XPATH, xpath) or [None])[0])
        try:
            browser.execute_script("arguments[0].click()", toggle)  # the chat input box may cover it
            return
        except StaleElementReferenceException:
            if attempt == 4:
                raise


def _pick_extractive(browser, wait) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//*[@data-testid='stRadio']//label[contains(., 'extractive')]"))).click()


def _app_idle(browser) -> bool:  # type: ignore[no-untyped-def]
    """The page is drawn and waiting for the user: no script run in flight, and the question box enabled."""
    from selenium.webdriver.common.by import By

    if browser.find_elements(By.CSS_SELECTOR, "[data-testid^='stStatusWidgetRunning']"):
        return False
    boxes = browser.find_elements(By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")
    return bool(boxes) and boxes[0].is_enabled() and "Answering" not in (boxes[0].get_attribute("placeholder") or "")


def _ask(browser, wait, question: str) -> None:  # type: ignore[no-untyped-def]
    """Ask, and return once the answer is done and the page redrawn from the saved turn.

    An answer ends in two reruns (the box enabled again; the turn saved and the chat's URL set): an element held
    across them goes stale, a flake CI met three times in one run."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    messages = "[data-testid='stChatMessage']"
    before = len(browser.find_elements(By.CSS_SELECTOR, messages))
    box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")))
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    calm = {"since": None}

    def settled(b) -> bool:  # type: ignore[no-untyped-def]
        done = (len(b.find_elements(By.CSS_SELECTOR, messages)) >= before + 2 and "chat=" in b.current_url
                and _app_idle(b))
        if not done:
            calm["since"] = None
            return False
        calm["since"] = calm["since"] or time.monotonic()
        return time.monotonic() - calm["since"] >= 1.5  # idle for a while: no rerun left to come

    WebDriverWait(browser, wait._timeout, poll_frequency=0.25,
                  ignored_exceptions=(StaleElementReferenceException,)).until(settled)


def _show_page_2(browser, wait, summary, source: str):  # type: ignore[no-untyped-def]
    """Open the source ``summary``, press "Show on its page", wait for page 2 of 3 captioned as highlighted;
    the image element and the picture it shows."""
    import io
    import urllib.request

    from PIL import Image
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_script("arguments[0].click()", summary)
    _click_toggle(browser, source, "Show on its page")
    image = wait.until(ec.presence_of_element_located(
        (By.XPATH, "//*[@data-testid='stExpander']//*[@data-testid='stImage' or @data-testid='stImageContainer' or "
                   "contains(@class, 'stImage')][.//*[contains(., 'Page 2 of 3')]]//img")))

    def page_caption_says_highlighted(b) -> bool:  # type: ignore[no-untyped-def]
        # found again on each try and read as textContent: the caption may be redrawn, or not yet
        # visible, when the image already is (its .text was '' once in a full run)
        captions = b.find_elements(By.XPATH, "//*[@data-testid='stExpander']//*[contains(., 'Page 2 of 3')]")
        return any("the passage is highlighted" in (c.get_attribute("textContent") or "") for c in captions)

    WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,)).until(
        page_caption_says_highlighted)
    with urllib.request.urlopen(image.get_attribute("src"), timeout=30) as r:
        return image, Image.open(io.BytesIO(r.read())).convert("RGB")


def _tinted_rows(shown) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(how many, top, bottom) of the page image's highlight-tinted pixels (every other row and column)."""
    tinted = [y for y in range(0, shown.height, 2) for x in range(0, shown.width, 2)
              if (lambda p: p[0] > 230 and 195 <= p[1] <= 240 and p[2] < 190)(shown.getpixel((x, y)))]
    return len(tinted), min(tinted, default=-1), max(tinted, default=-1)


PDF_PAGES = [
    "Zephyr-9 pump manual\nChapter 1: Safety\nRead every warning before you start the pump.\nWear gloves and eye "
    "protection.",
    "Chapter 2: Priming\nBefore priming, check that the inlet hose is tight and the strainer is clean.\n"
    "The Zephyr-9 pump is primed by opening the bleed valve\nand filling the casing with water until no air "
    "escapes.\nNever run the Zephyr-9 pump dry: the seals burn within seconds.\nAfter priming, close the bleed "
    "valve and start the motor.\nA steady hum means the pump is working; a rattle means air is still inside.",
    "Chapter 3: Maintenance\nReplace the seals every 400 hours of service.\nThe impeller is inspected once a year.",
]


def test_a_pdf_source_opens_on_its_page_with_the_passage_highlighted(app: RunningApp, browser, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                     embedder) -> None:
    """Starter questions, readable sources, the cited PDF page with the passage boxed, the trace: each looked at."""
    import json
    import os

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor
    from rag.text import sentence_spans
    from rag.ui.viewer import PdfPageRenderer
    from tests.pdfgen import write_pdf

    docs = tmp_path / "docs"
    (docs / "manuals").mkdir(parents=True)
    pdf = write_pdf(docs / "manuals" / "zephyr-manual.pdf", PDF_PAGES)
    (docs / "faq.md").write_text("# Pump FAQ\n\n## How often are the seals replaced?\n\nEvery 400 hours.\n\n"
                                 "## Who services the impeller?\n\nA certified technician.\n", encoding="utf-8")
    store = IndexStore(tmp_path / "idx")  # the app reads tmp_path/idx
    report = Ingestor("manuals", store=store, embedder=embedder, chunk_size=40, chunk_overlap=8,
                      show_progress=False).ingest([docs])
    assert report.ok, report.summary()
    (store.path("manuals") / ".watch-browser.json").write_text(json.dumps(
        {"folder": str(docs), "pid": os.getpid(), "started_at": 1.0}))  # as `rag watch` announces itself
    wait = WebDriverWait(browser, 240)
    browser.get(app.url)
    wait.until(ec.presence_of_element_located((By.XPATH, "//h1[contains(., 'manuals')]")))
    examples = wait.until(lambda b: [e for e in b.find_elements(By.CSS_SELECTOR, "[class*='st-key-example_'] button")
                                     if e.is_displayed()] or None)
    assert len(examples) == 3
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "How often are the seals replaced?" in body and "Watching" in body and str(docs) in body
    screenshot(browser, "browser-empty-chat.png")

    _pick_extractive(browser, wait)
    _ask(browser, wait, "How is the Zephyr-9 pump primed?")
    summary = wait.until(ec.presence_of_element_located(
        (By.XPATH, "//*[@data-testid='stExpander']//summary[contains(., 'zephyr-manual.pdf')]")))
    assert "manuals/zephyr-manual.pdf" in summary.text and "relevance" in summary.text
    assert re.search(r" pp?\. (\d+, )*2\b", summary.text), summary.text  # the pages cited: 2 among them
    assert str(docs) not in summary.text  # relative to the collection, not an absolute path
    screenshot(browser, "browser-sources.png")

    image, shown = _show_page_2(browser, wait, summary, "zephyr-manual.pdf")
    # the page shown is page 2 with one of its passages, or the cited sentence of one, boxed where the renderer puts it
    assert abs(shown.width / shown.height - 612 / 792) < 0.01  # a whole page
    count, top, bottom = _tinted_rows(shown)
    assert count > 200, "no highlight on the page"
    index = store.load("manuals")
    matches = []
    k = shown.width / (612 * 1.5)
    for c in (c for c in index.chunks if c.source == str(pdf.resolve()) and c.page == 2):
        for passage in {c.text, *(c.text[a:b] for a, b in sentence_spans(c.text))}:
            boxes = PdfPageRenderer().render(pdf, 2, passage).boxes
            if boxes and abs(min(b[1] for b in boxes) * k - top) < 6 and abs(max(b[3] for b in boxes) * k - bottom) < 6:
                matches.append(passage)
    assert matches, "the highlight does not sit on one of page 2's passages or sentences"
    group = image.find_element(By.XPATH, "./ancestor::*[@data-testid='stExpander'][1]")  # redrawn by the toggle
    assert " ".join(matches[0].split()) in " ".join(group.text.split())  # the passage the source lists
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", image)
    screenshot(browser, "browser-pdf-page.png")

    trace = browser.find_element(By.XPATH, "//*[@data-testid='stExpander']//summary[contains(., 'Trace')]")
    browser.execute_script("arguments[0].click()", trace)
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Relevance gate"))
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", trace)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Search q1" in text and "Timings" in text and "dense" in text and "Answer decision" in text
    screenshot(browser, "browser-trace.png")
    assert remote_links(browser, app.url) == []


def test_a_scanned_pdf_source_opens_on_its_page_with_the_ocr_words_highlighted(app: RunningApp, browser,  # type: ignore[no-untyped-def]
                                                                                tmp_path: Path, embedder) -> None:
    """A scanned PDF (no text layer) is read by OCR at ingest; its cited page shows the sentence boxed from the OCR
    words' boxes, where the viewer's own OCR puts that sentence."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor
    from rag.text import sentence_spans
    from rag.ui.viewer import PdfPageRenderer
    from tests.pdfgen import write_scanned_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = write_scanned_pdf(docs / "zephyr-scan.pdf", PDF_PAGES)
    (docs / "boiler.md").write_text("# Boiler notes\n\nThe Aurora boiler is descaled every spring with citric "
                                    "acid.\n", encoding="utf-8")
    store = IndexStore(tmp_path / "idx")  # the app reads tmp_path/idx
    # the default chunk size: page 2 is one passage, so the cited sentence is whole (two lines on the page)
    report = Ingestor("scans", store=store, embedder=embedder, show_progress=False).ingest([docs])
    assert report.ok, report.summary()
    assert "OCR read 3 page(s)" in dict(report.warnings).get(str(pdf.resolve()), ""), report.summary()
    wait = WebDriverWait(browser, 240)
    browser.get(app.url)
    wait.until(ec.presence_of_element_located((By.XPATH, "//h1[contains(., 'scans')]")))
    _pick_extractive(browser, wait)
    _ask(browser, wait, "How is the Zephyr-9 pump primed?")
    answer = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")[-1].text
    assert "bleed valve" in answer and "filling the casing with water" in answer, answer  # the whole sentence
    summary = wait.until(ec.presence_of_element_located(
        (By.XPATH, "//*[@data-testid='stExpander']//summary[contains(., '[1] zephyr-scan.pdf')]")))
    assert re.search(r" pp?\. (\d+, )*2\b", summary.text), summary.text  # the scan's page 2 cited

    image, shown = _show_page_2(browser, wait, summary, "zephyr-scan.pdf")
    assert abs(shown.width / shown.height - 612 / 792) < 0.01  # a whole page
    count, top, bottom = _tinted_rows(shown)
    assert count > 200, "no highlight on the scanned page"
    # the highlight's rows are those of the OCR boxes of one of page 2's sentences: the cited priming sentence
    k = shown.width / (612 * 1.5)
    matches = []
    for c in (c for c in store.load("scans").chunks if c.source == str(pdf.resolve()) and c.page == 2):
        for a, b in sentence_spans(c.text):
            boxes = PdfPageRenderer().render(pdf, 2, c.text[a:b]).boxes
            if boxes and abs(min(x[1] for x in boxes) * k - top) < 6 and abs(max(x[3] for x in boxes) * k - bottom) < 6:
                matches.append(" ".join(c.text[a:b].split()))
    assert any("primed by opening the bleed valve and filling" in m and m.endswith("until no air escapes.")
               for m in matches), (matches, top, bottom)
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", image)
    screenshot(browser, "browser-scanned-page.png")
    assert remote_links(browser, app.url) == []


def test_uploading_a_scan_says_which_scanned_page_is_being_read(app: RunningApp, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """OCR takes seconds a page: the sidebar's progress names the file and the page instead of only "Indexing…"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.pdfgen import write_scanned_pdf

    scan = write_scanned_pdf(tmp_path / "zephyr-scan.pdf", PDF_PAGES)
    wait = WebDriverWait(browser, 240)
    browser.get(app.url)
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "no collection yet"))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]"))).send_keys(str(scan))
    add = wait.until(ec.element_to_be_clickable((By.XPATH, "//button[.//p[contains(., 'Add 1 file(s)')]]")))
    # shown from page 1's end until page 2's (about 2.5 s): a MutationObserver sees it however briefly
    browser.execute_script(_WATCH_TEXT_JS, "Reading scanned pages: zephyr-scan.pdf, page 1 of 3 read")
    add.click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Indexed 1 file(s)"))
    assert browser.execute_script("return window.__seenText === true"), "no progress named the scanned page"
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid='stSidebar']"), "3 p."))
    assert remote_links(browser, app.url) == []


def test_a_text_source_in_its_document_and_a_model_that_is_not_downloaded(browser, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                          embedder) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor

    docs = tmp_path / "docs"
    docs.mkdir()
    steps = [f"Step {i}: turn the Zephyr valve {i} times, then check the gauge." for i in range(1, 11)]
    (docs / "valve-steps.md").write_text("# Valve steps\n\n" + "\n\n".join(steps) + "\n\nFinally the Zephyr "
                                         "valve pressure is set to 4 bar with the blue knob.", encoding="utf-8")
    Ingestor("steps", store=IndexStore(tmp_path / "idx"), embedder=embedder, chunk_size=40, chunk_overlap=8,
             show_progress=False).ingest([docs])
    with start_app(tmp_path, env={"RAG_MODELS_DIR": str(tmp_path / "models")}) as app:
        wait = WebDriverWait(browser, 240)
        browser.get(app.url)
        wait.until(ec.presence_of_element_located((By.XPATH, "//h1[contains(., 'steps')]")))
        _pick_extractive(browser, wait)
        _ask(browser, wait, "What pressure is the Zephyr valve set to with the blue knob?")
        summary = wait.until(ec.presence_of_element_located(
            (By.XPATH, "//*[@data-testid='stExpander']//summary[contains(., 'valve-steps.md')]")))
        browser.execute_script("arguments[0].click()", summary)
        _click_toggle(browser, "valve-steps.md", "Show in the document")
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "the cited one"))
        marked = browser.execute_script("""
            return [...document.querySelectorAll('[data-testid="stExpander"] span')]
              .filter(s => getComputedStyle(s).backgroundColor !== 'rgba(0, 0, 0, 0)' && s.innerText.includes('4 bar'))
              .map(s => s.innerText);""")
        assert marked, "the cited passage is not highlighted"
        prev = browser.find_element(By.XPATH, "//button[.//p[contains(., 'Previous passage')]]")  # redrawn
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", prev)
        screenshot(browser, "browser-passage-in-document.png")
        browser.execute_script("arguments[0].click()", prev)
        wait.until(lambda b: "the cited one" not in b.find_element(By.TAG_NAME, "body").text)

        # the model picker: a model that is not on this machine says so, and how to get it, before any question
        wait.until(ec.element_to_be_clickable(
            (By.XPATH, "//*[@data-testid='stRadio']//label[contains(., 'generative')]"))).click()
        picker = wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, "[data-testid='stSidebar'] input[aria-label='Model']:not([disabled])")))
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", picker)
        picker.find_element(By.XPATH, "following-sibling::button").click()  # the combo box's "Open"
        option = wait.until(ec.element_to_be_clickable(
            (By.XPATH, "//*[@role='option'][contains(., 'phi-3-mini (not downloaded)')]")))
        screenshot(browser, "browser-model-picker-open.png")
        option.click()
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "rag models pull phi-3-mini"))
        # the question box is redrawn disabled at the end of the same rerun
        WebDriverWait(browser, 30).until(lambda b: not b.find_element(
            By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']").is_enabled())
        assert "Pick a model that is on this machine" in browser.find_element(
            By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']").get_attribute("placeholder")
        screenshot(browser, "browser-model-not-downloaded.png")
        outbound = app.outbound()
    assert outbound == []


def test_a_saved_chat_survives_a_reload_and_chats_can_be_switched(app: RunningApp, browser, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                  embedder) -> None:
    """Ask, reload: the chat and its sources are back (the URL names the chat); a second chat; both listed; switch."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.ui.test_app import build_collection

    build_collection(tmp_path, "zephyr", {
        "pump.md": "The Zephyr-9 pump is primed by opening the bleed valve and filling the casing with water.",
        "seals.md": "The Zephyr-9 seals are replaced every 400 hours of service."}, embedder)
    first, second = "How is the Zephyr-9 pump primed?", "When are the Zephyr-9 seals replaced?"
    wait = WebDriverWait(browser, 180)
    source_xpath = "//*[@data-testid='stChatMessage']//*[@data-testid='stExpander']//summary[contains(., '[1] {}')]"

    def main_text(b) -> str:  # type: ignore[no-untyped-def]
        return " ".join(m.text for m in b.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']"))

    def sidebar_chat(title: str):  # type: ignore[no-untyped-def]
        return wait.until(ec.element_to_be_clickable(
            (By.XPATH, f"//*[@data-testid='stSidebar']//button[.//p[contains(., '{title[:20]}')]]")))

    browser.get(app.url)
    wait.until(ec.presence_of_element_located((By.XPATH, "//h1[contains(., 'zephyr')]")))
    _pick_extractive(browser, wait)
    _ask(browser, wait, first)
    wait.until(ec.presence_of_element_located((By.XPATH, source_xpath.format("pump.md"))))
    wait.until(lambda b: "chat=" in b.current_url)
    chat_url = browser.current_url

    browser.refresh()  # a new session: the chat comes back from chats.sqlite3
    wait.until(ec.presence_of_element_located((By.XPATH, source_xpath.format("pump.md"))))
    assert first in main_text(browser) and browser.current_url == chat_url
    sidebar_chat(first)  # listed

    _pick_extractive(browser, wait)  # the new session's settings are the defaults again
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//*[@data-testid='stSidebar']//button[.//p[contains(., 'New chat')]]"))).click()
    wait.until(lambda b: first not in main_text(b) and "chat=" not in b.current_url)
    _ask(browser, wait, second)
    wait.until(ec.presence_of_element_located((By.XPATH, source_xpath.format("seals.md"))))
    wait.until(lambda b: "chat=" in b.current_url and b.current_url != chat_url)
    sidebar_chat(first)
    sidebar_chat(second)
    screenshot(browser, "browser-saved-chats.png")

    sidebar_chat(first).click()  # switch back to the first chat
    wait.until(lambda b: first in main_text(b) and second not in main_text(b))
    wait.until(ec.presence_of_element_located((By.XPATH, source_xpath.format("pump.md"))))
    assert browser.current_url == chat_url


def test_a_chat_scoped_to_a_pdf_cites_only_it_and_exports_as_markdown(app: RunningApp, browser, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                      embedder) -> None:
    """Two documents that both say how the pump is primed; the chat scoped to the PDF: every source is the PDF,
    and the Markdown the download button serves has the question, the answer and the PDF's numbered sources."""
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from rag.index.store import IndexStore
    from rag.ingest.ingestor import Ingestor
    from tests.pdfgen import write_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "zephyr-manual.pdf", PDF_PAGES)
    (docs / "priming-notes.md").write_text(
        "# Priming notes\n\nThe Zephyr-9 pump is primed by opening the bleed valve and filling the casing with "
        "water until no air escapes.\n", encoding="utf-8")
    report = Ingestor("manuals", store=IndexStore(tmp_path / "idx"), embedder=embedder, chunk_size=40,
                      chunk_overlap=8, show_progress=False).ingest([docs])
    assert report.ok, report.summary()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    question = "How is the Zephyr-9 pump primed?"
    wait = WebDriverWait(browser, 180)
    browser.get(app.url)
    wait.until(ec.presence_of_element_located((By.XPATH, "//h1[contains(., 'manuals')]")))

    # scope the chat: the sidebar multi-select, the PDF picked from its options
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//*[@data-testid='stSidebar']//*[@data-testid='stMultiSelect']//input"))).click()
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//*[@role='option'][contains(., 'zephyr-manual.pdf')]"))).click()
    browser.find_element(By.XPATH, "//h1[contains(., 'manuals')]").click()  # close the option list
    wait.until(ec.presence_of_element_located(
        (By.XPATH, "//*[@data-testid='stMultiSelect'][contains(., 'zephyr-manual.pdf')]")))
    time.sleep(1)  # the rerun the pick started
    _pick_extractive(browser, wait)
    _ask(browser, wait, question)
    summary_xpath = "//*[@data-testid='stChatMessage']//*[@data-testid='stExpander']//summary"
    wait.until(ec.presence_of_element_located((By.XPATH, summary_xpath + "[contains(., '[1] ')]")))
    # a summary's text starts with its arrow icon's name: the source's label follows
    sources = [s.text for s in browser.find_elements(By.XPATH, summary_xpath) if re.search(r"\[\d+\] ", s.text)]
    assert sources and all("zephyr-manual.pdf" in s for s in sources), sources
    main_text = " ".join(m.text for m in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']"))
    assert "Searching 1 of 2 documents" in main_text and "priming-notes" not in main_text
    wait.until(lambda b: "chat=" in b.current_url)
    chat_id = re.search(r"chat=(\w+)", browser.current_url).group(1)  # type: ignore[union-attr]
    screenshot(browser, "browser-scoped-chat.png")

    # the Markdown download of the open chat, as the browser saves it
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//*[@data-testid='stSidebar']//summary[contains(., 'This chat')]"))).click()
    button = wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//*[@data-testid='stSidebar']//*[@data-testid='stDownloadButton']//button[contains(., 'Markdown')]")))
    browser.execute_script("arguments[0].click()", button)
    saved = downloads / f"chat-{chat_id}.md"
    WebDriverWait(browser, 60).until(lambda b: saved.exists() and saved.stat().st_size > 0)
    text = saved.read_text(encoding="utf-8")
    question_part, _, rest = text.partition("**Answer**")
    assert f"## Question 1\n\n{question}\n" in question_part
    answer, _, listed = rest.partition("**Sources**")
    assert "bleed valve" in answer and "[1]" in answer
    numbered = re.findall(r"^(\d+)\. (\S+), page (\d+) \((.+)\)$", listed, flags=re.M)
    assert numbered and [int(n) for n, *_ in numbered] == list(range(1, len(numbered) + 1)), listed
    assert all(name == "zephyr-manual.pdf" and path.endswith("zephyr-manual.pdf") for _, name, _, path in numbered)
    assert "2" in {page for _, _, page, _ in numbered}  # the priming chapter's page
    assert "priming-notes" not in text.replace(f"Documents: {docs}", "")
