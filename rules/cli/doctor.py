"""``docker-workflow doctor``: what this machine has for building and running workflows.

One line per piece (the Docker engine and its version, buildx, arm64 emulation, the builder
image and, when it is missing, the tools that make it, the LLM endpoint and its models, free
disk for the cache), each missing piece with the command that fixes it. Errors about a missing
piece elsewhere point here, so a newcomer has one place to look. It asks the docker CLI (fast,
and it still answers when the engine is down) and the endpoint's Ollama API, each with a short
timeout: the doctor never hangs on a dead daemon or a filtered port.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rules.console import print_message
from rules.docker.engine import BUILDER_IMAGE_ENV
from rules.paths import cache_dir
from rules.platforms import DEFAULT_PLATFORMS
from rules.stages.bases import PLATFORMS_LABEL, bootstrap_tool, builder_tag, missing_tools
from rules.stages.toolchain import host_arch
from runner_template.errors import EXIT_LLM_UNREACHABLE

OK, WARN, MISSING, SKIPPED = "ok", "warn", "missing", "?"
DOCTOR_HINT = "docker-workflow doctor says what is missing and how to fix it"
DEFAULT_ENDPOINT = "http://localhost:11434"
# A cold build of both platforms keeps about 3 GiB (builder image, BuildKit layers, compile
# caches); below the warning level the next builds may fill the disk.
DISK_MISSING_GIB = 2
DISK_WARN_GIB = 10
TIMEOUT = 10


@dataclass(frozen=True)
class Check:
    """One line of the report: what, its state, what was found, the command that fixes it."""

    name: str
    state: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Settings:
    builder_image: str | None
    endpoint: str


def _docker(*args: str) -> subprocess.CompletedProcess | None:
    """``docker ARGS`` (text), or None when there is no docker command or it hangs."""
    if shutil.which("docker") is None:
        return None
    try:
        return subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no answer")


def check_engine() -> Check:
    if shutil.which("docker") is None:
        return Check(
            "docker engine",
            MISSING,
            "no 'docker' command on PATH",
            "bash scripts/setup.sh (Debian, root), or install Docker Engine 26+",
        )
    found = _docker("version", "--format", "{{json .}}")
    facts = {}
    if found is not None and found.stdout.strip():
        try:
            facts = json.loads(found.stdout)
        except ValueError:
            facts = {}
    server = facts.get("Server") or {}
    if found is None or found.returncode != 0 or not server:
        why = "no answer in time" if found is None else _first_line(found.stderr)
        return Check(
            "docker engine",
            MISSING,
            f"not reachable ({why})",
            "bash scripts/setup.sh starts dockerd (root); or set DOCKER_HOST",
        )
    detail = f"{server.get('Version', '?')} (API {server.get('ApiVersion', '?')})"
    info = _docker("info", "--format", "{{json .DriverStatus}}")
    store = info.stdout if info is not None and info.returncode == 0 else ""
    if "io.containerd.snapshotter" not in store:
        return Check(
            "docker engine",
            WARN,
            f"{detail}, classic image store: multi-platform --load needs the containerd one",
            'set {"features": {"containerd-snapshotter": true}} in /etc/docker/daemon.json'
            " and restart dockerd",
        )
    return Check("docker engine", OK, f"{detail}, containerd image store")


def check_buildx() -> Check:
    found = _docker("buildx", "version")
    if found is None or found.returncode != 0:
        return Check(
            "buildx", MISSING, "docker buildx is not installed", "apt-get install docker-buildx"
        )
    return Check("buildx", OK, _first_line(found.stdout))


def check_arm64() -> Check:
    if host_arch() == "arm64":
        return Check("arm64 emulation", OK, "not needed: this machine is arm64")
    found = _docker("buildx", "ls")
    if found is None or found.returncode != 0:
        return Check("arm64 emulation", MISSING, "buildx cannot list its builders", "see buildx")
    if "linux/arm64" in found.stdout:
        return Check("arm64 emulation", OK, "linux/arm64 builds run under QEMU (binfmt)")
    return Check(
        "arm64 emulation",
        MISSING,
        "buildx offers no linux/arm64",
        "apt-get install qemu-user-static binfmt-support && update-binfmts --enable qemu-aarch64",
    )


def _image_platforms(reference: str) -> list[str] | None:
    """The platforms a local image says it has (its label), [] if it says nothing, None if it
    is not there."""
    found = _docker("image", "inspect", "--format", "{{json .Config.Labels}}", reference)
    if found is None or found.returncode != 0:
        return None
    labels = json.loads(found.stdout.strip() or "null") or {}
    text = labels.get(PLATFORMS_LABEL, "")
    return [p for p in text.split(",") if p]


def check_builder(settings: Settings) -> Check:
    both = builder_tag(DEFAULT_PLATFORMS)
    make = f"docker-workflow bases && export {BUILDER_IMAGE_ENV}={both}"
    reference = settings.builder_image
    if reference is None:
        if _image_platforms(both) is not None:
            return Check(
                "builder image",
                WARN,
                f"{both} is here but not selected: builds would pull python:3.11 from Docker Hub",
                f"export {BUILDER_IMAGE_ENV}={both}",
            )
        return Check(
            "builder image",
            MISSING,
            f"{BUILDER_IMAGE_ENV} is not set: builds would pull python:3.11 from Docker Hub",
            make + "  (offline, from Debian packages)",
        )
    platforms = _image_platforms(reference)
    if platforms is None:
        return Check("builder image", MISSING, f"{reference} is not in the engine", make)
    if not platforms:
        return Check("builder image", OK, f"{reference} (its platforms are not recorded)")
    lacking = [p for p in DEFAULT_PLATFORMS if p not in platforms]
    if lacking:
        return Check(
            "builder image",
            WARN,
            f"{reference} has {', '.join(platforms)} only: a build for"
            f" {', '.join(lacking)} needs a two-platform builder",
            make,
        )
    return Check("builder image", OK, f"{reference} ({', '.join(platforms)})")


def check_builder_tools() -> Check:
    """What ``docker-workflow bases`` needs to make the builder image here (asked only when
    that image is not ready): each platform's bootstrap tool and what it runs."""
    tools = sorted({bootstrap_tool(arch) for arch in ("amd64", "arm64")})
    lacking = sorted({package for tool in tools for package in missing_tools(tool)})
    if lacking:
        return Check(
            "builder tools",
            MISSING,
            f"making the builder image needs {', '.join(lacking)}",
            f"apt-get install {' '.join(lacking)}  (scripts/setup.sh does)",
        )
    return Check("builder tools", OK, f"{' and '.join(tools)} can make the builder image")


