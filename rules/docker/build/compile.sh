#!/bin/sh
# Runs inside the builder (any platform, no network): compile /src/main.py into /export.
#   /export/app/          the program (/app/workflow) and what it loads at run time
#   /export/<lib paths>   its ELF closure: ld-linux, libc, libm, libz, ... as on the builder
#   /export/.meta/        facts for the image step (libc flavour, compiler report)
set -eu
arch="$(uname -m)"
# The first line: the build step runs (it waits while another compile holds the cache mount).
echo "docker-workflow-compile: started ($arch)"
# The lock was resolved for this Python (rules/lock.py BUILDER_PYTHON): say so if it differs.
want_python=3.11
have_python="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
if [ "$have_python" != "$want_python" ]; then
    echo "error: the builder image has Python $have_python; docker-workflow needs $want_python" >&2
    exit 2
fi
# The workflow's packages (installed from the lock into /pkgs) are importable while compiling,
# and so is the compiler, installed on the host into /toolchain (rules/stages/toolchain_site.py).
export PYTHONPATH=/pkgs:/toolchain
# Nuitka's module cache (import analysis of the standard library, by source digest) is the same
# for every platform of one Debian Python: shared, so a native amd64 compile warms the arm64
# compile under QEMU. The C caches (ccache, zig) are per platform.
export CCACHE_DIR="/cache/$arch/ccache" NUITKA_CACHE_DIR="/cache/nuitka"
mkdir -p "$CCACHE_DIR" "$NUITKA_CACHE_DIR" /export/app /export/.meta /build
if [ -e /lib/ld-musl-"$arch".so.1 ]; then echo musl > /export/.meta/libc; else echo glibc > /export/.meta/libc; fi

# CROSS=zig: the C compiler is Zig built for the machine that builds (it runs natively even in
# this builder emulated by QEMU), targeting this builder's platform and glibc. Nuitka runs here
# as usual; only its C part moves off the emulator.
# TUNING (bench/images.py only) turns single size measures off to measure each on its own:
# no-os, no-lto, debug-ranges, keep-cjk, docstrings, no-relr, compiled-engine, no-zip, all-codecs,
# all-builtins, deepfreeze.
tuning=" ${TUNING:-} "
has() { case "$tuning" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
os_flag="-Os"
has no-os && os_flag=""
# Relative relocations packed (DT_RELR, glibc 2.36 and binutils 2.38 or later; the image carries
# the builder's glibc): a position-independent program's .rela.dyn shrinks from about 1 MB to
# a few KB, with ASLR kept. Zig 0.15's cc refuses the flag, but the LLD it bundles takes it:
# the zig wrapper below links the program as zig does (-v prints that LLD command line), then
# runs that command again with the flag (under a second, native).
relr_flag="-Wl,-z,pack-relative-relocs"
has no-relr && relr_flag=""
zig_flag=""
if [ "${CROSS:-}" = zig ] && [ -x /opt/zig/ziglang/zig ]; then
    glibc="$(getconf GNU_LIBC_VERSION | cut -d' ' -f2)"
    triple="$arch-linux-gnu"
    mkdir -p /build/zigbin "/cache/$arch/zig"
    relr_link=no
    [ -n "$relr_flag" ] && relr_link=yes
    cat > /build/zigbin/zig <<ZIG
#!/bin/sh
z=/opt/zig/ziglang/zig
case "\$1" in
cc|c++) sub=\$1; shift ;;
*) exec \$z "\$@" ;;
esac
set -- -target $arch-linux-gnu.$glibc -idirafter /usr/include -L/usr/lib/$triple -L/lib/$triple "\$@"
link=$relr_link
for a in "\$@"; do case "\$a" in -c|-E|-S|-M|-MM) link=no ;; esac; done
[ "\$link" = yes ] || exec \$z "\$sub" "\$@"
# A link with packed relative relocations: zig's own link, -v printing its LLD command line,
# then LLD again with -z pack-relative-relocs. On a cold cache -v also prints the links of
# glibc's stub libraries and the archives zig made: the program's line is the one whose -o is
# this link's output.
out=
prev=
for a in "\$@"; do [ "\$prev" = -o ] && out=\$a; prev=\$a; done
log=\$(mktemp)
\$z "\$sub" "\$@" -v 2>"\$log" || { cat "\$log" >&2; rm -f "\$log"; exit 1; }
grep -v -e '^ld.lld ' -e '^ar rcs ' "\$log" >&2
lld="\$(awk -v out="\$out" '\$1 == "ld.lld" { for (i = 2; i < NF; i++) if (\$i == "-o" && \$(i + 1) == out) { print; next } }' "\$log")"
rm -f "\$log"
if [ -z "\$lld" ] || [ "\$(printf '%s\\n' "\$lld" | wc -l)" != 1 ]; then
    echo "error: zig cc -v printed no single LLD command line to add -z pack-relative-relocs to" >&2
    exit 1
