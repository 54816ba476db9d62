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
# unchanged, and the llama-cpp-python wheel (4-8 minutes to build) is kept in
# ~/.cache/docker-workflow/llama-wheels/<digest of its build flags>.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }
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

build_llama_wheel() {
    local dir
    dir="$(llama_wheel_dir)"
    if ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        return
    fi
    log "building $LLAMA_CPP for this CPU family (4-8 minutes, once per machine cache)"
    rm -rf "$dir.partial"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$VENV/bin/python" -m pip wheel --quiet --no-deps \
        --no-cache-dir --no-binary llama-cpp-python -w "$dir.partial" "$LLAMA_CPP" \
        2> >(quiet_pip >&2)
    mkdir -p "$(dirname "$dir")"
    mv "$dir.partial" "$dir"
}

setup_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.docker-workflow-installed"
    local want
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1) $ROOT"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "python environment up to date"
        return
    fi
    log "installing the project into $VENV"
    # (This machine's pip configuration names extra package folders that may not exist; pip
    # warns about each on every lookup, so those lines are filtered out.)
    "$VENV/bin/python" -m pip install --quiet --upgrade "pip==24.3.1" 2> >(quiet_pip >&2)
    build_llama_wheel
    "$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall \
        --find-links "$(llama_wheel_dir)" --only-binary llama-cpp-python "$LLAMA_CPP" \
        2> >(quiet_pip >&2)
    "$VENV/bin/python" -m pip install --quiet --find-links "$(llama_wheel_dir)" \
        --only-binary llama-cpp-python -e "$ROOT[dev,devllm]" 2> >(quiet_pip >&2)
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