def check_endpoint(settings: Settings) -> Check:
    url = settings.endpoint.rstrip("/")
    fix = "start Ollama (ollama serve), or the dev LLM: docker-workflow llm-server --port 11434"
    try:
        with urllib.request.urlopen(f"{url}/api/tags", timeout=3) as response:
            body = json.loads(response.read(1 << 20))
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return Check("LLM endpoint", MISSING, f"{url} does not answer ({reason})", fix)
    models = sorted(m.get("name", "?") for m in body.get("models", []) if isinstance(m, dict))
    if not models:
        return Check(
            "LLM endpoint", WARN, f"{url} answers but serves no models", "ollama pull llama3"
        )
    return Check("LLM endpoint", OK, f"{url}: {', '.join(models)}")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk() -> Check:
    where = cache_dir()
    free = shutil.disk_usage(_existing(where)).free >> 30
    info = _docker("info", "--format", "{{.DockerRootDir}}")
    root = info.stdout.strip() if info is not None and info.returncode == 0 else ""
    docker_free = shutil.disk_usage(_existing(Path(root))).free >> 30 if root else free
    low = min(free, docker_free)
    detail = f"{free} GiB free for the cache ({where})"
    if root:
        detail += f", {docker_free} GiB for Docker ({root})"
    fix = "free some space, or point DOCKER_WORKFLOW_CACHE at a larger disk"
    if low < DISK_MISSING_GIB:
        return Check("free disk", MISSING, detail, fix)
    if low < DISK_WARN_GIB:
        return Check("free disk", WARN, detail, fix)
    return Check("free disk", OK, detail)


def diagnose(settings: Settings) -> list[Check]:
    """Every check, in the order a setup makes them true."""
    engine = check_engine()
    if engine.state == MISSING:
        rest = [
            Check(name, SKIPPED, "not checked: needs the docker engine")
            for name in ("buildx", "arm64 emulation", "builder image")
        ]
    else:
        rest = [check_buildx(), check_arm64(), check_builder(settings)]
        if rest[-1].state != OK:
            rest.append(check_builder_tools())
    return [engine, *rest, check_endpoint(settings), check_disk()]


def settings_from(builder_image: str | None, endpoint: str | None) -> Settings:
    return Settings(
        builder_image=builder_image or os.environ.get(BUILDER_IMAGE_ENV) or None,
        endpoint=endpoint or os.environ.get("OLLAMA_ENDPOINT") or DEFAULT_ENDPOINT,
    )


def report(checks: list[Check]) -> str:
    """The checks as aligned lines, each missing or doubtful piece followed by its fix."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.state:<7} {c.name:<{width}}  {c.detail}")
        if c.fix and c.state != OK:
            lines.append(f"{'':<7} {'':<{width}}  fix: {c.fix}")
    return "\n".join(lines)


def hint_on_exit(code: int) -> int:
    """A run's exit code, passed on; when it says the LLM did not answer, a pointer here."""
    if code == EXIT_LLM_UNREACHABLE:
        print_message(
            "hint", "yellow", "the LLM endpoint did not answer; docker-workflow doctor checks it"
        )
    return code


def run_doctor(builder_image: str | None, endpoint: str | None) -> int:
    """Print the report on stdout; 1 when something needed is missing, else 0."""
    checks = diagnose(settings_from(builder_image, endpoint))
    print(report(checks))
    return 1 if any(c.state == MISSING for c in checks) else 0
