"""Shipping through a real registry (Debian's docker-registry on loopback): ``build --push``
prints and records ``NAME@sha256``, both platforms land, the digest pulls and runs, the same
inputs push the same digest, htpasswd auth over TLS with a test CA, one-line errors for a
registry that is down, refuses or is full; k8s manifests name the digest; the SBOM each image
ships (file, label, ``docker-workflow sbom``) follows the CycloneDX schema.

The calculator workflow (no LLM) is built once per session; every push after the first
reuses its compiled engines. Its images carry a label of this session, so no other test's image
has their digest and "pull by digest" really pulls.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import WORKFLOWS, wait_until
from image_inspect import docker_run
from registry_server import Registry, free_port

from rules.stages.prepared import digest
from rules.stages.sbom import SBOM_LABEL, validate_sbom

CALCULATOR = WORKFLOWS / "calculator.json"
SESSION = f"test.registry-session={uuid.uuid4().hex[:12]}"
PASSWORD = "pw-" + uuid.uuid4().hex  # never to be printed
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")


def docker(*args: str, env: dict | None = None, stdin: str | None = None):
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


@dataclass
class Pushed:
    tag: str
    reference: str  # what build --push printed


PUSHED_TAGS: set[str] = set()  # local tags the pushes leave behind, removed after the session


@pytest.fixture(scope="session", autouse=True)
def _remove_pushed_tags():
    yield
    for tag in sorted(PUSHED_TAGS):
        docker("image", "rm", "--force", tag)


def push(dw, tag: str, *extra: str, env: dict | None = None):
    PUSHED_TAGS.add(tag)
    proc = dw("build", str(CALCULATOR), "--tag", tag, "--push", "--label", SESSION, *extra, env=env)
    if proc.returncode == 0:  # and what a pull or a Swarm task fetches by digest
        PUSHED_TAGS.add(proc.stdout.strip().splitlines()[-1])
    return proc


def one_line_error(proc) -> str:
    """The failure's message: exit 1, one ``error:`` line, no traceback."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory):
    registry = Registry(tmp_path_factory.mktemp("registry-plain"))
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def secure_registry(tmp_path_factory):
    registry = Registry(tmp_path_factory.mktemp("registry-tls"), tls=True, users={"ship": PASSWORD})
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def pushed(dw, plain_registry) -> Pushed:
    tag = f"{plain_registry.host}/ship/calculator:1"
    proc = push(dw, tag)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Pushed(tag, proc.stdout.strip().splitlines()[-1])


def manifest(reference: str) -> dict:
    proc = docker("buildx", "imagetools", "inspect", "--raw", reference)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- push, digest, pull ----------------------------------------------------------------------


def test_push_prints_the_digest_of_the_index_with_both_platforms(pushed, plain_registry):
    name, _, found = pushed.reference.partition("@")
    assert name == f"{plain_registry.host}/ship/calculator"
    assert DIGEST.fullmatch("@" + found), pushed.reference
    index = manifest(pushed.reference)
    platforms = {"{os}/{architecture}".format(**m["platform"]) for m in index["manifests"]}
    assert platforms == {"linux/amd64", "linux/arm64"}
    # The tag in the registry names the same index as the printed digest.
    inspected = docker("buildx", "imagetools", "inspect", pushed.tag)
    assert f"Digest:    {found}" in inspected.stdout


def test_the_digest_pulls_on_an_engine_without_the_image_and_runs(pushed):
    docker("image", "rm", "--force", pushed.tag)
    docker("image", "rm", "--force", pushed.reference)
    assert docker("image", "inspect", pushed.reference).returncode != 0  # really gone
    pulled = docker("pull", "--platform", "linux/amd64", pushed.reference)
    assert pulled.returncode == 0, pulled.stderr
    try:
        proc = docker_run(pushed.reference, stdin='{"operation": "multiply", "a": 6, "b": 7}')
        assert proc.returncode == 0, proc.stderr
        outputs = json.loads(proc.stdout)
        assert outputs["result"] == 42
        assert "x86_64" in outputs["sentence"]
    finally:
        docker("image", "rm", "--force", pushed.reference)