fi
set -f
# shellcheck disable=SC2086
exec \$z \$lld -z pack-relative-relocs
ZIG
    chmod 755 /build/zigbin/zig
    # A position-independent executable, as the builder's gcc makes by default (ASLR).
    export PATH="/build/zigbin:$PATH" ZIG_GLOBAL_CACHE_DIR="/cache/$arch/zig" \
        ZIG_LOCAL_CACHE_DIR="/cache/$arch/zig" CCFLAGS="$os_flag -fPIE" LDFLAGS="-pie"
    zig_flag=--zig
    lto=no
else
    # Smaller code, the same speed for what the engine does (bench/images.py measures it).
    export CCFLAGS="$os_flag" LDFLAGS="$relr_flag"
    lto=yes
    has no-lto && lto=no
fi
# Bytecode without column tables (Python 3.11's fine-grained positions): smaller, and only
# traceback carets need them.
has debug-ranges || export PYTHONNODEBUGRANGES=1
docstrings_flag=--python-flag=no_docstrings
has docstrings && docstrings_flag=""

# The shared program's engine goes in as bytecode (rules/stages/stdlib_shake.py,
# ENGINE_AS_BYTECODE); TUNING=compiled-engine compiles it to C to measure what that buys.
flags="$(cat /src/compile-flags.txt)"
if has compiled-engine; then
    flags="$(grep -vx -- '--noinclude-custom-mode=runner_template:bytecode' /src/compile-flags.txt)"
fi
# The shared program keeps in its binary only what Nuitka must have before any import (its
# early imports) and its entry point: it follows no other standard-library module, nor the
# engine (unless TUNING=compiled-engine), and what the engine reaches comes zipped beside it,
# made on the host after this step (rules/stages/program_stdlib.py). TUNING=no-zip keeps them
# in the binary, to measure it.
if [ -f /src/stdlib-zip ] && ! has no-zip; then
    has compiled-engine || flags="$flags --nofollow-import-to=runner_template"
    # Only the codecs a UTF-8 start needs stay early imports; the others are in the zip.
    has all-codecs || flags="$flags --user-plugin=/inputs/nuitka_startup.py"
    flags="$flags $(python3 -c '
import os, sysconfig
stdlib = sysconfig.get_paths()["stdlib"]
for entry in sorted(os.listdir(stdlib)):
    path = os.path.join(stdlib, entry)
    if entry.endswith(".py") or os.path.isfile(os.path.join(path, "__init__.py")):
        print("--nofollow-import-to=" + entry.removesuffix(".py"))
