"""The web site in a real browser: headless Chromium runs text_insights on Pyodide against the
dev LLM server, from a link that carries the inputs; a bad input is shown at its field."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import ROOT

from runner_template.engine import Engine

pytestmark = pytest.mark.llm
DOCS = ROOT / "docs"
TEXT = "The new  release is GREAT: fast builds, tiny images,\tand happy users!"


def wait_for_end(driver, timeout: float = 240.0) -> str:
    """The page's final state (``done`` or ``failed``), or a failure with its console."""
    ended = time.monotonic() + timeout
    while time.monotonic() < ended:
        state = driver.find_element("tag name", "body").get_attribute("data-state")
        if state in ("done", "failed"):
            return state
        time.sleep(0.2)
    console = "\n".join(entry["message"] for entry in driver.get_log("browser"))
    pytest.fail(f"the page did not finish in {timeout:g} s: {state}\n{console}")


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def expected_statistics(site: Path) -> dict:
    """What the bundle's own python steps give for TEXT, run by the engine on this machine."""
    bundle = json.loads((site / "bundle.json").read_text())
    bundle["workflow"]["steps"] = bundle["workflow"]["steps"][:2]
    bundle["workflow"]["outputs"] = {"s": {"source_reference": "steps.count.statistics"}}
    return Engine(bundle).run({"text": TEXT})["s"]


def test_text_insights_runs_in_the_browser_from_a_link(browser, site, site_server, llm_server):
    inputs = quote(json.dumps({"text": TEXT, "max_keywords": 3}))
    endpoint = quote(llm_server.url)
    browser.get(f"{site_server.origin}/index.html#inputs={inputs}&endpoint={endpoint}&run")
    state = wait_for_end(browser)
    assert state == "done", text_of(browser, "error")
    outputs = json.loads(text_of(browser, "outputs"))
    assert set(outputs) == {"title", "sentiment", "keywords", "statistics"}
    assert outputs["statistics"] == expected_statistics(site)
    assert isinstance(outputs["title"], str) and outputs["title"]
    steps = browser.find_elements("css selector", "#events li")
    assert [s.get_attribute("id") for s in steps] == [
        "step-clean",
        "step-count",
        "step-sentiment",
        "step-keywords",
        "step-title",
    ]
    assert all(s.get_attribute("data-state") == "done" for s in steps)
    streamed = browser.find_element("css selector", "#step-title .tokens").text
    assert streamed.strip() and streamed.strip() in json.dumps(outputs["title"]) + streamed
    assert browser.find_element("id", "endpoint").get_attribute("value") == llm_server.url
    browser.save_screenshot(str(DOCS / "web-text-insights.png"))


def test_a_bad_input_shows_the_one_line_error_next_to_its_field(browser, site_server):
    browser.get(f"{site_server.origin}/index.html")
    text = browser.find_element("id", "input-text")
    text.clear()
    text.send_keys("Short text.")
    keywords = browser.find_element("id", "input-max_keywords")
    keywords.clear()
    keywords.send_keys("many")
    browser.find_element("id", "run").click()
    assert wait_for_end(browser) == "failed"
    message = "input 'max_keywords' must be of type integer, got 'many'"
    assert text_of(browser, "error-max_keywords") == message
    assert text_of(browser, "error") == f"bad_input: {message}"
    assert text_of(browser, "error-text") == ""
    assert "invalid" in keywords.get_attribute("class")
    assert text_of(browser, "outputs") == ""
    browser.save_screenshot(str(DOCS / "web-bad-input.png"))
