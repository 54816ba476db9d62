#!/usr/bin/env bash
# Install everything docker-workflow and its tests need, idempotently.
#
#   scripts/setup.sh            Python environment (.venv) with the project, dev tools and the dev LLM
#
# Fast when things are already there: the venv is reused, pip is skipped while pyproject.toml is
# unchanged, and pip's own cache keeps the llama-cpp-python build (4-8 minutes the first time).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }

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
    "$VENV/bin/python" -m pip install --quiet --upgrade "pip==24.3.1"
    CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev,devllm]"
    echo "$want" > "$stamp"
}

setup_python
log "done"
