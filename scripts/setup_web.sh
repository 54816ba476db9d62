#!/usr/bin/env bash
# Install what the web target's tests need, idempotently (docs/WEB.md):
#
#   - Debian's chromium and chromium-driver (the browser and its driver: Selenium is given the
#     driver's path, so nothing else is downloaded);
#   - selenium, pinned in pyproject.toml's dev extra, into the project's venv if it lacks it;
#   - the pinned Pyodide npm package, fetched from the npm registry into cache/web/ and checked
#     against its integrity hash (what every `build --target web` does; done here so that the
#     first test does not wait for the download).
#
# Fast when everything is there: no apt, no pip, and Pyodide's files are only re-hashed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

log() { printf '[setup-web] %s\n' "$*" >&2; }

if [ ! -x "$PY" ]; then
    log "no Python environment at $VENV: run scripts/setup.sh python first"
    exit 1
fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if ! command -v apt-get >/dev/null; then
        log "install ${missing[*]} (Debian's packages) with your package manager"
        exit 1
    fi
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "$(/usr/bin/chromium --version 2>/dev/null | head -1), $(/usr/bin/chromedriver --version | cut -d' ' -f1-2)"

SELENIUM="$(grep -o '"selenium==[^"]*"' "$ROOT/pyproject.toml" | tr -d '"')"
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('selenium') != '${SELENIUM#selenium==}')" 2>/dev/null; then
    log "installing $SELENIUM"
    "$PY" -m pip install -q "$SELENIUM" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi

cd "$ROOT"
DOCKER_WORKFLOW_CACHE="${DOCKER_WORKFLOW_CACHE:-$ROOT/cache}" "$PY" -c '
from rules.stages.web.pyodide_dist import VERSION, pyodide_dir
print(f"[setup-web] pyodide {VERSION}: {pyodide_dir()}")
' >&2
log "DONE"
