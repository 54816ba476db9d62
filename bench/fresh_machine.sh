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
# load.log (every 15 s: the 1-min load average, the busy share of all cores from /proc/stat, 200
# meaning both of two, and the container's own share from docker stats: what is left is the
# other work on the host, which the container shares), and
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
        # The volume is free once the container's removal has finished (its nested mounts).
        for _ in $(seq 60); do
            docker volume rm "$NAME" >/dev/null 2>&1 && break
            sleep 2
        done
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

sample_load() {  # every 15 s: time, 1-min load, host CPU busy % (all cores, 200 = both), the demo's CPU %
    local before after
    before="$(head -n 1 /proc/stat)"
    while sleep 15; do
        after="$(head -n 1 /proc/stat)"
        printf '%(%T)T %s %s %s\n' -1 "$(cut -d' ' -f1 /proc/loadavg)" \
            "$(printf '%s\n%s\n' "$before" "$after" | awk -v n="$(nproc)" '
                { idle[NR] = $5 + $6; total[NR] = 0; for (i = 2; i <= NF; i++) total[NR] += $i }
                END { printf "%.0f", n * 100 * (1 - (idle[2] - idle[1]) / (total[2] - total[1])) }')" \
            "$(docker stats --no-stream --format '{{.CPUPerc}}' "$NAME" 2>/dev/null | tr -d '%')"
        before="$after"
    done
}
sample_load >"$OUT/load.log" &
sampler=$!
say "commit $commit in $NAME; log: $OUT/demo.log"
start=$SECONDS
status=0
docker exec -w /root/docker-workflow "$NAME" bash -c 'time bash scripts/demo.sh' 2>&1 \
    | while IFS= read -r line; do printf '%(%T)T +%ss %s\n' -1 "$((SECONDS - start))" "$line"; done \
    | tee "$OUT/demo.log" || status=$?
total=$((SECONDS - start))
kill "$sampler" 2>/dev/null || true
# The CPU time of every process of the fresh machine, its dockerd's builds included (cgroup v1
# cpuacct in nanoseconds, or v2 cpu.stat in microseconds).
cpu_seconds="$(docker exec "$NAME" sh -c 'if [ -r /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
        echo $(($(cat /sys/fs/cgroup/cpuacct/cpuacct.usage) / 1000000000))
    else
        awk "/^usage_usec/ {print int(\$2 / 1000000)}" /sys/fs/cgroup/cpu.stat
    fi' 2>/dev/null || echo "?")"

{
    echo "commit $commit, demo exit ${status}, total ${total}s ($((total / 60)) min $((total % 60)) s)"
    echo "host: $(nproc) cores; every 15 s: $(awk -v cores="$(nproc)" '
        { n++; l += $2; h += $3; d += $4; if (n == 1 || $2 < lo) lo = $2; if ($2 > hi) hi = $2 }
        END { printf "load average (1 min) min %s, mean %.2f, max %s; all cores busy %.0f%% of %d%%, the demo %.0f%%, so others %.0f%%", lo, l/n, hi, h/n, cores * 100, d/n, (h-d)/n }' "$OUT/load.log")"
    echo "CPU time of the fresh machine's processes: ${cpu_seconds}s (on $(nproc) idle cores no less than $((${cpu_seconds/\?/0} / $(nproc)))s)"
    echo "steps (offset from the start):"
    grep -E '^[0-9:]+ \+[0-9]+s (\[(setup|demo)\]|.*: (done|failed) after|(real|user|sys)\s)' "$OUT/demo.log" || true
} | tee "$OUT/summary.txt" >&2
exit "$status"
