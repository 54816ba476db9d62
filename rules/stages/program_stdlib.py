"""The shared program's standard library as one deflated zip of bytecode beside it.

Nuitka keeps the bytecode of every module it includes uncompressed in the program (3.4 MB for
the engine's 255 standard-library modules: a third of the binary). For the shared program
(``--compiler nuitka``) compile.sh tells it to follow no standard-library module at all, so the
binary keeps only what Nuitka must have before any import can run (its "early imports": the
codecs, ``os``, ``re``, ``inspect`` ...) and the engine. Everything else the engine can reach
comes here, after the compile, into ``app/stdlib.zip``: the closure of the engine's imports
(``rules/stages/module_closure.py``, the same walk as a workflow's layer, minus the groups the
program leaves out), compiled by the builder's own Python without docstrings, asserts or column
tables, as Nuitka compiles what it keeps. Python's ``zipimport`` reads it (the entry point puts
it on ``sys.path``), so a module costs about a third of its bytecode on disk and nothing more
in memory once imported. The extension modules the closure needs (``_queue``, ``_uuid``) come
beside the program with their libraries, as in a layer.

Modules looked up by a computed name are roots too: every codec (``str.encode("idna")``),
``stringprep``, ``sysconfig`` with its ``_sysconfigdata_*``, ``importlib.util`` and ``pkgutil``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from functools import cache
from pathlib import Path

from rules.docker.dockerfiles import docker_file
from rules.fsutil import reset_metadata, staging_dir
from rules.stages.builder_files import run_builder
from rules.stages.builder_python import Stdlib, builder_python_dir, load_stdlib
from rules.stages.module_closure import ImportsMemo, module_closure
from rules.stages.modules_layer import (
    CJK_CODECS,
    copy_extensions,
    program_libraries,
    program_modules,
    write_zip,
    zip_member,
)
from rules.stages.sbom import PROGRAM_ZIP_MANIFEST
from rules.stages.stdlib_shake import ENGINE_UNUSED, EXCLUDABLE, TLS
from rules.stages.toolchain import host_arch

ZIP_NAME = "stdlib.zip"
SCRIPT = "stdlib_zip.py"
# Reached by a computed name, never by an import statement the walk could see.
COMPUTED_ROOTS = ("stringprep", "sysconfig", "importlib.util", "pkgutil")


@cache
def code_digest() -> str:
    """The zip's code: a program whose zip another version made is another program."""
    from rules.stages import analyze, builder_python, module_closure, modules_layer

    digest = hashlib.sha256(docker_file(SCRIPT))
    for module in (sys.modules[__name__], analyze, builder_python, module_closure, modules_layer):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def left_out() -> frozenset[str]:
    """What the shared program never carries (a workflow's layer brings it when a tool needs
    it): the excludable groups, TLS, the modules the engine never imports, and the CJK codecs'
    extension modules (0.9 MB; their codec modules are in the zip)."""
    groups = {name for members in EXCLUDABLE.values() for name in members}
    return frozenset(groups | set(TLS) | set(ENGINE_UNUSED) | set(CJK_CODECS))


def engine_roots(stdlib: Stdlib) -> tuple[dict[str, list[str]], set[str]]:
    """The standard-library modules the engine imports (dotted, any depth of its code) and
    those looked up by name, with which of them are optional (inside ``try``)."""
    from rules.stages.analyze import dotted_imports
    from rules.stages.render import engine_sources

    roots: dict[str, list[str]] = {}
    optional: set[str] = set()
    required_somewhere: set[str] = set()
    for name, data in engine_sources().items():
        module = "runner_template." + name.removesuffix(".py").replace("/", ".")
        package = module.endswith(".__init__")
        required, maybe = dotted_imports(data.decode(), module.removesuffix(".__init__"), package)
        for imported in required | maybe:
            roots.setdefault(imported, [f"the engine ({name})"])
        required_somewhere |= required
        optional |= maybe
    computed = [*COMPUTED_ROOTS, *stdlib.submodules("encodings")]
    computed += [name for name in stdlib.sources if name.startswith("_sysconfigdata_")]
    for name in computed:
        roots.setdefault(name, ["a lookup by name"])
        optional.add(name)
    return roots, optional - required_somewhere


def zip_program_stdlib(
    builder_image: str, platform: str, program: Path, engine_dir: Path, with_engine: bool
) -> None:
    """Write ``app/stdlib.zip``, the extension modules and libraries it needs, and the
    manifest into the freshly compiled ``program`` folder (before it becomes the cache entry).
    With ``with_engine`` the engine's modules (from the rendered ``engine_dir``) go in too:
    compile.sh left them out of the binary."""
    stdlib = load_stdlib(builder_python_dir(builder_image, platform))
    roots, optional = engine_roots(stdlib)
    closure = module_closure(
        roots,
        optional,
        stdlib,
        program_modules(program),
        platform,
        ImportsMemo(),
        leave_out=left_out(),
    )
    entries = []
    engine: dict[str, bool] = {}  # the engine's modules: name -> is a package
    for name in sorted(closure.modules):
        path = "/" + stdlib.sources[name].relative_to(stdlib.root).as_posix()
        entries.append([name, "/r" + path, name in stdlib.packages, path])  # the builder's path
    if with_engine:
        for source in sorted((engine_dir / "runner_template").rglob("*.py")):
            relative = source.relative_to(engine_dir)
            parts = relative.with_suffix("").parts
            package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if package else parts)
            entries.append([name, f"/e/{relative.as_posix()}", package, relative.as_posix()])
            engine[name] = package
    scratch = staging_dir(program / ".zip")
    try:
        (scratch / "scripts").mkdir(parents=True)
        (scratch / "out").mkdir()
        (scratch / "scripts" / SCRIPT).write_bytes(docker_file(SCRIPT))
        run_builder(
            builder_image,
            f"linux/{host_arch()}",  # bytecode is the same on every platform: no emulator
            ["-X", "no_debug_ranges", "-OO", f"/scripts/{SCRIPT}"],
            {
                stdlib.root: "/r",
                engine_dir: "/e",
                scratch / "scripts": "/scripts",
                scratch / "out": "/out",
            },
            f"compiling the program's standard library for {platform}",
            stdin=json.dumps(entries),
        )
        members = {
            path.relative_to(scratch / "out").as_posix(): path.read_bytes()
            for path in sorted((scratch / "out").rglob("*.pyc"))
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_zip(program / "app" / ZIP_NAME, members)
    packages = {name: name in stdlib.packages for name in closure.modules} | engine
    modules = {
        name: hashlib.sha256(members[zip_member(name, package)]).hexdigest()
        for name, package in packages.items()
    }
    extensions, libraries = copy_extensions(
        stdlib, closure.extensions, program, program_libraries(program)
    )
    manifest = {"modules": modules, "extensions": extensions, "libraries": libraries}
    (program / PROGRAM_ZIP_MANIFEST).write_text(
        json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    )
    reset_metadata(program)
