#!/usr/bin/env bash
# The test wheelhouse: real wheels of the packages the package tests use (requests and its
# dependencies, PyYAML with its C loader), for linux/amd64 and linux/arm64 and the builders'
# CPython 3.11, fetched once from PyPI into cache/test-wheelhouse. The tests then resolve
# from that folder only (PIP_NO_INDEX, PIP_FIND_LINKS): no test talks to a package index.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DOCKER_WORKFLOW_VENV:-$ROOT/.venv}"
DEST="$ROOT/cache/test-wheelhouse"
PACKAGES="requests==2.32.3 PyYAML==6.0.2 urllib3==2.8.0 idna==3.20 certifi==2026.10.19.post1 charset-normalizer==3.5.3"
stamp="$DEST/.complete-$(echo "$PACKAGES" | sha256sum | cut -c1-12)"
if [ -f "$stamp" ]; then
    echo "[wheelhouse] up to date: $DEST" >&2
    exit 0
fi
rm -rf "$DEST.partial"
mkdir -p "$DEST.partial"
for machine in x86_64 aarch64; do
    platforms=()
    for minor in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${minor}_${machine}"); done
    platforms+=(--platform "manylinux2014_${machine}")
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip download --quiet --only-binary=:all: "${platforms[@]}" \
        --python-version 3.11 --implementation cp --abi cp311 --dest "$DEST.partial" $PACKAGES \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2 || true)
done
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
touch "$stamp"
echo "[wheelhouse] $(ls "$DEST"/*.whl | wc -l) wheels in $DEST" >&2
