"""``build --target web``: what the site holds, and what the build refuses (one line each)."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import ROOT, minimal_workflow, run_cli, write_json
from wheels import make_wheel, offline_index

from rules.paths import cache_dir
from rules.stages.web import pyodide_dist


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pyodide_cache(site):
    """This test's own cache, seeded with the pinned Pyodide the session's build fetched."""
    shutil.copytree(ROOT / "cache" / "web", cache_dir() / "web")
    return cache_dir() / "web"


def python_tool_workflow(tmp_path, code, **tool_keys):
    tool = {"type": "python", "source_code": code, **tool_keys}
    data = minimal_workflow(
        steps=[{"step_id": "a", "type": "python_tool", "tool": "t", "input_mapping": {}}],
        outputs={},
        tools={"t": tool},
    )
    return write_json(tmp_path / "wf.json", data)


def test_the_site_holds_the_checked_runtime_a_shaken_stdlib_and_the_engine(site):
    names = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert names == [
        "app.js",
        "bundle.json",
        "engine.zip",
        "index.html",
        "pyodide/pyodide-lock.json",
        "pyodide/pyodide.asm.mjs",
        "pyodide/pyodide.asm.wasm",
        "pyodide/pyodide.mjs",
        "pyodide/python_stdlib.zip",
        "site.json",
        "style.css",
        "worker.js",
    ]
    manifest = json.loads(
        (ROOT / "cache" / "web" / f"pyodide-{pyodide_dist.VERSION}" / "files.json").read_text()
    )
    assert manifest["integrity"] == pyodide_dist.INTEGRITY
    for name in pyodide_dist.RUNTIME_FILES:
        assert sha256(site / "pyodide" / name) == manifest["files"][name]
    with zipfile.ZipFile(site / "pyodide" / "python_stdlib.zip") as archive:
        stdlib = {name.split("/")[0].removesuffix(".py") for name in archive.namelist()}
    assert {"json", "re", "asyncio", "pyodide", "_pyodide", "encodings", "queue"} <= stdlib
    assert not stdlib & {
        "unittest",
        "multiprocessing",
        "sqlite3",
        "xml",
        "tkinter",
        "pydoc",
        "_pyrepl",
    }
    with zipfile.ZipFile(site / "engine.zip") as archive:
        engine = set(archive.namelist())
    assert {
        "runner_template/engine.py",
        "runner_template/web/host.py",
        "runner_template/llm.py",
    } <= engine
    assert not engine & {
        "runner_template/main.py",
        "runner_template/serve.py",
        "runner_template/batch.py",
    }
    config = json.loads((site / "site.json").read_text())
    bundle = json.loads((site / "bundle.json").read_text())
    assert config["mode"] == "pyodide" and config["pyodide"] == pyodide_dist.VERSION
    assert config["workflow"]["inputs"] == bundle["workflow"]["inputs"]
    assert config["endpoint"] == "http://localhost:11434"  # no tool names one: Ollama's default


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import subprocess\nsubprocess.run(['ls'])", "imports subprocess, which starts processes"),
        ("from socket import create_connection", "imports socket, which opens raw sockets"),
        ("import os\nos.system('ls')", "calls os.system, which starts processes"),
    ],
)
def test_a_tool_a_browser_cannot_run_is_a_one_line_build_error(tmp_path, code, reason):
    path = python_tool_workflow(tmp_path, code)
    done = run_cli("build", str(path), "--target", "web", "-o", str(tmp_path / "site"))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert f"tool 't': {reason}" in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "site").exists()


def test_inline_code_is_checked_too(tmp_path):
    data = minimal_workflow(
        steps=[{"step_id": "run", "type": "python_tool", "code": "import subprocess\nresult = 1"}],
        outputs={},
    )
    path = write_json(tmp_path / "wf.json", data)
    done = run_cli("build", str(path), "--target", "web", "-o", str(tmp_path / "site"))
    assert done.returncode == 2
    assert "step 'run' (inline code): imports subprocess" in done.stderr


def test_pure_wheels_ship_in_the_site_and_compiled_ones_are_refused(
    tmp_path, monkeypatch, pyodide_cache
):
    index = tmp_path / "index"
    make_wheel(
        index, "tinypure", "1.0", modules={"tinypure/__init__.py": "import json\nVALUE = 2\n"}
    )
    make_wheel(index, "fastc", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    for key, value in offline_index(index).items():
        monkeypatch.setenv(key, value)
    good = python_tool_workflow(
        tmp_path / "good", "import tinypure\nprint(tinypure.VALUE)", requirements=["tinypure==1.0"]
    )
    out = tmp_path / "site"
    done = run_cli("build", str(good), "--target", "web", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "site.json").read_text())["wheels"] == [
        "wheels/tinypure-1.0-py3-none-any.whl"
    ]
    assert (out / "wheels" / "tinypure-1.0-py3-none-any.whl").is_file()
    bad = python_tool_workflow(tmp_path / "bad", "import fastc", requirements=["fastc==1.0"])
    done = run_cli("build", str(bad), "--target", "web", "-o", str(tmp_path / "site2"))
    assert done.returncode == 2
    assert (
        "package fastc 1.0 has compiled code (fastc-1.0-cp311-cp311-manylinux_2_17_x86_64.whl)"
        in done.stderr
    )
    assert str(bad) in done.stderr and len(done.stderr.strip().splitlines()) == 1


class _Registry(BaseHTTPRequestHandler):
    """An npm registry on loopback that serves a tarball which is not the pinned one."""

    def do_GET(self) -> None:
        body = b"not the pyodide you pinned"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(
            "DOCKER_WORKFLOW_NPM_REGISTRY", f"http://127.0.0.1:{server.server_address[1]}"
        )
        workflow = ROOT / "workflows" / "text_insights.json"
        done = run_cli("build", str(workflow), "--target", "web", "-o", str(tmp_path / "site"))
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1
    assert "the tarball's hash is not the pinned one" in done.stderr
    assert not (cache_dir() / "web" / f"pyodide-{pyodide_dist.VERSION}").exists()


def test_a_changed_cached_file_is_unpacked_again_from_the_checked_tarball(tmp_path, pyodide_cache):
    wasm = pyodide_cache / f"pyodide-{pyodide_dist.VERSION}" / "pyodide.asm.wasm"
    pristine = sha256(wasm)
    wasm.write_bytes(b"\0asm tampered")
    out = tmp_path / "site"
    done = run_cli(
        "build", str(ROOT / "workflows" / "text_insights.json"), "--target", "web", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert sha256(out / "pyodide" / "pyodide.asm.wasm") == pristine == sha256(wasm)


def test_the_site_folder_must_be_new_empty_or_a_site(tmp_path):
    workflow = str(ROOT / "workflows" / "text_insights.json")
    done = run_cli("build", workflow, "--target", "web")
    assert done.returncode == 2 and "build --target web needs -o DIR" in done.stderr
    done = run_cli("build", workflow, "--target", "web", "-o", str(tmp_path / "s"), "--push")
    assert done.returncode == 2 and "--push is for images" in done.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    done = run_cli("build", workflow, "--target", "web", "-o", str(tmp_path / "mine"))
    assert done.returncode == 1 and "is not a site built by docker-workflow" in done.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def request(url: str, method: str, path: str, headers: dict) -> http.client.HTTPResponse:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.mark.llm
def test_the_dev_llm_server_allows_the_origins_it_is_given(llm_server, site_server):
    origin = site_server.origin
    ask = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    preflight = request(llm_server.url, "OPTIONS", "/api/generate", ask)
    assert preflight.status == 204
    assert preflight.getheader("Access-Control-Allow-Origin") == origin
    assert "POST" in preflight.getheader("Access-Control-Allow-Methods")
    assert "Content-Type" in preflight.getheader("Access-Control-Allow-Headers")
    tags = request(llm_server.url, "GET", "/api/tags", {"Origin": origin})
    assert tags.status == 200 and tags.getheader("Access-Control-Allow-Origin") == origin
    other = request(
        llm_server.url, "OPTIONS", "/api/generate", {**ask, "Origin": "http://evil.example"}
    )
    assert other.status == 403 and other.getheader("Access-Control-Allow-Origin") is None
    plain = request(llm_server.url, "GET", "/api/tags", {})
    assert plain.getheader("Access-Control-Allow-Origin") is None
