#!/usr/bin/env bash
# Time scripts/demo.sh end to end on a fresh machine's stand-in: a clean, privileged Debian
# bookworm container with its own dockerd, its own /var/lib/docker (a new volume), its own
# network namespace, and nothing from this machine's caches (no ~/.cache, no pip cache, no
# llama.cpp wheel, no builder image). Not in CI: it takes the demo's whole first run.
#
#   bash bench/fresh_machine.sh [REPO]      REPO: the clone to measure (default: this one's HEAD)
#
# The fresh machine is the image docker-workflow-fresh-base:bookworm, made once with mmdebstrap
# and kept (no registry serves OS images here): Debian's minbase plus what a fresh cloud Debian
# image has (ca-certificates, git, curl, wget, procps, iproute2, python3 without venv, xz-utils)
# and nothing else: no compiler, no pip, no Docker. This workplace's network path re-signs TLS
# with its own CA, which its machines trust, so the CA certificates in this machine's bundle that
# Debian's ca-certificates does not ship go into the stand-in's trust store, and pip is pointed at
# that store (PIP_CERT) as on this machine. Each run: a `git clone` of REPO's committed HEAD,
# copied in, then `time bash scripts/demo.sh` as root, every line stamped with the UTC time.
#
# Output in bench/fresh-machine-runs/<UTC time>/ (git-ignored): demo.log (the stamped log),
# load.log (/proc/loadavg every 15 s: the host's load, which the container shares), and
# summary.txt (the total, each [setup]/[demo] line's offset from the start, the load's range).
# KEEP=1 keeps the container and its volume for a look inside (docker rm -f NAME; docker volume
# rm NAME). Re-making the base: docker rmi docker-workflow-fresh-base:bookworm.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="${1:-$(cd "$HERE/.." && pwd)}"
BASE="docker-workflow-fresh-base:bookworm"
NAME="docker-workflow-fresh-$(date -u +%Y%m%d%H%M%S)"
OUT="$HERE/fresh-machine-runs/${NAME#docker-workflow-fresh-}"
mkdir -p "$OUT"
say() { printf '[fresh] %s\n' "$*" >&2; }

make_base() {
    docker image inspect "$BASE" >/dev/null 2>&1 && return
    command -v mmdebstrap >/dev/null || { say "needs mmdebstrap (apt-get install mmdebstrap)"; exit 1; }
    local ca
    ca="$(mktemp -d)"
    # The CA certificates this machine trusts beyond Debian's own (this workplace's TLS path).
    python3 - "$ca" <<'PY'
import glob
import re
import sys

pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
debian = {c for f in glob.glob("/usr/share/ca-certificates/**/*.crt", recursive=True) for c in pem.findall(open(f).read())}
extra = [c for c in pem.findall(open("/etc/ssl/certs/ca-certificates.crt").read()) if c not in debian]
for i, cert in enumerate(extra):
    open(f"{sys.argv[1]}/machine-{i}.crt", "w").write(cert + "\n")
PY
    say "making $BASE with mmdebstrap (once; about 1-2 minutes)"
    mmdebstrap --quiet --variant=minbase \
        --include=ca-certificates,git,curl,wget,procps,iproute2,python3,less,xz-utils \
        --customize-hook="copy-in $ca/. /usr/local/share/ca-certificates/" \
        --customize-hook='chroot "$1" update-ca-certificates' \
        bookworm - http://deb.debian.org/debian | docker import - "$BASE" >/dev/null
    rm -rf "$ca"
}

cleanup() {
    kill "$sampler" 2>/dev/null || true
    if [ "${KEEP:-}" = 1 ]; then
        say "kept: container and volume $NAME"
    else
        docker rm -f "$NAME" >/dev/null 2>&1 || true
        docker volume rm "$NAME" >/dev/null 2>&1 || true
    fi
    rm -rf "$clone"
}

make_base
clone="$(mktemp -d)"
sampler=""
trap cleanup EXIT
git clone --quiet "$REPO" "$clone/docker-workflow"
commit="$(git -C "$clone/docker-workflow" rev-parse --short HEAD)"

docker volume create "$NAME" >/dev/null
docker run -d --name "$NAME" --hostname fresh --privileged --cgroupns private \
    -v "$NAME:/var/lib/docker" \
    -e PIP_CERT=/etc/ssl/certs/ca-certificates.crt -e PIP_DEFAULT_TIMEOUT=180 \
    "$BASE" sleep infinity >/dev/null
docker cp "$clone/docker-workflow" "$NAME:/root/docker-workflow" >/dev/null

(while :; do printf '%(%T)T %s\n' -1 "$(cat /proc/loadavg)"; sleep 15; done) >"$OUT/load.log" &
sampler=$!
say "commit $commit in $NAME; log: $OUT/demo.log"
start=$SECONDS
status=0
docker exec -w /root/docker-workflow "$NAME" bash -c 'time bash scripts/demo.sh' 2>&1 \
    | while IFS= read -r line; do printf '%(%T)T +%ss %s\n' -1 "$((SECONDS - start))" "$line"; done \
    | tee "$OUT/demo.log" || status=$?
total=$((SECONDS - start))
kill "$sampler" 2>/dev/null || true

{
    echo "commit $commit, demo exit ${status}, total ${total}s ($((total / 60)) min $((total % 60)) s)"
    echo "host: $(nproc) cores; load average (1 min) during the run: $(awk '{print $2}' "$OUT/load.log" \
        | sort -n | awk '{a[NR]=$1; s+=$1} END {printf "min %s, mean %.2f, max %s", a[1], s/NR, a[NR]}')"
    echo "steps (offset from the start):"
    grep -E '^[0-9:]+ \+[0-9]+s (\[(setup|demo)\]|.*: (done|failed) after|(real|user|sys)\s)' "$OUT/demo.log" || true
} | tee "$OUT/summary.txt" >&2
exit "$status"
