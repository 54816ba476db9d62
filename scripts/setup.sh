#!/usr/bin/env bash
# Install everything docker-workflow and its tests need, idempotently.
#
#   scripts/setup.sh            everything: Python environment, Docker engine, buildx, QEMU, builder image
#   scripts/setup.sh python     only the Python environment (.venv) with the project and the dev LLM
#
# The Docker part follows docs/ENVIRONMENT.md of this project's workplace: Debian's docker.io 26
# with the containerd image store, docker-buildx from Debian 13, QEMU binfmt for linux/arm64,
# and an offline builder image made with debootstrap (docker-workflow bases). It needs root and
# apt on Debian; elsewhere it checks that a working engine with buildx is there and says what is
# missing.
#
# Fast when things are already there: the venv is reused, pip is skipped while pyproject.toml is
# unchanged, and pip's own cache keeps the llama-cpp-python build (4-8 minutes the first time).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }

setup_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.docker-workflow-installed"
    local want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) $ROOT"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "python environment up to date"
        return
    fi
    log "installing the project into $VENV (llama-cpp-python compiles once, then comes from pip's cache)"
    # (This machine's pip configuration names extra package folders that may not exist; pip
    # warns about each on every lookup, so those lines are filtered out.)
    "$VENV/bin/python" -m pip install --quiet --upgrade "pip==24.3.1" 2> >(quiet_pip >&2)
    CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev,devllm]" 2> >(quiet_pip >&2)
    echo "$want" > "$stamp"
}

DOCKER_PACKAGES="docker.io/trixie docker-cli/trixie docker-buildx/trixie qemu-user-static binfmt-support debootstrap patchelf ccache busybox-static"

have_docker_tools() {
    command -v dockerd >/dev/null && docker buildx version >/dev/null 2>&1 \
        && command -v debootstrap >/dev/null && [ -e /usr/bin/qemu-aarch64-static ] \
        && [ -x /bin/busybox ]
}

install_docker_packages() {
    if have_docker_tools; then
        log "docker engine, buildx, qemu and debootstrap are installed"
        return
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "missing: dockerd, docker buildx, qemu-user-static or debootstrap; install them (needs root and apt)"
        exit 1
    fi
    log "installing the Docker engine, buildx, QEMU and debootstrap from Debian"
    cat > /etc/apt/sources.list.d/trixie.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie-low
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $DOCKER_PACKAGES >/dev/null
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
    if [ ! -f /etc/docker/daemon.json ]; then
        # The containerd image store: multi-platform --load and cache export need it.
        echo '{"features": {"containerd-snapshotter": true}}' > /etc/docker/daemon.json
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

setup_builder_image() {
    log "builder image (docker-workflow bases; made once, about 8 minutes, then reused)"
    "$VENV/bin/docker-workflow" bases | tail -n 1 > "$ROOT/.builder-image"
    log "builder image: $(cat "$ROOT/.builder-image")"
}

setup_python
if [ "${1:-all}" != python ]; then
    install_docker_packages
    start_docker_engine
    enable_arm64_emulation
    setup_builder_image
fi
log "done"
