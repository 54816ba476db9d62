#!/usr/bin/env bash
# Make the image of the test Swarm nodes (tests/docker/swarm_nodes.py starts three of them as
# privileged containers, each its own dockerd, joined as workers to the test engine's swarm):
# Debian trixie's docker.io (the engine version this machine runs), made offline from Debian
# packages with mmdebstrap like the builder image, and loaded with `docker import`, so no
# registry is needed. Made once: the tag carries a digest of this recipe, and the root file
# system tarball is kept in the cache folder, so a later run (or an engine that lost the image)
# only imports it.
#
#   scripts/setup_swarm_nodes.sh          prints the image tag on its last line
#
# Needs root, mmdebstrap (scripts/setup.sh installs it) and the Debian mirror.
set -euo pipefail

log() { printf '[setup-swarm-nodes] %s\n' "$*" >&2; }

SUITE=trixie
MIRROR=http://deb.debian.org/debian
PACKAGES=docker.io,containerd,runc,tini,iptables,ca-certificates,iproute2,procps
# The entrypoint: with cgroup v2, move this container's processes into a child group so that
# the nested dockerd may enable the controllers for its containers (what docker:dind does);
# with cgroup v1 the privileged container's hierarchies are used as they are.
ENTRYPOINT='#!/bin/sh
set -e
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || :
    sed -e "s/ / +/g" -e "s/^/+/" < /sys/fs/cgroup/cgroup.controllers \
        > /sys/fs/cgroup/cgroup.subtree_control || :
fi
exec dockerd "$@"
'
KEY="$(printf '%s\n' 1 "$SUITE" "$PACKAGES" "$ENTRYPOINT" | sha256sum | cut -c1-12)"
TAG="docker-workflow-test-node:$KEY"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/docker-workflow/swarm-node"
TARBALL="$CACHE/rootfs-$KEY.tar"

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "node image $TAG is there"
    echo "$TAG"
    exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
    command -v mmdebstrap >/dev/null || { log "mmdebstrap is missing: run scripts/setup.sh"; exit 1; }
    log "making the node root file system ($SUITE, $PACKAGES; about 1-2 min, once)"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    printf '%s' "$ENTRYPOINT" >"$work/entrypoint"
    mmdebstrap --mode=root --variant=minbase --quiet \
        --aptopt='APT::Install-Recommends false' \
        --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
        --include="$PACKAGES" \
        --customize-hook="upload $work/entrypoint /usr/local/bin/docker-workflow-test-node" \
        --customize-hook='chmod 755 "$1/usr/local/bin/docker-workflow-test-node"' \
        --customize-hook='rm -rf "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"*' \
        "$SUITE" "$work/rootfs.tar" "$MIRROR" >&2
    mv "$work/rootfs.tar" "$TARBALL"
fi
log "importing $TARBALL as $TAG"
docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/docker-workflow-test-node"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL docker-workflow-test-node=image' \
    "$TARBALL" "$TAG" >/dev/null
echo "$TAG"
