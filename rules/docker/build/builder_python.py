"""Copy what the module layer takes from a builder out of it, with the facts the host needs.

Runs inside the builder, once per (builder image, platform), with the output folder mounted:
``builder_python.py OUT``. It writes

- ``OUT/root/usr/lib/python3.X/``: the standard library (sources and Debian's bytecode in
  ``__pycache__``, ``lib-dynload/``), without tests, site-packages and the build configuration;
- ``OUT/root/<path>``: every shared library an extension module of ``lib-dynload`` loads, at the
  path ``ldd`` names (the same path it will have in the image), the system libraries a
  manylinux wheel may load, and the CA bundle;
- ``OUT/facts.json``: the Python version, ``sys.builtin_module_names`` (Debian's libpython has
  zlib, pyexpat, _sha256, _socket... built in) and, per extension module, its file, the
  libraries it loads and those ``ldd`` cannot find.

Everything after this runs on the host, in Python, without the builder: the per-edit work of a
layer never waits for an emulator.
"""

import _imp
import sys

# Modules every interpreter has loaded before any import (frozen: importlib's bootstrap,
# zipimport, ...): taken before this script imports anything itself.
PRELOADED = sorted(name for name in sys.modules if _imp.is_frozen(name))

import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sysconfig  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elf_closure import needed  # noqa: E402  (the compile's ELF closure: the same ldd reading)

NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found")
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__phello__"}
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# The system libraries a manylinux wheel may load (its policy's list; auditwheel bundles the
# rest into the wheel): copied with their own closure, for the wheels' extension modules.
WHEEL_SYSTEM_LIBRARIES = (
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libutil.so.1",
    "libresolv.so.2",
    "libcrypt.so.1",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
    "libexpat.so.1",
)


def missing(path):
    import subprocess

    result = subprocess.run(["ldd", path], capture_output=True, text=True, check=False)
    return sorted(m.group(1) for line in result.stdout.splitlines() if (m := NOT_FOUND.match(line)))


def copy_stdlib(stdlib, root):
    """The standard library with its bytecode: Debian's own ``__pycache__``; where a builder
    has none (the official python images delete it), compiled here, without timestamps."""
    import py_compile

    tag = sys.implementation.cache_tag
    for folder, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("config-"))
        target = root + folder
        os.makedirs(target, exist_ok=True)
        for name in files:
            source = os.path.join(folder, name)
            if not os.path.islink(source):
                shutil.copyfile(source, os.path.join(target, name))
        for name in sorted(files):
            if not name.endswith(".py") or folder.endswith("__pycache__"):
                continue
            pyc = os.path.join(folder, "__pycache__", f"{name[:-3]}.{tag}.pyc")
            if os.path.exists(pyc):
                continue
            # A file that is not Python 3 (a test fixture) is never imported: skipped.
            with contextlib.suppress(py_compile.PyCompileError, SyntaxError, ValueError):
                py_compile.compile(
                    os.path.join(folder, name),
                    cfile=os.path.join(target, "__pycache__", f"{name[:-3]}.{tag}.pyc"),
                    dfile=os.path.join(folder, name),
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )


def copy_file(path, root):
    target = root + path
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.realpath(path), target)


def main(out):
    root = os.path.join(out, "root")
    stdlib = sysconfig.get_paths()["stdlib"]
    dynload = os.path.join(stdlib, "lib-dynload")
    copy_stdlib(stdlib, root)
    extensions = {}
    for name in sorted(os.listdir(dynload)):
        if not name.endswith(".so"):
            continue
        path = os.path.join(dynload, name)
        libraries = sorted(set(needed(path)))
        for library in libraries:
            copy_file(library, root)
        extensions[name.split(".")[0]] = {
            "file": name,
            "libraries": libraries,
            "missing": missing(path),
        }
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    system = {}
    for soname in WHEEL_SYSTEM_LIBRARIES:
        path = f"/lib/{multiarch}/{soname}"
        if os.path.exists(path):
            libraries = sorted({path, *needed(path)})
            for library in libraries:
                copy_file(library, root)
            system[soname] = libraries
    if os.path.exists(CA_BUNDLE):
        copy_file(CA_BUNDLE, root)
    facts = {
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "stdlib": stdlib,
        "builtin": sorted(sys.builtin_module_names),
        "preloaded": PRELOADED,
        "system_libraries": system,
        "extensions": extensions,
        "ca_bundle": CA_BUNDLE if os.path.exists(CA_BUNDLE) else None,
    }
    with open(os.path.join(out, "facts.json"), "w") as handle:
        json.dump(facts, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
