#!/usr/bin/env bash
# Install what the registry tests (tests/docker/test_registry.py) need, idempotently: Debian's
# docker-registry (the CNCF distribution registry, started by the tests on loopback), htpasswd
# (apache2-utils: the test registry's credentials) and openssl (the test CA). The package's
# own service is left stopped: the tests start their registries with config files of their own.
#
#   scripts/setup_registry.sh
#
# Needs root and apt on Debian; elsewhere it says what is missing.
set -euo pipefail

log() { printf '[setup-registry] %s\n' "$*" >&2; }

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${#missing[@]}" -eq 0 ]; then
    log "docker-registry, htpasswd and openssl are there"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    log "missing: ${missing[*]} (install them as root with apt-get, or your system's packages)"
    exit 1
fi
log "installing ${missing[*]}"
# The package's post-install would start its own registry on :5000 where an init system runs;
# policy-rc.d keeps services from starting during this install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
trap 'if [ "$made_policy" -eq 1 ]; then rm -f "$policy"; fi' EXIT
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
log "done: $(docker-registry --version)"
