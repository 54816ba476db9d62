"""Fixtures of the web tests: one built site, one loopback file server, one headless Chromium
(Debian's, through its own chromedriver), and a dev LLM server that allows the site's origin.

Nothing leaves loopback: Selenium is given the driver (no Selenium Manager download) and
``SE_AVOID_STATS``; Chromium runs without its background networking, updates and sync.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import ROOT, LLMServer, run_cli

from runner_template.web import CONTENT_TYPES

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SITE_WORKFLOW = ROOT / "workflows" / "text_insights.json"


class _SiteHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **CONTENT_TYPES}

    def log_message(self, format, *args) -> None:  # quiet: the tests read the page, not logs
        pass


class StaticServer:
    """A static file server on loopback, as any web host would serve the site."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_SiteHandler, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def build_site(folder: Path, workflow: Path) -> Path:
    """``docker-workflow build WORKFLOW --target web -o folder/<name>``.

    Pyodide's tarball is cached in the project's cache/ (scripts/setup_web.sh fetches it), not
    in each test's own cache: the download is the same pinned file every time.
    """
    out = folder / workflow.stem
    env = {"DOCKER_WORKFLOW_CACHE": str(ROOT / "cache")}
    done = run_cli("build", str(workflow), "--target", "web", "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def sites(tmp_path_factory) -> Path:
    """The folder the file server serves: one site per subfolder, all of one origin."""
    return tmp_path_factory.mktemp("sites")


@pytest.fixture(scope="session")
def site(sites) -> Path:
    """The ``text_insights`` site, built once (served at ``/text_insights/``)."""
    return build_site(sites, SITE_WORKFLOW)


@pytest.fixture(scope="session")
def site_builder(sites):
    """Build one more site beside the others: ``site_builder(workflow_path) -> folder``."""
    return functools.partial(build_site, sites)


@pytest.fixture(scope="session")
def summarizer_site(sites) -> Path:
    """The ``simple_summarizer`` site (one LLM step), at ``/simple_summarizer/``."""
    return build_site(sites, ROOT / "workflows" / "simple_summarizer.json")


@pytest.fixture(scope="session")
def site_server(sites) -> Iterator[StaticServer]:
    server = StaticServer(sites)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llm_server(site_server) -> Iterator[LLMServer]:
    """The dev LLM server, allowing the site's origin (``OLLAMA_ORIGINS``, as Ollama reads)."""
    saved = os.environ.get("OLLAMA_ORIGINS")
    os.environ["OLLAMA_ORIGINS"] = site_server.origin
    try:
        server = LLMServer("127.0.0.1")
    finally:
        if saved is None:
            os.environ.pop("OLLAMA_ORIGINS")
        else:
            os.environ["OLLAMA_ORIGINS"] = saved
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One headless Chromium for the whole session."""
    if not (shutil.which(CHROMIUM) and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are not installed: run scripts/setup_web.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_AVOID_STATS"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        "--window-size=1000,1500",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # shown when a test fails
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The workflow page in the session's browser: its state, its texts."""

    def __init__(self, driver) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def wait_for_end(self, timeout: float = 240.0, states=("done", "failed")) -> str:
        """The page's final state (``done`` or ``failed``), or a failure with its console."""
        ended = time.monotonic() + timeout
        state = None
        while time.monotonic() < ended:
            state = self.driver.find_element("tag name", "body").get_attribute("data-state")
            if state in states:
                return state
            time.sleep(0.1)
        console = "\n".join(entry["message"] for entry in self.driver.get_log("browser"))
        pytest.fail(f"the page did not finish in {timeout:g} s: {state}\n{console}")

    def text(self, element_id: str) -> str:
        return self.driver.find_element("id", element_id).text

    def element(self, element_id: str):
        return self.driver.find_element("id", element_id)

    def select(self, element_id: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.element(element_id)).select_by_value(value)

    def screenshot(self, name: str) -> None:
        """Save the page as ``name`` in ``$DOCKER_WORKFLOW_SCREENSHOTS`` (the docs' pictures
        are made with ``DOCKER_WORKFLOW_SCREENSHOTS=docs``); nothing when it is not set, so
        test runs leave the work tree alone."""
        folder = os.environ.get("DOCKER_WORKFLOW_SCREENSHOTS")
        if folder:
            target = Path(folder) if Path(folder).is_absolute() else ROOT / folder
            target.mkdir(parents=True, exist_ok=True)
            assert self.driver.save_screenshot(str(target / name))

    def all(self, css: str) -> list:
        return self.driver.find_elements("css selector", css)


@pytest.fixture
def page(browser) -> Page:
    return Page(browser)
