"""End to end in a real headless Chromium: start the app, upload a document, ask, see a cited answer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def app_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = dict(os.environ, RAG_INDEX_DIR=str(tmp_path / "idx"), RAG_UPLOAD_DIR=str(tmp_path / "up"),
               HF_HUB_OFFLINE="1", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "ui" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text())
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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


def test_upload_ask_and_see_a_cited_answer(app_url: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    doc = tmp_path / "zephyr-pump-manual.md"
    doc.write_text("# Zephyr-9 pump manual\n\nThe Zephyr-9 pump is primed by opening the bleed valve and filling "
                   "the casing with water until no air escapes. Never run the Zephyr-9 pump dry.\n",
                   encoding="utf-8")
    wait = WebDriverWait(browser, 240)
    browser.get(app_url)
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
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "browser-answer.png"))
    assert (ARTIFACTS / "browser-answer.png").stat().st_size > 10_000
