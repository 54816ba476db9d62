"""The shared program and the workflow's module layer, through real images.

One workflow whose five steps import standard-library modules the shared program leaves out
(decimal, sqlite3, xml.etree.ElementTree, zlib, hashlib), a sixth that checks json's C
speedups are in the program, and two that reach across the program's stdlib.zip (a layered
``email.mime`` under the zipped ``email``, the idna codec), is built once for both platforms:
every step works on amd64, the same image's arm64 variant runs under QEMU. Another workflow has
the same program layer (by digest); a rebuild from a re-assembled layer gives the same image
digest; a module the builder cannot provide fails the build in one line, before any image.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from helpers import WORKFLOWS, write_json
from image_inspect import (
    docker_run,
    image_file,
    image_files,
    image_id,
    platform_layers,
    zip_members,
)
from tls_server import serve_https

from rules.stages.sbom import validate_sbom

TAG = "dw-test/layer-imports:1"


def step(step_id: str, code: str) -> dict:
    return {
        "step_id": step_id,
        "type": "python_tool",
        "code": code,
        "input_mapping": {"text": "inputs.text"},
        "output_name": "result",
    }


def imports_workflow() -> dict:
    steps = [
        step("money", "from decimal import Decimal\nresult = str(Decimal('0.1') + Decimal('0.2'))"),
        step(
            "rows",
            "import sqlite3\ndb = sqlite3.connect(':memory:')\ndb.execute('create table t (x)')\n"
            "db.executemany('insert into t values (?)', [(len(text),), (2,)])\n"
            "result = db.execute('select sum(x) from t').fetchone()[0]",
        ),
        step(
            "tags",
            "import xml.etree.ElementTree as ET\n"
            "result = ET.fromstring('<a><b>' + text + '</b></a>').find('b').text",
        ),
        step(
            "packed", "import zlib\nresult = zlib.decompress(zlib.compress(text.encode())).decode()"
        ),
        step("digest", "import hashlib\nresult = hashlib.sha256(text.encode()).hexdigest()"),
        # The program's json has its C speedups (_json): Nuitka leaves them out unless asked.
        step(
            "speedups",
            "import json.decoder, json.encoder\n"
            "result = [json.decoder.scanstring.__module__,"
            " json.encoder.c_make_encoder is not None]",
        ),
        # A layered submodule of a package from the program's stdlib.zip (email), and a
        # codec in the zip under the package the binary keeps (encodings).
        step(
            "mail",
            "from email.mime.text import MIMEText\nresult = MIMEText(text)['Content-Type']",
        ),
        step(
            "idna",
            "result = [('b\\u00fccher.' + text).encode('idna').decode(),"
            " '\\u00e9'.encode('cp1252').hex()]",
        ),
    ]
    return {
        "workflow_id": "layer-imports",
        "version": "1.0.0",
        "inputs": {"text": {"type": "string", "required": True}},
        "outputs": {
            s["step_id"]: {"source_reference": f"steps.{s['step_id']}.result"} for s in steps
        },
        "steps": steps,
    }


EXPECTED = {
    "money": "0.3",
    "rows": 7,
    "tags": "hello",
    "packed": "hello",
    "digest": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    "speedups": ["_json", True],
    "mail": 'text/plain; charset="us-ascii"',
    "idna": ["xn--bcher-kva.hello", "e9"],
}


@pytest.fixture(scope="module")
def workflow_file(tmp_path_factory):
    return write_json(tmp_path_factory.mktemp("layer") / "imports.json", imports_workflow())


@pytest.fixture(scope="module")
def imports_image(dw, workflow_file):
    proc = dw("build", str(workflow_file), "-t", TAG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return TAG


def program_layer(tag: str, platform: str) -> str:
    """The digest of the image's program layer (Dockerfile.image: /tmp, then the program)."""
    return platform_layers(tag, platform)[1]


