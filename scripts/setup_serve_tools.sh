#!/bin/sh
# Debian tools the serve tests and benchmarks use: wrk (load generator for bench/serve.py) and
# prometheus (tests/runner_template/test_serve_metrics.py scrapes the service with it).
# Idempotent: installs only what is missing.
set -eu
missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
