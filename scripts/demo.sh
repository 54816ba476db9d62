#!/usr/bin/env bash
# The main job on a fresh machine: set everything up, build a workflow image, run it.
#   scripts/demo.sh [WORKFLOW.json] [INPUTS-JSON]
#
# It uses Ollama on localhost:11434 when one answers there; otherwise it starts the dev LLM
# server (a real tiny model behind the Ollama API) on 127.0.0.1:11435 for the run, and stops it
# afterwards. The container reaches either through host.docker.internal.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
WORKFLOW="${1:-$ROOT/workflows/simple_summarizer.json}"
DEFAULT_INPUTS='{"text": "Docker images bundle a program with everything it needs to run. docker-workflow compiles an LLM workflow into a tiny image that runs once and exits.", "max_length": 25}'
INPUTS="${2:-$DEFAULT_INPUTS}"

bash "$ROOT/scripts/setup.sh"
export DOCKER_WORKFLOW_BUILDER_IMAGE="${DOCKER_WORKFLOW_BUILDER_IMAGE:-$(cat "$ROOT/.builder-image")}"
cd "$ROOT"

answers() {  # does an Ollama API answer on this loopback port?
    "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/api/version', timeout=2)" 2>/dev/null
}

server_pid=""
endpoint_port=11434
if ! answers 11434; then
    endpoint_port=11435
    "$VENV/bin/docker-workflow" llm-server --host 127.0.0.1 --port "$endpoint_port" >/dev/null &
    server_pid=$!
    trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null' EXIT
    for _ in $(seq 60); do
        answers "$endpoint_port" && break
        sleep 0.5
    done
    echo "[demo] no Ollama on :11434, using the dev LLM server on :$endpoint_port" >&2
fi

# `run --build` builds this machine's platform, then runs the image once. For the multi-arch
# image index (linux/amd64 + linux/arm64; arm64 compiles under QEMU, minutes the first time):
#   .venv/bin/docker-workflow build workflows/simple_summarizer.json
echo "[demo] building and running $(basename "$WORKFLOW") in a container" >&2
"$VENV/bin/docker-workflow" run "$WORKFLOW" "$INPUTS" --build \
    --network host --endpoint "http://host.docker.internal:$endpoint_port"
