"""``--serve --playground``: the workflow's page at ``GET /playground/``, through the real
program (the source tree's, and a rendered engine folder as images compile it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
import requests
from serving import CALC, ServeProcess

from rules.stages.render import render_engine
from runner_template.web import PAGE_FILES, content_type, page_files

TOKEN = "playground-t0ken"


@pytest.fixture(scope="module")
def service():
    served = ServeProcess(CALC, "--playground")
    yield served
    served.stop()


def check_playground(url: str) -> None:
    """What every served playground answers: the redirect, the page's bytes, their types."""
    moved = requests.get(url + "/playground", allow_redirects=False, timeout=10)
    assert moved.status_code == 301
    assert moved.headers["Location"] == "playground/"  # relative: kept under a proxy's prefix
    index = requests.get(url + "/playground", timeout=10)
    assert index.url == url + "/playground/"
    assert index.headers["Content-Type"] == "text/html; charset=utf-8"
    expected = page_files()
    assert index.content == expected["index.html"]
    for name in PAGE_FILES:
        reply = requests.get(f"{url}/playground/{name}", timeout=10)
        assert reply.status_code == 200, name
        assert reply.content == expected[name], name
        assert reply.headers["Content-Type"] == content_type(name)
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    config = requests.get(url + "/playground/site.json", timeout=10).json()
    assert config["mode"] == "service" and config["stream_url"] == "../stream"
    for missing in ("worker.js", "host.py", "../bundle.json", "nope.html"):
        reply = requests.get(f"{url}/playground/{missing}", timeout=10)
        assert reply.status_code == 404, missing
        assert reply.json()["error"]["type"] == "not_found"


def test_the_playground_serves_the_page_and_its_site_json(service):
    check_playground(service.url)
    config = requests.get(service.url + "/playground/site.json", timeout=10).json()
    assert config["workflow"]["inputs"] == CALC["workflow"]["inputs"]
    head = requests.head(service.url + "/playground/app.js", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(page_files()["app.js"])
    posted = requests.post(service.url + "/playground/", json={}, timeout=10)
    assert posted.status_code == 405 and posted.headers["Allow"] == "GET"


def test_the_pages_stream_url_reaches_the_services_stream(service):
    reply = requests.post(
        service.url + "/playground/../stream",  # requests normalizes it, as a browser does
        json={"a": 2, "b": 3},
        headers={"Accept": "application/x-ndjson"},
        timeout=30,
    )
    events = [json.loads(line) for line in reply.text.splitlines()]
    assert events[-1] == {"event": "result", "outputs": {"value": 5}}


def test_without_the_flag_there_is_no_playground():
    served = ServeProcess(CALC)
    try:
        for path in ("/playground", "/playground/", "/playground/index.html"):
            reply = requests.get(served.url + path, allow_redirects=False, timeout=10)
            assert reply.status_code == 404, path
    finally:
        served.stop()


def test_the_playground_is_behind_the_services_token():
    served = ServeProcess(
        CALC, "--playground", "--auth-token-env", "PLAY_TOKEN", env={"PLAY_TOKEN": TOKEN}
    )
    try:
        for path in ("/playground", "/playground/", "/playground/site.json"):
            refused = requests.get(served.url + path, allow_redirects=False, timeout=10)
            assert refused.status_code == 401, path
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        good = {"Authorization": f"Bearer {TOKEN}"}
        reply = requests.get(served.url + "/playground/", headers=good, timeout=10)
        assert reply.status_code == 200 and reply.content == page_files()["index.html"]
    finally:
        served.stop()


def test_a_rendered_engine_serves_the_page_from_its_generated_module(tmp_path):
    """The engine folder an image compiles has no page files, only ``page_data.py``."""
    engine = tmp_path / "engine"
    render_engine([], False, engine)
    web = engine / "runner_template" / "web"
    assert sorted(p.name for p in web.iterdir()) == ["__init__.py", "page_data.py"]
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(CALC))
    command = [sys.executable, str(engine / "main.py"), "--serve", "--playground"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0"],
        env={**os.environ, "WORKFLOW_BUNDLE": str(bundle)},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = json.loads(process.stderr.readline())["listening"]
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe empty
        check_playground(url)
    finally:
        process.terminate()
        process.wait(timeout=30)
