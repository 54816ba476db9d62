#!/usr/bin/env bash
# The test command: set up everything the tests need (Python env, Docker engine, buildx, QEMU,
# builder image, the dev LLM, the test registry, the Swarm node image, wrk and Prometheus, the
# browser), then lint and run every test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/wheelhouse.sh"
bash "$ROOT/scripts/setup_registry.sh"
bash "$ROOT/scripts/setup_swarm_nodes.sh" >/dev/null  # the Swarm worker nodes' image (cached)
bash "$ROOT/scripts/setup_serve_tools.sh"
bash "$ROOT/scripts/setup_web.sh"
cd "$ROOT"
export DOCKER_WORKFLOW_BUILDER_IMAGE="${DOCKER_WORKFLOW_BUILDER_IMAGE:-$(cat "$ROOT/.builder-image")}"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
exec "$VENV/bin/python" -m pytest "$@"
