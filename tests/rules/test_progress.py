"""Progress of long steps: the plain lines off a terminal (format, cadence) from real processes,
``-q``, and the phase parsers on real lines from a debootstrap run and a Nuitka compile."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT, WORKFLOWS, run_cli

from rules.progress import HEARTBEAT_SECONDS, BootstrapLog, BuildLog, Phase, elapsed_text

# A real process: a child Python runs a Step over a real shell command that prints two
# debootstrap lines 3.5 s apart; the step beats every second (15 s in real use).
CHILD = r"""
import subprocess
from rules.progress import BootstrapLog, Step
script = "echo 'I: Retrieving adduser 3.134'; sleep 3.5; echo 'I: Extracting libaudit1...'"
with Step("probe step", BootstrapLog(), heartbeat=1.0) as step:
    with subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            step.feed(line.rstrip())
"""
LINE = re.compile(r"^probe step: (?P<phase>.+), (?P<elapsed>\d+s)$")


def test_plain_lines_off_a_terminal_carry_step_phase_and_elapsed_at_least_every_beat():
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    arrivals = []
    for line in proc.stderr:
        arrivals.append((time.monotonic() - started, line.rstrip("\n")))
    assert proc.wait() == 0, arrivals
    texts = [text for _, text in arrivals]
    assert re.fullmatch(r"probe step: done after [34]s", texts[-1]), texts
    matched = [LINE.match(text) for text in texts[:-1]]
    assert all(matched), texts
    phases = [m.group("phase") for m in matched]
    assert phases[0] in ("starting", "downloading packages (adduser)")
    assert "downloading packages (adduser)" in phases
    assert phases.count("downloading packages (adduser)") >= 3  # beats while it is quiet
    assert "unpacking packages (libaudit1)" in phases  # a new phase is a line at once
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < 1.0 + 0.6, arrivals
    assert HEARTBEAT_SECONDS <= 15


def test_quiet_keeps_only_errors(tmp_path):
    """A compile with a builder that cannot be fetched: progress lines without ``-q``, only the
    error with it; stdout stays empty either way."""
    args = (
        "build",
        str(WORKFLOWS / "simple_summarizer.json"),
        "--platform",
        "linux/amd64",
        "--builder-image",
        "127.0.0.1:9/missing/builder:1",
    )
    loud = run_cli(*args)
    assert loud.returncode == 1 and loud.stdout == ""
    # The compile's first step installs Nuitka with the builder (once per builder): that is
    # the step whose progress shows, and which fails.
    step = "installing nuitka for the compile stage (once per builder)"
    assert f"{step}: starting, 0s" in loud.stderr
    assert re.search(rf"{re.escape(step)}: failed after \d+s", loud.stderr)
    assert "error: compiling the engine with nuitka for linux/amd64 failed" in loud.stderr
    quiet = run_cli(*args, "-q")
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert quiet.stderr.startswith("error: compiling the engine with nuitka for linux/amd64 failed")
    assert "starting, 0s" not in quiet.stderr and "compile:" not in quiet.stderr


def test_elapsed_text():
    assert [elapsed_text(s) for s in (0, 59.9, 60, 187, 3720)] == [
        "0s",
        "59s",
        "1m00s",
        "3m07s",
        "1h02m",
    ]


# Real lines of `debootstrap --variant=minbase ... bookworm` (amd64), in their order (three had
# a trailing space).
DEBOOTSTRAP = """\
I: Target architecture can be executed
I: Retrieving InRelease
I: Checking Release signature
I: Valid Release signature (key id 4D64FEC119C2029067D6E791F8D2585B8783D481)
I: Retrieving Packages
I: Validating Packages
I: Resolving dependencies of required packages...
I: Checking component main on http://deb.debian.org/debian...
I: Retrieving adduser 3.134
I: Validating adduser 3.134
I: Retrieving apt 2.6.1
I: Extracting libaudit1...
I: Extracting libblkid1...
I: Unpacking libdebconfclient0:amd64...
I: Configuring libcap-ng0:amd64...
I: Configuring ca-certificates...
I: Base system installed successfully.
"""


def test_debootstrap_phases_from_real_lines():
    reader = BootstrapLog()
    phases = [p for p in map(reader.feed, DEBOOTSTRAP.splitlines()) if p is not None]
    assert [p.name for p in phases] == [
        *["downloading packages"] * 6,
        *["unpacking packages"] * 3,
        *["configuring packages"] * 2,
    ]
    assert phases[0] == Phase("downloading packages", "InRelease")
    assert phases[5] == Phase("downloading packages", "6: apt")  # a running count
    assert phases[8] == Phase("unpacking packages", "3: libdebconfclient0:amd64")
    assert phases[-1] == Phase("configuring packages", "2: ca-certificates")
    # Lines about the whole system are no package names.
    assert reader.feed("I: Unpacking the base system...") is None
    assert reader.feed("I: Configuring required packages...") is None


# Real lines of a compile's BuildKit log (`docker-workflow build --platform linux/amd64` with
# DOCKER_WORKFLOW_VERBOSE=1, Nuitka 4.3.3 with --show-progress), in their order, a sample of
# the 1,550 lines.
COMPILE_LOG = (Path(__file__).parent / "data" / "compile_amd64_buildkit.log").read_text()


def test_compile_phases_from_a_real_nuitka_build_log():
    reader = BuildLog()
    seen = [(line, reader.feed(line)) for line in COMPILE_LOG.splitlines()]
    phases = [phase for _, phase in seen if phase is not None]
    names = []
    for phase in phases:
        if not names or names[-1] != phase.name:
            names.append(phase.name)
    assert names == [
        "[internal]",
        "[toolchain 1/4]",
        "[build 1/4]",
        "waiting for the compile cache",
        "Nuitka: reading modules",
        "Nuitka: optimizing modules",
        "generating C code",
        "generating C code (constants)",
        "C compile",
        "linking",
        "Nuitka done",
        "[export 1/1]",
        "exporting the program",
        "saving the layer cache",
    ]
    optimizing = [p.detail for p in phases if p.name == "Nuitka: optimizing modules"]
    # The count: modules done in this pass, of done + still to go.
    assert optimizing == [
        "pass 1, 1 of 1",
        "pass 1, 2 of 4",
        "pass 1, 3 of 16",
        "pass 1, 4 of 19",
        "pass 2, 1 of 1",
        "pass 2, 2 of 4",
    ]
    assert phases[1].detail.startswith("FROM docker.io/docker-workflow/builder:bookworm-")
    assert Phase("exporting the program", "16.44MB") in phases
    # Lines that say nothing new leave the phase as it is.
    quiet = [line for line, phase in seen if phase is None]
    assert "#15 82.15 Nuitka-Scons: Inherited CCFLAGS='-Os' variable." in quiet
    assert "#18 DONE 13.5s" in quiet


def test_mmdebstrap_phases_from_real_lines():
    """Real lines of `mmdebstrap --variant=minbase --hook-dir=... bookworm` (amd64)."""
    lines = """\
I: chroot architecture amd64 is equal to the host's architecture
I: automatically chosen format: tar
I: running --setup-hook directly: /usr/share/mmdebstrap/hooks/merged-usr/setup00.sh /tmp/mm
I: running apt-get update...
I: downloading packages with apt...
I: extracting archives...
I: installing essential packages...
I: installing remaining packages inside the chroot...
I: cleaning package lists and apt cache...
I: creating tarball...
I: success in 83.7400 seconds
""".splitlines()
    reader = BootstrapLog()
    phases = [p.name for p in map(reader.feed, lines) if p is not None]
    assert phases == [
        "package lists",
        "downloading packages",
        "unpacking packages",
        "installing essential packages",
        "installing the other packages",
        "packing",
        "packing",
    ]
