"""Real workflows in real images: third-party packages (hermetic, both platforms), the original's
tool format, sub-workflows, and the clean failures of bad requirements.

Packages come from the test wheelhouse (real wheels of requests and PyYAML, fetched once by
scripts/wheelhouse.sh): pip resolves from that folder only, so no test talks to an index.
"""

from __future__ import annotations

import json
import subprocess
from http.server import ThreadingHTTPServer

import pytest
from helpers import ROOT, write_json
from image_inspect import docker_run, image_files, image_links, image_platforms, zip_members
from tls_server import JSONHandler, serve_https, serve_in_thread
from wheels import make_wheel, offline_index

WHEELHOUSE = ROOT / "cache" / "test-wheelhouse"
FETCH = """
import json, sys
import requests
args = json.load(sys.stdin)
if not args.get("url"):
    print(json.dumps(None))
else:
    reply = requests.get(args["url"], timeout=10)
    reply.raise_for_status()
    print(json.dumps(reply.json()))
"""
PARSE = """
import json, sys
import yaml
args = json.load(sys.stdin)
data = yaml.load(args["text"], Loader=yaml.CSafeLoader)
print(json.dumps({"data": data, "c_loader": yaml.__with_libyaml__}))
"""


def packages_workflow() -> dict:
    """The original project's portable format: ToolDefinitions with source_code/requirements."""
    return {
        "workflow_id": "packages-demo",
        "version": "1.0.0",
        "portable": True,
        "inputs": {
            "text": {"type": "string", "required": True},
            "url": {"type": "string", "default": ""},
        },
        "outputs": {
            "parsed": {"source_reference": "steps.parse.result"},
            "fetched": {"source_reference": "steps.fetch.result"},
        },
        "steps": [
            {
                "step_id": "parse",
                "type": "python_tool",
                "tool": "parse_yaml",
                "input_mapping": {"text": "inputs.text"},
                "output_name": "result",
            },
            {
                "step_id": "fetch",
                "type": "existing_tool",
                "tool": "fetch_json",
                "input_mapping": {"url": "inputs.url"},
                "output_name": "result",
            },
        ],
        "tools": {
            "parse_yaml": {
                "tool_id": "parse_yaml",
                "name": "Parse YAML",
                "type": "python",
                "source_code": PARSE,
                "requirements": ["PyYAML==6.0.2"],
            },
            "fetch_json": {
                "tool_id": "fetch_json",
                "name": "Fetch JSON",
                "type": "executable",
                "source_code": FETCH,
                "requirements": ["requests==2.32.3"],
                "timeout": 30,
            },
        },
    }


@pytest.fixture(scope="module")
def index_env():
    if not (WHEELHOUSE / "requests-2.32.3-py3-none-any.whl").exists():
        pytest.fail("the test wheelhouse is missing: run scripts/wheelhouse.sh (test.sh does)")
    return offline_index(WHEELHOUSE)