def test_the_five_imports_work_in_the_amd64_image(imports_image):
    proc = docker_run(
        imports_image, '{"text": "hello"}', options=["--read-only", "--user", "65532"]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == EXPECTED


@pytest.mark.parametrize("lang", ["C.UTF-8", "de_DE.ISO-8859-1"])
def test_a_locale_named_from_outside_does_not_stop_the_program(imports_image, lang):
    # The image has no locale files: before LC_CTYPE=C in its environment, any such LANG made
    # the program die at start with SIGSEGV.
    proc = docker_run(imports_image, '{"text": "hello"}', options=["-e", f"LANG={lang}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == EXPECTED


def test_the_arm64_image_imports_from_its_layer_under_qemu(imports_image):
    proc = docker_run(imports_image, '{"text": "hello"}', platform="linux/arm64")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == EXPECTED
    files = image_files(imports_image, "linux/arm64")
    assert "app/_sqlite3.cpython-311-aarch64-linux-gnu.so" in files
    assert any(name.endswith("/libsqlite3.so.0") for name in files)


def test_the_layer_holds_only_what_the_imports_need(imports_image):
    files = image_files(imports_image, "linux/amd64")
    layered = zip_members(imports_image, "linux/amd64", "/app/layer.zip")
    assert {"decimal.pyc", "xml/etree/ElementTree.pyc", "email/mime/text.pyc"} <= layered
    assert not any(name.endswith(".py") for name in files)  # bytecode only
    # No TLS, no compression modules, nothing of a group no step imports.
    for absent in ("_ssl", "libssl", "_lzma", "_bz2", "asyncio", "email/feedparser"):
        assert not any(absent in name for name in [*files, *layered]), absent
    # The program's own standard library is zipped beside it: email is there, not loose, and
    # not again in the layer.
    program = zip_members(imports_image, "linux/amd64", "/app/stdlib.zip")
    assert "email/__init__.pyc" in program and "email/__init__.pyc" not in layered
    assert not any(name.startswith("app/email") for name in files)


def test_two_workflows_share_the_program_layer(imports_image, dw):
    proc = dw("build", str(WORKFLOWS / "calculator.json"), "-t", "dw-test/layer-other:1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compiling the engine" not in proc.stderr  # the compiled program was there: no compile
    for platform in ("linux/amd64", "linux/arm64"):
        assert program_layer("dw-test/layer-other:1", platform) == program_layer(TAG, platform)
    subprocess.run(["docker", "rmi", "-f", "dw-test/layer-other:1"], capture_output=True)


def test_a_reassembled_layer_gives_the_same_image_digest(
    imports_image, dw, workflow_file, shared_cache
):
    before = image_id(imports_image)
    shutil.rmtree(shared_cache / "layers")  # the layer is assembled again from the builder's files
    proc = dw("build", str(workflow_file), "-t", "dw-test/layer-imports:again")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith(". ")]
    assert "layer:imports-amd64" in ran and "layer:imports-arm64" in ran
    assert image_id("dw-test/layer-imports:again") == before
    subprocess.run(["docker", "rmi", "-f", "dw-test/layer-imports:again"], capture_output=True)


def test_a_module_the_builder_lacks_is_one_line_before_any_image(dw, tmp_path):
    data = imports_workflow()
    data["workflow_id"] = "layer-missing"
    data["steps"] = [step("window", "import tkinter\nresult = tkinter.TkVersion")]
    data["outputs"] = {"window": {"source_reference": "steps.window.result"}}
    path = write_json(tmp_path / "missing.json", data)
    proc = dw("build", str(path), "--platform", "linux/amd64", "-t", "dw-test/layer-missing:1")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "step window imports tkinter" in lines[0] and "linux/amd64" in lines[0]
    assert "Traceback" not in proc.stderr
    inspect = subprocess.run(
        ["docker", "image", "inspect", "dw-test/layer-missing:1"], capture_output=True
    )
    assert inspect.returncode != 0  # no image was made


def test_the_sbom_lists_the_layer_and_matches_docker_workflow_sbom(
    imports_image, dw, workflow_file
):
    shipped = image_file(imports_image, "linux/arm64", "/app/sbom.cdx.json")
    validate_sbom(shipped)
    printed = dw("sbom", str(workflow_file), "--platform", "linux/arm64")
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert printed.stdout.encode() == shipped
    components = json.loads(shipped)["components"]
    kinds = {
        c["name"]: p["value"]
        for c in components
        for p in c.get("properties", [])
        if p["name"] == "docker-workflow:module-kind"
    }
    assert kinds["sqlite3"] == "LayeredBytecodeModule"
    assert kinds["_sqlite3"] == "LayeredExtensionModule"
    assert any(c["name"] == "libsqlite3.so.0" for c in components)


def test_an_https_api_tool_gets_tls_from_the_layer(dw, tmp_path):
    secure, ca = serve_https(tmp_path)
    port = secure.server_address[1]
    data = {
        "workflow_id": "layer-https",
        "version": "1.0.0",
        "inputs": {"q": {"type": "string", "required": True}},
        "outputs": {"reply": {"source_reference": "steps.ask.reply"}},
        "steps": [
            {
                "step_id": "ask",
                "type": "existing_tool",
                "tool": "lookup",
                "input_mapping": {"q": "inputs.q"},
                "output_name": "reply",
            }
        ],
        "tools": {
            "lookup": {
                "type": "api",
                "api_spec": {"method": "GET", "url": f"https://127.0.0.1:{port}/{{q}}"},
            }
        },
    }
    path = write_json(tmp_path / "https.json", data)
    try:
        proc = dw("build", str(path), "--platform", "linux/amd64", "-t", "dw-test/layer-https:1")
        assert proc.returncode == 0, proc.stderr[-3000:]
        options = ["--network", "host", "-v", f"{ca}:/ca.pem:ro", "-e", "SSL_CERT_FILE=/ca.pem"]
        run = docker_run("dw-test/layer-https:1", '{"q": "ping"}', options=options)
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout)["reply"] == {"path": "/ping", "secure": True}
        files = image_files("dw-test/layer-https:1", "linux/amd64")
        assert "etc/ssl/certs/ca-certificates.crt" in files
        assert "ssl.pyc" in zip_members("dw-test/layer-https:1", "linux/amd64", "/app/layer.zip")
    finally:
        secure.shutdown()
        subprocess.run(["docker", "rmi", "-f", "dw-test/layer-https:1"], capture_output=True)