')"
fi
# The shared program (rules/stages/program_builtins.py) links its own table of built-in
# modules before libpython: the archive's table (config.o), which names every module built into
# Debian's interpreter, is then never pulled in, nor the objects of the modules it drops, and
# --as-needed lets go of a library only those needed (libexpat). They come as extension modules
# in the module layer when a tool imports them.
if [ "$COMPILER" = nuitka ] && [ -f /src/builtins-dropped.txt ] && ! has all-builtins; then
    python3 /inputs/inittab.py /src/builtins-dropped.txt /build/inittab
    include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    inittab_cc=gcc
    [ -n "$zig_flag" ] && inittab_cc="zig cc"
    # shellcheck disable=SC2086
    $inittab_cc $CCFLAGS -fPIC -I"$include" -c /build/inittab/config.c -o /build/inittab/config.o
    export LDFLAGS="$LDFLAGS /build/inittab/config.o -Wl,--as-needed"
fi
# Likewise its own frozen tables (rules/docker/build/frozen.py): importlib's bootstrap and
# zipimport as bytecode, so the archive's frozen.o and the deep-frozen code objects of 23
# modules it points at (deepfreeze.o, 0.93 MB) stay out. A symbol of theirs still needed
# would be defined twice: the link fails. TUNING=deepfreeze links Debian's tables.
if [ "$COMPILER" = nuitka ] && [ -f /src/builtins-dropped.txt ] && ! has deepfreeze; then
    python3 -X no_debug_ranges /inputs/frozen.py /build/frozen
    include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    frozen_cc=gcc
    [ -n "$zig_flag" ] && frozen_cc="zig cc"
    # shellcheck disable=SC2086
    $frozen_cc $CCFLAGS -fPIC -I"$include" -c /build/frozen/frozen.c -o /build/frozen/frozen.o
    export LDFLAGS="$LDFLAGS /build/frozen/frozen.o"
fi
case "$COMPILER" in
nuitka|onefile)
    mode=--standalone
    [ "$COMPILER" = onefile ] && mode=--onefile
    cd /src
    # Nuitka writes the file name of the Python that runs it into the program (its
    # sys.executable in standalone mode: /app/<name>). It ran as "python" (a venv's) before it
    # came installed from the host: the same name, the same program bytes.
    command -v python >/dev/null 2>&1 || ln -s python3 "$(dirname "$(command -v python3)")/python"
    # --show-progress: a line per module optimized, which the progress display counts.
    # shellcheck disable=SC2086
    python -m nuitka $mode --output-dir=/build --output-filename=workflow \
        --python-flag=no_site $docstrings_flag --python-flag=no_warnings \
        --lto="$lto" --assume-yes-for-downloads --report=/export/.meta/compilation-report.xml \
        --show-progress $zig_flag $flags main.py
    if [ "$COMPILER" = onefile ]; then
        cp /build/workflow /export/app/workflow
    else
        cp -a /build/main.dist/. /export/app/
    fi
    if [ -f /build/inittab/builtins ]; then
        # The dropped modules' init functions must be gone from the program (exported, like
        # every function it has, when linked): a check that the link took our table.
        symbols="$(nm -D /build/main.dist/workflow)"
        echo "$symbols" | grep -q ' T PyInit_posix$' || {
            echo "error: the program exports no PyInit_posix: cannot check its built-ins" >&2
            exit 2
        }
        for name in $(cat /src/builtins-dropped.txt); do
            if echo "$symbols" | grep -q " T PyInit_$name\$"; then
                echo "error: the program still has the dropped built-in module $name" >&2
                exit 2
            fi
        done
        cp /build/inittab/builtins /export/.meta/builtins
    fi
    ;;
pyinstaller)
    cd /src
    python3 -m PyInstaller --noconfirm --onedir --name workflow --distpath /build/dist \
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
# The CJK codecs (about 1.2 MB) only load for text in those legacy encodings; the render step
# leaves this marker when no tool can need them.
if [ -f /src/drop-cjk-codecs ] && ! has keep-cjk; then
    rm -f /export/app/_codecs_*.so /export/app/_multibytecodec.so
fi
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
# Nuitka's build folder (C sources, objects: about 170 MB compressed) would stay in this step's
# layer, which BuildKit keeps in its cache: only /export leaves this step.
rm -rf /build