@pytest.fixture(scope="module")
def packages_image(dw, index_env, tmp_path_factory):
    path = write_json(tmp_path_factory.mktemp("pkgs") / "packages.json", packages_workflow())
    proc = dw("build", str(path), "-t", "dw-test/packages:1", env=index_env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return "dw-test/packages:1"


def test_both_platforms_and_the_packages_are_in_the_image(packages_image, dw):
    assert image_platforms(packages_image) == {"linux/amd64", "linux/arm64"}
    files = image_files(packages_image, "linux/amd64")
    names = " ".join(files)
    assert "app/certifi/cacert.pem" in files  # certifi's CA bundle (package data) came along
    assert "_ssl" in names and "libssl" in names  # requests needs ssl: the shaking kept it
    # One CA bundle, not two: the system path (SSL_CERT_FILE) is a link to certifi's.
    links = image_links(packages_image, "linux/amd64")
    assert links["etc/ssl/certs/ca-certificates.crt"] == "../../../app/certifi/cacert.pem"
    assert "etc/ssl/certs/ca-certificates.crt" not in files
    # Pure-Python distributions are read from the deflated zip; one with extension modules
    # (PyYAML's C loader) or one that asks for a real path to its data (certifi) stays loose.
    zipped = zip_members(packages_image, "linux/amd64", "/app/layer.zip")
    assert {"requests/__init__.pyc", "urllib3/__init__.pyc", "idna/core.pyc"} <= zipped
    assert "requests-2.32.3.dist-info/METADATA" in zipped
    assert not any(name.startswith(("app/requests/", "app/urllib3/")) for name in files)
    assert "app/yaml/__init__.pyc" in files and "app/certifi/core.pyc" in files


def test_amd64_fetches_over_http_and_https_on_loopback(packages_image, tmp_path):
    plain = serve_in_thread(ThreadingHTTPServer(("127.0.0.1", 0), JSONHandler))
    secure, ca = serve_https(tmp_path)
    try:
        options = (
            "--network",
            "host",
            "--read-only",
            "-v",
            f"{ca}:/ca.pem:ro",
            "-e",
            "REQUESTS_CA_BUNDLE=/ca.pem",
        )
        for server, scheme in ((plain, "http"), (secure, "https")):
            url = f"{scheme}://127.0.0.1:{server.server_address[1]}/data?x=1"
            proc = docker_run(
                packages_image, options=options, stdin=json.dumps({"text": "a: [1, 2]", "url": url})
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            result = json.loads(proc.stdout)
            assert result["fetched"] == {"path": "/data?x=1", "secure": scheme == "https"}
            assert result["parsed"] == {"data": {"a": [1, 2]}, "c_loader": True}
        # Without the test CA the certificate is refused: verification is on.
        url = f"https://127.0.0.1:{secure.server_address[1]}/x"
        proc = docker_run(
            packages_image,
            options=("--network", "host"),
            stdin=json.dumps({"text": "a: 1", "url": url}),
        )
        assert proc.returncode == 5 and "CERTIFICATE_VERIFY_FAILED" in proc.stdout
    finally:
        plain.shutdown()
        secure.shutdown()


def test_arm64_parses_yaml_and_fetches_over_https_under_qemu(packages_image, tmp_path):
    """PyYAML's C loader (a loose wheel) and requests over TLS (read from the layer's zip;
    ``REQUESTS_CA_BUNDLE`` names the test CA) on the emulated platform."""
    secure, ca = serve_https(tmp_path)
    try:
        url = f"https://127.0.0.1:{secure.server_address[1]}/arm?y=2"
        inputs = json.dumps({"text": "name: edge\nitems: [a, b]\nnested: {k: 1.5}", "url": url})
        options = ("--network", "host", "--read-only", "-v", f"{ca}:/ca.pem:ro")
        options += ("-e", "REQUESTS_CA_BUNDLE=/ca.pem")
        proc = docker_run(packages_image, stdin=inputs, platform="linux/arm64", options=options)
    finally:
        secure.shutdown()
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["parsed"] == {
        "data": {"name": "edge", "items": ["a", "b"], "nested": {"k": 1.5}},
        "c_loader": True,
    }
    assert result["fetched"] == {"path": "/arm?y=2", "secure": True}


def test_same_inputs_same_image_digest(packages_image, dw, index_env, tmp_path):
    from image_inspect import image_id

    path = write_json(tmp_path / "packages.json", packages_workflow())
    proc = dw("build", str(path), "-t", "dw-test/packages:again", env=index_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert image_id("dw-test/packages:again") == image_id(packages_image)
    subprocess.run(["docker", "rmi", "dw-test/packages:again"], capture_output=True)


@pytest.mark.parametrize(
    ("requirements", "platforms", "message"),
    [
        (["no-such-package-zz==1.0"], "linux/amd64", "requirement 'no-such-package-zz==1.0'"),
        (
            ["onlyamd==1.0"],
            "linux/amd64,linux/arm64",
            "package 'onlyamd' has no wheel for linux/arm64",
        ),
    ],
)
def test_bad_requirements_fail_in_one_line_before_any_compile(
    dw, tmp_path, requirements, platforms, message
):
    extra = tmp_path / "extra"
    make_wheel(extra, "onlyamd", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    env = offline_index(WHEELHOUSE)
    env["PIP_FIND_LINKS"] = f"{WHEELHOUSE} {extra}"
    data = packages_workflow()
    data["workflow_id"] = "bad-packages"
    data["tools"]["parse_yaml"]["requirements"] = requirements
    path = write_json(tmp_path / "bad.json", data)
    cache = tmp_path / "cache"
    proc = dw(
        "build",
        str(path),
        "--platform",
        platforms,
        env={**env, "DOCKER_WORKFLOW_CACHE": str(cache)},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in proc.stderr
    assert "$.tools.parse_yaml.requirements" in errors[0]
    assert not (cache / "compiled").exists()  # nothing compiled, nothing half-built
