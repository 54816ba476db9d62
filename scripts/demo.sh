#!/usr/bin/env bash
# The main job on a fresh machine: set everything up, build a workflow image, run it.
#   scripts/demo.sh [WORKFLOW.json] [INPUTS-JSON]
#
# It uses Ollama on localhost:11434 when one answers there; otherwise it starts the dev LLM
# server (a real tiny model behind the Ollama API) on 127.0.0.1:11435 for the run, and stops it
# afterwards. The container reaches either through host.docker.internal.
#
# Only what the first result needs comes first: the builder image for this machine's platform
# (scripts/test.sh and `docker-workflow bases` make the two-platform one), and the dev LLM's
# llama.cpp wheel builds in the background while the image compiles.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
WORKFLOW="${1:-$ROOT/workflows/simple_summarizer.json}"
DEFAULT_INPUTS='{"text": "Docker images bundle a program with everything it needs to run. docker-workflow compiles an LLM workflow into a tiny image that runs once and exits.", "max_length": 25}'
INPUTS="${2:-$DEFAULT_INPUTS}"
started=$SECONDS
say() { echo "[demo] $* ($((SECONDS - started))s)" >&2; }
failed() {  # the last word of a failed run: the lines above say what failed, doctor what is missing
    if [ -x "$VENV/bin/docker-workflow" ]; then
        echo "[demo] failed (exit $1): $VENV/bin/docker-workflow doctor says what is missing" >&2
    else
        echo "[demo] failed (exit $1) before the Python environment was made: see the lines above" >&2
    fi
}
trap 'code=$?; [ "$code" = 0 ] || failed "$code"' EXIT

DOCKER_WORKFLOW_LLM_LATER=1 bash "$ROOT/scripts/setup.sh" native
export DOCKER_WORKFLOW_BUILDER_IMAGE="${DOCKER_WORKFLOW_BUILDER_IMAGE:-$(cat "$ROOT/.builder-image")}"
cd "$ROOT"
native="$(case "$(uname -m)" in aarch64 | arm64) echo linux/arm64 ;; *) echo linux/amd64 ;; esac)"

say "building $(basename "$WORKFLOW") for $native"
"$VENV/bin/docker-workflow" build "$WORKFLOW" --platform "$native"

answers() {  # does an Ollama API answer on this loopback port?
    "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/api/version', timeout=2)" 2>/dev/null
}

server_pid=""
endpoint_port=11434
if ! answers 11434; then
    endpoint_port=11435
    bash "$ROOT/scripts/setup.sh" python  # waits for the background wheel build if it still runs
    "$VENV/bin/docker-workflow" llm-server --host 127.0.0.1 --port "$endpoint_port" >/dev/null &
    server_pid=$!
    trap 'code=$?; [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; [ "$code" = 0 ] || failed "$code"' EXIT
    for _ in $(seq 60); do
        answers "$endpoint_port" && break
        sleep 0.5
    done
    say "no Ollama on :11434, using the dev LLM server on :$endpoint_port"
fi

say "running $(basename "$WORKFLOW") in a container"
"$VENV/bin/docker-workflow" run "$WORKFLOW" "$INPUTS" --platform "$native" \
    --network host --endpoint "http://host.docker.internal:$endpoint_port"
say "done. The two-platform image: bash scripts/setup.sh (both builders), then"
echo "  DOCKER_WORKFLOW_BUILDER_IMAGE=\$(cat .builder-image) .venv/bin/docker-workflow build ${WORKFLOW#"$ROOT"/}" >&2