def test_pushing_the_same_inputs_again_gives_the_same_digest(dw, pushed):
    again = push(dw, pushed.tag)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[-1] == pushed.reference


def test_k8s_manifests_name_the_pushed_digest(dw, pushed, tmp_path):
    proc = dw("k8s", str(CALCULATOR), "-o", str(tmp_path), "--serve", "--tag", pushed.tag)
    assert proc.returncode == 0, proc.stderr
    images = [
        container["image"]
        for path in sorted(tmp_path.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]
    assert images == [pushed.reference]


def test_k8s_names_the_tag_when_nothing_was_pushed(dw, tmp_path):
    tag = "never-pushed.example/ship/calculator:1"
    proc = dw("k8s", str(CALCULATOR), "-o", str(tmp_path), "--serve", "--tag", tag)
    assert proc.returncode == 0, proc.stderr
    assert f"image: {tag}" in "".join(p.read_text() for p in tmp_path.glob("*.yaml"))


# -- auth and TLS ----------------------------------------------------------------------------


def test_tls_registry_with_htpasswd_takes_the_credentials_of_docker_login(
    dw, secure_registry, tmp_path
):
    tag = f"{secure_registry.host}/ship/calculator:secure"
    config = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    refused = push(dw, tag, env=config)
    line = one_line_error(refused)
    assert secure_registry.host in line and "docker login" in line, line

    login = docker(
        "login", secure_registry.host, "-u", "ship", "--password-stdin", env=config, stdin=PASSWORD
    )
    assert login.returncode == 0, login.stderr
    proc = push(dw, tag, env=config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith(f"{secure_registry.host}/ship/calculator@sha256:")
    for text in (refused.stdout, refused.stderr, proc.stdout, proc.stderr):
        assert PASSWORD not in text
    found = proc.stdout.strip().split("@")[1]
    with pytest.raises(urllib.error.HTTPError, match="401"):
        secure_registry.manifest("ship/calculator", found)
    index = secure_registry.manifest("ship/calculator", found, "ship", PASSWORD)
    platforms = {m["platform"]["architecture"] for m in index["manifests"]}
    assert platforms == {"amd64", "arm64"}


def test_a_registry_that_is_down_is_one_line_naming_it(dw):
    host = f"127.0.0.1:{free_port()}"
    line = one_line_error(push(dw, f"{host}/ship/calculator:1"))
    assert host in line and "not reachable" in line, line


def test_a_registry_ends_with_the_test_process_that_started_it(tmp_path):
    """A killed test run runs no teardown: its registries got SIGTERM from the kernel when it
    ended (registry_server._die_with_parent) instead of serving on loopback for good."""
    starter = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); "
            "from registry_server import Registry; from pathlib import Path; "
            "r = Registry(Path(sys.argv[2])); print(r.process.pid, flush=True); time.sleep(600)",
            str(Path(__file__).resolve().parent.parent), str(tmp_path / "orphan"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    registry_pid = int(starter.stdout.readline())
    starter.kill()
    starter.wait()
    ended = wait_until(lambda: not serving(registry_pid), timeout=10)
    assert ended, "the registry outlived the test process that started it"


def serving(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting for init to reap it does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_read_only_registry_refuses_in_one_line(dw, tmp_path):
    registry = Registry(tmp_path / "ro", read_only=True)
    try:
        line = one_line_error(push(dw, f"{registry.host}/ship/calculator:1"))
        assert registry.host in line and "refused" in line, line
    finally:
        registry.stop()


def test_a_full_registry_is_one_line_naming_it(dw, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    registry = None
    try:
        registry = Registry(tmp_path / "full", storage=small)
        line = one_line_error(push(dw, f"{registry.host}/ship/calculator:1"))
        # The registry answers a full disk with a bare 500 (its log has the reason).
        assert registry.host in line and "500 Internal Server Error" in line, line
        assert "full disk" in line, line
    finally:
        if registry is not None:
            registry.stop()
        subprocess.run(["umount", str(small)], check=False)


# -- the SBOM --------------------------------------------------------------------------------


def _config_by_format(reference: str, arch: str) -> dict:
    proc = docker("buildx", "imagetools", "inspect", reference, "--format", "{{json .Image}}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[f"linux/{arch}"]


def sbom_in_image(reference: str, platform: str, tmp_path: Path) -> bytes:
    created = docker("create", "--platform", platform, reference)
    assert created.returncode == 0, created.stderr
    target = tmp_path / f"sbom-{platform.replace('/', '-')}.json"
    try:
        copied = docker("cp", f"{created.stdout.strip()}:/app/sbom.cdx.json", str(target))
        assert copied.returncode == 0, copied.stderr
    finally:
        docker("rm", created.stdout.strip())
    return target.read_bytes()


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_each_platform_ships_its_sbom_with_a_label_of_its_digest(dw, pushed, platform, tmp_path):
    shipped = sbom_in_image(pushed.reference, platform, tmp_path)
    config = _config_by_format(pushed.reference, platform.split("/")[1])
    assert config["config"]["Labels"][SBOM_LABEL] == digest(shipped)
    validate_sbom(shipped)  # the CycloneDX 1.6 JSON schema, strictly

    printed = dw("sbom", str(CALCULATOR), "--platform", platform)
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert printed.stdout.encode() == shipped  # the same inputs, the same bytes
    assert dw("sbom", str(CALCULATOR), "--platform", platform).stdout == printed.stdout

    bom = json.loads(shipped)
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["name"] == "workflow-calculator"
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    assert re.fullmatch(r"3\.\d+\.\d+", by_ref["cpython"]["version"])
    assert re.fullmatch(r"2\.\d+", by_ref["libc"]["version"])  # Debian's glibc
    names = {c["name"] for c in bom["components"] if c.get("group") == "cpython-stdlib"}
    assert {"json", "re", "platform"} <= names  # the engine's and the tool's imports
    assert not names & {"tkinter", "sqlite3"}  # shaken out
    assert any(c["name"].startswith("libc.so") for c in bom["components"])
    engine = by_ref["engine"]
    assert engine["hashes"][0]["alg"] == "SHA-256"


def test_sbom_of_a_broken_workflow_is_the_usual_one_line_error(dw, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"workflow_id": 3}')
    proc = dw("sbom", str(broken))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(broken) in proc.stderr


# -- Swarm -----------------------------------------------------------------------------------


def test_swarm_tasks_pull_the_pushed_digest(dw, pushed, swarm, tmp_path):
    """The batch's local image is the same build as the pushed one, so its tasks name
    NAME@sha256 (pulled from the registry, as a node that never saw the image would)."""
    docker("image", "rm", "--force", pushed.reference)  # the node must pull it
    inputs = tmp_path / "in.jsonl"
    rows = [{"operation": "add", "a": i, "b": 1} for i in range(12)]
    inputs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "results.jsonl"
    since = str(int(time.time()) - 1)
    proc = dw(
        "batch", str(CALCULATOR), str(inputs), "-o", str(out), "--engine", "swarm",
        "--replicas", "2", "--tag", pushed.tag, "--platform", "linux/amd64",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["outputs"]["result"] for r in found] == [i + 1 for i in range(12)]
    events = docker(
        "events", "--since", since, "--until", str(int(time.time()) + 1),
        "--filter", "type=container", "--filter", "event=create",
        "--filter", "label=docker-workflow.batch", "--format", "{{json .Actor.Attributes}}",
    )  # fmt: skip
    images = {json.loads(line)["image"] for line in events.stdout.splitlines()}
    tasks = {image for image in images if not image.startswith("sha256:")}
    assert tasks == {pushed.reference}, images
