"""The published web page in a real headless Chromium (Debian's chromium + chromium-driver, via selenium).

It loads from file:// with no console errors, sorting reorders rows, the filter hides rows, the
figures load, and a row opens its detail view with curves and sample text. CI installs the browser
(.ci/run); elsewhere the test is skipped when Chromium is not installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from collapse_bench import publish

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER) and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed: apt-get install chromium chromium-driver", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="collapse-bench-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--allow-file-access-from-files",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(smoke, tmp_path_factory) -> Path:
    lb = tmp_path_factory.mktemp("lb")
    publish.publish([smoke / "bundle.json"], lb, note=print)
    return lb / "site" / "index.html"


def _rows(browser):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, "table.board tbody tr")


def test_the_page_sorts_filters_shows_figures_and_details(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    assert browser.title == "collapse-bench leaderboards"
    rows = _rows(browser)
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == ["accumulate", "replace"]  # ranked
    # sorting: the mixer column descending, then ascending
    header = browser.find_elements(By.CSS_SELECTOR, "table.board th")[2]
    header.click()
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in _rows(browser)] == ["accumulate", "replace"]
    header.click()
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in _rows(browser)] == ["replace", "accumulate"]
    # filtering hides the rows that do not match
    browser.find_element(By.CSS_SELECTOR, "input.filter").send_keys("accum")
    assert [r.is_displayed() for r in _rows(browser)] == [False, True]
    # figures load (a broken image has no natural width)
    images = browser.find_elements(By.CSS_SELECTOR, ".figures img")
    assert len(images) == 2
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    assert all(browser.execute_script(loaded, i) > 0 for i in images)
    # a row opens its detail view: a chart per value and the sample text of every generation
    _rows(browser)[1].click()
    detail = browser.find_element(By.CSS_SELECTOR, ".detail")
    assert detail.is_displayed() and "ngram / accumulate" in detail.text
    assert len(detail.find_elements(By.CSS_SELECTOR, "svg.chart")) >= 1
    assert [b.text for b in detail.find_elements(By.CSS_SELECTOR, ".sample b")] == [f"generation {g}" for g in range(3)]
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
