#!/bin/sh
# Runs inside the builder (any platform, no network): compile /src/main.py into /export.
#   /export/app/          the program (/app/workflow) and what it loads at run time
#   /export/<lib paths>   its ELF closure: ld-linux, libc, libm, libz, ... as on the builder
#   /export/.meta/        facts for the image step (libc flavour, compiler report)
set -eu
arch="$(uname -m)"
# The lock was resolved for this Python (rules/lock.py BUILDER_PYTHON): say so if it differs.
want_python=3.11
have_python="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
if [ "$have_python" != "$want_python" ]; then
    echo "error: the builder image has Python $have_python; docker-workflow needs $want_python" >&2
    exit 2
fi
# The workflow's packages (installed from the lock into /pkgs) are importable while compiling.
export PYTHONPATH=/pkgs
export CCACHE_DIR="/cache/$arch/ccache" NUITKA_CACHE_DIR="/cache/$arch/nuitka"
mkdir -p "$CCACHE_DIR" "$NUITKA_CACHE_DIR" /export/app /export/.meta /build
if [ -e /lib/ld-musl-"$arch".so.1 ]; then echo musl > /export/.meta/libc; else echo glibc > /export/.meta/libc; fi

case "$COMPILER" in
nuitka|onefile)
    mode=--standalone
    [ "$COMPILER" = onefile ] && mode=--onefile
    cd /src
    # shellcheck disable=SC2086
    /venv/bin/python -m nuitka $mode --output-dir=/build --output-filename=workflow \
        --python-flag=no_site --python-flag=no_docstrings --python-flag=no_warnings \
        --lto=no --assume-yes-for-downloads --report=/export/.meta/compilation-report.xml \
        --quiet $(cat /src/compile-flags.txt) main.py
    if [ "$COMPILER" = onefile ]; then
        cp /build/workflow /export/app/workflow
    else
        cp -a /build/main.dist/. /export/app/
    fi
    ;;
pyinstaller)
    cd /src
    /venv/bin/python -m PyInstaller --noconfirm --onedir --name workflow --distpath /build/dist \
        --workpath /build/work --specpath /build --log-level WARN --paths /pkgs main.py
    cp -a /build/dist/workflow/. /export/app/
    ;;
none)
    # Plain CPython: the interpreter, the standard library without tests and tools, the engine.
    py="$(command -v python3)"
    real="$(readlink -f "$py")"
    version="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    stdlib="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
    mkdir -p "/export$(dirname "$real")" "/export$stdlib"
    cp "$real" "/export$real"
    (cd "$stdlib" && tar --exclude=test --exclude=tests --exclude=idlelib --exclude=tkinter \
        --exclude=turtledemo --exclude=ensurepip --exclude=lib2to3 --exclude=pydoc_data \
        --exclude=site-packages --exclude=dist-packages --exclude='__pycache__' \
        --exclude='config-*' -cf - .) | (cd "/export$stdlib" && tar -xf -)
    cp -a /src/. /export/app/
    cp -a /pkgs/. /export/app/
    rm -f /export/app/compile-flags.txt
    { echo "#!$real -SE"; cat /src/main.py; } > /export/app/workflow
    chmod 755 /export/app/workflow
    echo "python$version" > /export/.meta/python
    ;;
*)
    echo "unknown compiler: $COMPILER" >&2
    exit 2
    ;;
esac
# TLS in the program (an https endpoint, or a package that needs ssl): the CA bundle comes too.
if ! grep -qx -- '--nofollow-import-to=ssl' /src/compile-flags.txt \
        && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p /export/etc/ssl/certs
    cp /etc/ssl/certs/ca-certificates.crt /export/etc/ssl/certs/ca-certificates.crt
fi
closure_extra=""
# A onefile program unpacks its distribution at start: that distribution's libraries count too.
[ "$COMPILER" = onefile ] && closure_extra=/build/main.dist
# shellcheck disable=SC2086
python3 /inputs/elf_closure.py /export $closure_extra
# Same input, same bytes: no timestamps from this build in the output tree.
find /export -exec touch -h -d @0 {} +
