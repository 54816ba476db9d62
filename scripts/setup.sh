#!/usr/bin/env bash
# Install everything docker-workflow and its tests need, idempotently.
#
#   scripts/setup.sh            everything: Python environment, Docker engine, buildx, QEMU, builder image
#   scripts/setup.sh native     the same, but the builder image for this machine's platform only
#                               (what a first run needs; scripts/demo.sh uses it)
#   scripts/setup.sh python     only the Python environment (.venv) with the project and the dev LLM
#
# The Docker part follows docs/ENVIRONMENT.md of this project's workplace: Debian's docker.io 26
# with the containerd image store, docker-buildx from Debian 13, QEMU binfmt for linux/arm64,
# and an offline builder image made with mmdebstrap (this machine's platform) and debootstrap
# (the other; docker-workflow bases). It needs root and apt on Debian; elsewhere it checks that
# a working engine with buildx is there and says what is missing (docker-workflow doctor lists
# it all). On a fresh Debian it first installs what the venv and the wheel build need (python3-venv,
# gcc, g++, make, cmake); the Docker packages install beside pip's install of the project.
#
# Fast when things are already there: the venv is reused, pip is skipped while pyproject.toml is
# unchanged, and the llama-cpp-python wheel (4-8 minutes to build) is kept in
# ~/.cache/docker-workflow/llama-wheels/<digest of its build flags>, where a second clone on
# the same machine finds it. On a fresh machine that wheel builds in the background while the
# Docker engine is installed and the builder image is made; every long step shows its phase
# and elapsed time (python -m rules.run_step). DOCKER_WORKFLOW_QUIET=1 prints only errors.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1  # pip is pinned below; its upgrade notice is noise

log() { [ "${DOCKER_WORKFLOW_QUIET:-}" = 1 ] || printf '[setup] %s\n' "$*" >&2; }
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }

# llama.cpp for the dev LLM, built for any x86-64-v3 / armv8 CPU rather than this one
# (GGML_NATIVE would use AVX-512/AMX where the build ran, and a wheel cached on one machine
# would then die with SIGILL on another; pip's wheel cache does not key on CMAKE_ARGS).
LLAMA_CPP="llama-cpp-python==0.3.36"
LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

llama_wheel_dir() {
    local key
    key="$(printf '%s %s %s' "$LLAMA_CPP" "$LLAMA_CMAKE_ARGS" "$(uname -m)" | sha256sum | cut -c1-16)"
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/docker-workflow/llama-wheels/$key"
}

# A long step with a progress display (step, phase from its output, elapsed time); its output
# goes to a log file, shown in part when it fails. Needs the project in the venv.
step() {  # step WHAT LOG READER|"" [--plain] -- COMMAND...
    local what="$1" logfile="$2" reader="$3"
    shift 3
    # (rules imports rich only when it prints: ask for rich itself.)
    if ! (cd "$ROOT" && "$VENV/bin/python" -c 'import rich.console, rules.run_step') 2>/dev/null; then
        # The project is not in the venv yet (the background wheel build starts before it):
        # the output goes to the log alone, a line at the start and at the end.
        while [ "$1" != "--" ]; do shift; done
        shift
        mkdir -p "$(dirname "$logfile")"
        log "$what: started (log: $logfile)"
        if "$@" >"$logfile" 2>&1; then
            log "$what: done"
            return 0
        fi
        tail -n 20 "$logfile" >&2
        log "$what: failed (log: $logfile)"
        return 1
    fi
    (cd "$ROOT" && "$VENV/bin/python" -m rules.run_step --what "$what" --log "$logfile" \
        ${reader:+--reader "$reader"} "$@")
}

have_llama_wheel() {  # a wheel in the cache that this venv's Python can install
    # (pip's own copy of packaging: this runs before the project and its packages are installed)
    "$VENV/bin/python" - "$(llama_wheel_dir)" <<'PY'
import sys
from pathlib import Path

from pip._vendor.packaging.tags import sys_tags
from pip._vendor.packaging.utils import parse_wheel_filename

here = set(sys_tags())
wheels = Path(sys.argv[1]).glob("llama_cpp_python-*.whl")
sys.exit(0 if any(here & parse_wheel_filename(w.name)[3] for w in wheels) else 1)
PY
}

# One build per machine at a time (flock): a second setup, or the demo's later one, waits for
# a build already running (scripts/demo.sh leaves one running in the background).
build_llama_wheel() {  # build_llama_wheel [--plain]
    local dir lock
    dir="$(llama_wheel_dir)"
    have_llama_wheel && return
    mkdir -p "$(dirname "$dir")"
    lock="$(dirname "$dir")/build.lock"
    exec 9>"$lock"
    if ! flock -n 9; then
        step "waiting for the $LLAMA_CPP build running in the background" \
            "$(dirname "$dir")/wait.log" "" "$@" -- flock "$lock" true
        have_llama_wheel && { exec 9>&-; return; }
        flock 9
    fi
    rm -rf "$dir.partial"
    step "building $LLAMA_CPP for this CPU family (4-8 minutes, once per machine)" \
        "$(dirname "$dir")/build.log" cmake "$@" -- \
        env CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$VENV/bin/python" -m pip wheel -v --no-deps \
        --no-cache-dir --no-binary llama-cpp-python -w "$dir.partial" "$LLAMA_CPP"
    mkdir -p "$dir"
    mv "$dir.partial"/*.whl "$dir"/
    rm -rf "$dir.partial"
    exec 9>&-
}

python_stamp() {
    echo "$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1) $ROOT"
}

python_is_current() {
    [ -f "$VENV/.docker-workflow-installed" ] \
        && [ "$(cat "$VENV/.docker-workflow-installed")" = "$(python_stamp)" ]
}

# What the Python environment and the llama.cpp build need from the system: a fresh Debian
# (cloud) image has python3 but not its venv module, and no compiler or cmake. Plain apt-get:
# the progress display needs the venv that this makes possible.
SYSTEM_PACKAGES="python3 python3-venv python3-dev gcc g++ make cmake"

have_system_tools() {
    command -v "$PYTHON" >/dev/null && "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
        && command -v gcc >/dev/null && command -v g++ >/dev/null && command -v cmake >/dev/null \
        && command -v make >/dev/null
}

# Installing Debian packages needs root and apt: otherwise say what is missing (MESSAGE), exit 1.
need_apt() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "$1"
        exit 1
    fi
}

# The folder for setup's logs (apt, the toolchain fetch), made if needed, printed.
setup_logs() {
    local logs="${XDG_CACHE_HOME:-$HOME/.cache}/docker-workflow"
    mkdir -p "$logs"
    echo "$logs"
}

install_system_packages() {
    have_system_tools && return
    need_apt "missing: $PYTHON with its venv module, gcc, g++, make or cmake; install them (Debian: apt-get install $SYSTEM_PACKAGES)"
    local logs
    logs="$(setup_logs)"
    log "installing $SYSTEM_PACKAGES from Debian (log: $logs/apt-system.log)"
    # one apt-get update for the Docker packages too
    if [ -n "${platforms:-}" ] && ! have_docker_tools; then add_trixie_sources; fi
    # shellcheck disable=SC2086
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $SYSTEM_PACKAGES; } \
        >"$logs/apt-system.log" 2>&1; then
        tail -n 20 "$logs/apt-system.log" >&2
        log "installing $SYSTEM_PACKAGES failed"
        exit 1
    fi
    apt_lists_fresh=1
}

# The venv with the pinned pip: all that the llama.cpp wheel build needs.
# (This machine's pip configuration names extra package folders that may not exist; pip
# warns about each on every lookup, so those lines are filtered out.)
create_venv() {
    install_system_packages
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip --version 2>/dev/null | grep -q '^pip 24\.3\.1 ' \
        || "$VENV/bin/python" -m pip install --quiet --upgrade "pip==24.3.1" 2> >(quiet_pip >&2)
}

# The project and its dev tools first (the Docker steps need the CLI), the dev LLM after its
# wheel exists: the wheel build may run in the background meanwhile.
setup_python_base() {
    create_venv
    python_is_current && return
    local base="$VENV/.docker-workflow-base"
    [ -f "$base" ] && [ "$(cat "$base")" = "$(python_stamp)" ] && return
    log "installing the project into $VENV"
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]" 2> >(quiet_pip >&2)
    python_stamp > "$base"
}

setup_python_llm() {
    python_is_current && { log "python environment up to date"; return; }
    "$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall \
        --find-links "$(llama_wheel_dir)" --only-binary llama-cpp-python "$LLAMA_CPP" \
        2> >(quiet_pip >&2)
    "$VENV/bin/python" -m pip install --quiet --find-links "$(llama_wheel_dir)" \
        --only-binary llama-cpp-python -e "$ROOT[dev,devllm]" 2> >(quiet_pip >&2)
    python_stamp > "$VENV/.docker-workflow-installed"
}

# dpkg-dev: mmdebstrap's eatmydata hook (rules/stages/bases.py) runs dpkg-architecture, which
# mmdebstrap only suggests; a fresh Debian image does not have it.
DOCKER_PACKAGES="docker.io/trixie docker-cli/trixie docker-buildx/trixie qemu-user-static binfmt-support mmdebstrap dpkg-dev debootstrap patchelf ccache busybox-static"

have_docker_tools() {
    command -v dockerd >/dev/null && docker buildx version >/dev/null 2>&1 \
        && command -v mmdebstrap >/dev/null && command -v dpkg-architecture >/dev/null \
        && command -v debootstrap >/dev/null \
        && [ -e /usr/bin/qemu-aarch64-static ] \
        && [ -x /bin/busybox ]
}

add_trixie_sources() {  # buildx comes from Debian 13, pinned to the packages that need it
    cat > /etc/apt/sources.list.d/trixie.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie-low
}

# The Docker packages download and unpack in the background while pip installs the project
# (neither waits for the other's network or disk); wait_docker_packages shows their progress.
docker_packages_job=""
start_docker_packages() {
    have_docker_tools && return
    need_apt "missing: dockerd, docker buildx, qemu-user-static or mmdebstrap; install them (needs root and apt; docker-workflow doctor says which)"
    local logs
    logs="$(setup_logs)"
    log "installing the Docker engine, buildx, QEMU and mmdebstrap from Debian, beside the Python install (log: $logs/apt-install.log)"
    add_trixie_sources
    # shellcheck disable=SC2086
    {
        if [ "${apt_lists_fresh:-}" != 1 ]; then apt-get update || exit; fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y $DOCKER_PACKAGES
    } >"$logs/apt-install.log" 2>&1 </dev/null &
    docker_packages_job=$!
}

wait_docker_packages() {
    if [ -z "$docker_packages_job" ]; then
        have_docker_tools || start_docker_packages
    fi
    if [ -z "$docker_packages_job" ]; then
        log "docker engine, buildx, qemu, mmdebstrap and debootstrap are installed"
        return
    fi
    local logs
    logs="$(setup_logs)"
    step "installing the Docker engine, buildx, QEMU, mmdebstrap" "$logs/apt-install-shown.log" apt -- \
        tail -n +1 -f --pid="$docker_packages_job" "$logs/apt-install.log"
    if ! wait "$docker_packages_job"; then
        tail -n 20 "$logs/apt-install.log" >&2
        log "installing the Docker packages failed (log: $logs/apt-install.log)"
        exit 1
    fi
    docker_packages_job=""
}

start_docker_engine() {
    if docker info >/dev/null 2>&1; then
        log "docker engine is running"
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        log "the docker engine is not running and starting one needs root"
        exit 1
    fi
    mkdir -p /etc/docker
    # The containerd image store: multi-platform --load and cache export need it. BuildKit's
    # cache is bounded (20 GB, oldest first): every compile leaves cache mounts and layers, and a
    # long-lived machine once filled its disk with them (54 GB). Our own earlier file (the store
    # alone) is brought up to date; a file written by someone else is left alone.
    old_config='{"features": {"containerd-snapshotter": true}}'
    config='{"features": {"containerd-snapshotter": true}, "builder": {"gc": {"enabled": true, "defaultKeepStorage": "20GB"}}}'
    if [ ! -f /etc/docker/daemon.json ] || [ "$(cat /etc/docker/daemon.json)" = "$old_config" ]; then
        echo "$config" > /etc/docker/daemon.json
    fi
    # A machine handed over after its processes were killed can keep a stale pid file.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    log "starting dockerd (log: /var/log/dockerd.log)"
    setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && return
        sleep 0.5
    done
    log "dockerd did not come up; last lines of /var/log/dockerd.log:"
    tail -n 20 /var/log/dockerd.log >&2
    exit 1
}

enable_arm64_emulation() {
    if docker buildx ls 2>/dev/null | grep -q 'linux/arm64'; then
        log "linux/arm64 emulation is enabled"
        return
    fi
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64
    docker buildx ls | grep -q 'linux/arm64' || { log "linux/arm64 is still not available to buildx"; exit 1; }
}

setup_builder_image() {  # setup_builder_image PLATFORMS
    local both
    both="$(cd "$ROOT" && "$VENV/bin/python" -c \
        'from rules.stages.bases import builder_tag; print(builder_tag(["linux/amd64", "linux/arm64"]))')"
    if docker image inspect "$both" >/dev/null 2>&1; then
        echo "$both" > "$ROOT/.builder-image"  # a native-only run can use the two-platform one
    else
        log "builder image for $1 (docker-workflow bases; made once, then reused)"
        "$VENV/bin/docker-workflow" bases --platform "$1" | tail -n 1 > "$ROOT/.builder-image"
    fi
    log "builder image: $(cat "$ROOT/.builder-image")"
}

# What the first compile fetches from PyPI on this machine (Nuitka's sdist, the Zig wheel:
# rules/stages/toolchain.py), fetched in the background while the engine installs and the
# builder image is made, instead of in front of the compile.
toolchain_job=""
fetch_compile_toolchain() {
    local logs
    logs="$(setup_logs)"
    (cd "$ROOT" && "$VENV/bin/python" -c 'from rules.stages.toolchain import host_arch, toolchain_dir, zig_dir
zig_dir()
toolchain_dir("nuitka", host_arch())') >"$logs/toolchain.log" 2>&1 </dev/null &
    toolchain_job=$!
}

wait_compile_toolchain() {
    [ -n "$toolchain_job" ] || return 0
    if ! wait "$toolchain_job"; then
        # Not fatal here: the compile fetches what is missing itself and says what failed.
        log "fetching the compile toolchain ahead failed (log: ${XDG_CACHE_HOME:-$HOME/.cache}/docker-workflow/toolchain.log)"
    fi
    toolchain_job=""
}

native_platform() {
    case "$(uname -m)" in aarch64 | arm64) echo linux/arm64 ;; *) echo linux/amd64 ;; esac
}

mode="${1:-all}"
case "$mode" in
all) platforms="linux/amd64,linux/arm64" ;;
native) platforms="$(native_platform)" ;;
python) platforms="" ;;
wheel) create_venv; build_llama_wheel --plain; exit 0 ;;  # internal: a detached build
*) log "unknown mode $mode: choose all, native or python"; exit 2 ;;
esac

install_system_packages
[ -n "$platforms" ] && start_docker_packages
if [ -n "$platforms" ] && [ "${DOCKER_WORKFLOW_LLM_LATER:-}" = 1 ]; then
    create_venv
    if ! python_is_current && ! have_llama_wheel; then
        # scripts/demo.sh: the wheel builds on (from now, beside the project's install) while
        # the demo compiles its image; the demo's `setup.sh python` before it starts the dev
        # LLM waits for it.
        logs="$(dirname "$(llama_wheel_dir)")"
        mkdir -p "$logs"
        log "building $LLAMA_CPP in the background (log: $logs/build.log)"
        setsid bash "$0" wheel </dev/null >"$logs/background.log" 2>&1 &
    fi
fi
setup_python_base
if [ -z "$platforms" ] || python_is_current || have_llama_wheel; then
    build_llama_wheel
    setup_python_llm
fi
if [ -n "$platforms" ]; then
    wheel_job=""
    if ! python_is_current && [ "${DOCKER_WORKFLOW_LLM_LATER:-}" != 1 ]; then
        # The wheel compiles (one core) while the engine installs and the builder is made.
        build_llama_wheel --plain &
        wheel_job=$!
    fi
    fetch_compile_toolchain
    wait_docker_packages
    start_docker_engine
    enable_arm64_emulation
    setup_builder_image "$platforms"
    wait_compile_toolchain
    if [ -n "$wheel_job" ]; then
        wait "$wheel_job" || { log "building the llama-cpp-python wheel failed"; exit 1; }
        setup_python_llm
    fi
fi
log "done"
