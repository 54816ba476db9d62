"""The builder's Python on the host: its standard library, extension modules and their libraries.

The module layer (``rules/stages/modules_layer.py``) is assembled on the host, in Python, from
files of the builder, copied out once per (builder image, platform) into
``cache/builder-python/<image id>-<code>/<arch>/``: ``root/`` (the standard library with its
bytecode, ``lib-dynload/``, the libraries its extension modules load, the CA bundle) and
``facts.json`` (built-in modules, each extension's libraries). The files come out of a created,
never started, container (``docker cp``, ``rules/stages/builder_files.py``); each extension's
libraries are found on the host from their ``DT_NEEDED`` entries, as the builder's loader would.
The builder runs once, for what only its interpreter knows (``rules/docker/build/
builder_python.py``: built-in and frozen modules; one interpreter start under QEMU for a
foreign platform), and the host's platform again only when some standard-library module has
no bytecode (the official python images delete it). Every later layer reads files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from rules.docker.dockerfiles import docker_file
from rules.errors import UserError
from rules.fsutil import locked, replace_tree, staging_dir
from rules.paths import cache_dir
from rules.platforms import arch_of
from rules.progress import status
from rules.stages import builder_files, elf_needed
from rules.stages.builder_files import LibrarySearch, ld_so_conf_dirs, run_builder
from rules.stages.toolchain import host_arch

SCRIPT = "builder_python.py"
EXTENSIONS_SCRIPT = "builtin_extensions.py"  # Debian's built-ins as extension modules
BYTECODE_TAG = "cpython-311"  # rules/stages/lock.py BUILDER_PYTHON
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


@dataclass(frozen=True)
class Stdlib:
    """What one builder's Python has, by module name."""

    root: Path  # the copied file system (paths as in the builder)
    sources: dict[str, Path]  # module -> its .py (a package: its __init__.py)
    packages: frozenset[str]
    extensions: dict[str, dict]  # module -> {"file", "libraries", "missing"}
    builtin: frozenset[str]
    preloaded: frozenset[str]  # frozen modules every interpreter has (importlib's bootstrap)
    dynload: Path
    ca_bundle: str | None
    system_libraries: dict[str, list[str]]  # soname -> its path and closure, for wheels
    # Built-in modules that could not be linked as extension modules: name -> why ("*": all).
    builtin_failures: dict[str, str] = field(default_factory=dict)

    def bytecode(self, module: str) -> Path | None:
        """Debian's bytecode of a module (``__pycache__/<name>.cpython-311.pyc``)."""
        source = self.sources[module]
        pyc = source.parent / "__pycache__" / f"{source.stem}.{BYTECODE_TAG}.pyc"
        return pyc if pyc.is_file() else None

    def submodules(self, package: str) -> list[str]:
        prefix = package + "."
        return sorted(name for name in self.sources if name.startswith(prefix))


def image_id(reference: str) -> str:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        check=False,
    )
    found = result.stdout.strip()
    if result.returncode != 0 or not found:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", reference)  # not here yet: docker run pulls it
    return found.split(":")[-1][:16]


@cache
def _code_digest() -> str:
    """The extraction's code: the builder's script and the host modules that read the files."""
    digest = hashlib.sha256(docker_file(SCRIPT) + docker_file(EXTENSIONS_SCRIPT))
    for module in (sys.modules[__name__], builder_files, elf_needed):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:8]


def builder_python_path(builder_image: str, platform: str) -> Path:
    """``cache/builder-python/<image id>-<code>/<arch>``: a new folder when the builder or the
    extraction's code changes."""
    folder = f"{image_id(builder_image)}-{_code_digest()}"
    return cache_dir() / "builder-python" / folder / arch_of(platform)


def builder_python_dir(builder_image: str, platform: str) -> Path:
    """The extracted builder Python for this builder and platform (made once)."""
    target = builder_python_path(builder_image, platform)
    if (target / "facts.json").is_file():
        return target
    with locked(target.parent / f".{arch_of(platform)}.lock"):
        if not (target / "facts.json").is_file():
            with status(f"copying the builder's Python out for {platform} (once per builder)"):
                _extract(builder_image, platform, target)
    return target


def _extract(builder_image: str, platform: str, target: Path) -> None:
    output = staging_dir(target)
    scratch = staging_dir(target.with_name(target.name + "-files"))
    try:
        facts = _interpreter_facts(builder_image, platform, scratch / "scripts")
        root = output / "root"
        stdlib = facts["stdlib"]
        with builder_files.builder_files(builder_image, platform) as files:
            if not files.copy_out(stdlib, root, _stdlib_file, links=False):
                raise UserError(f"builder image {builder_image} for {platform} has no {stdlib}")
            _compile_missing_bytecode(root, stdlib, facts["cache_tag"], builder_image)
            dynload = root / stdlib.lstrip("/") / "lib-dynload"
            built = _builtin_extensions(builder_image, platform, scratch / "scripts", dynload)
            for path in ("/etc/ld.so.conf", "/etc/ld.so.conf.d", facts["executable"]):
                files.copy_out(path, scratch / "files", lambda _: True, links=False)
            search = LibrarySearch(
                files,
                scratch / "libraries",
                _search_dirs(scratch / "files" / "etc", facts["multiarch"]),
                elf_needed.interpreter(scratch / "files" / facts["executable"].lstrip("/")),
            )
            extensions, system = _libraries(search, root, stdlib, facts["multiarch"])
            has_bundle = files.copy_out(CA_BUNDLE, root, lambda _: True, links=False)
        document = {
            "python": facts["python"],
            "stdlib": stdlib,
            "builtin": facts["builtin"],
            "builtin_extensions": built,
            "preloaded": facts["preloaded"],
            "system_libraries": system,
            "extensions": extensions,
            "ca_bundle": CA_BUNDLE if has_bundle else None,
        }
        (output / "facts.json").write_text(json.dumps(document, indent=1, sort_keys=True))
        replace_tree(output, target)
    finally:
        shutil.rmtree(output, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _interpreter_facts(builder_image: str, platform: str, scripts: Path) -> dict:
    """What only the builder's interpreter knows (its built-in and frozen modules, paths)."""
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / SCRIPT).write_bytes(docker_file(SCRIPT))
    what = f"reading the Python of builder image {builder_image}"
    out = run_builder(builder_image, platform, [f"/scripts/{SCRIPT}"], {scripts: "/scripts"}, what)
    return json.loads(out)


def _builtin_extensions(builder_image: str, platform: str, scripts: Path, dynload: Path) -> dict:
    """Debian's built-in modules linked as extension modules into ``lib-dynload/`` (beside
    the others, so their libraries are found the same way), by the builder for ``platform``
    (under QEMU for a foreign one: links only, about 30 s once); what was built and what not."""
    (scripts / EXTENSIONS_SCRIPT).write_bytes(docker_file(EXTENSIONS_SCRIPT))
    dynload.mkdir(parents=True, exist_ok=True)
    what = f"linking the built-in modules of builder image {builder_image} as extensions"
    out = run_builder(
        builder_image,
        platform,
        [f"/scripts/{EXTENSIONS_SCRIPT}", "/out"],
        {scripts: "/scripts", dynload: "/out"},
        what,
    )
    return json.loads(out)


def _stdlib_file(path: str) -> bool:
    """A file of the standard library the layers may take: no tests, site-packages or build
    configuration."""
    return not any(part in SKIP_DIRS or part.startswith("config-") for part in path.split("/"))


def _compile_missing_bytecode(root: Path, stdlib: str, tag: str, builder_image: str) -> None:
    """Bytecode for the modules that have none (the official python images delete it), by
    the builder's own Python for this machine's platform (bytecode is the same on every
    platform: no emulator), without timestamps, naming the builder's paths."""
    missing = []
    for source in sorted((root / stdlib.lstrip("/")).rglob("*.py")):
        if not (source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc").is_file():
            missing.append("/w/" + source.relative_to(root).as_posix())
    if not missing:
        return
    # A file that is not Python 3 (a test fixture) is never imported: compileall's exit 1.
    compileall = ["-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
    run_builder(
        builder_image,
        f"linux/{host_arch()}",
        [*compileall, "-s", "/w", "-p", "/", "-i", "-"],
        {root: "/w"},
        "compiling the standard library's bytecode",
        stdin="\n".join(missing) + "\n",
        accept=(0, 1),
    )


def _search_dirs(etc: Path, multiarch: str) -> list[str]:
    """The loader's folders: ``ld.so.conf``'s (its cache), then glibc's default ones."""
    defaults = [f"/lib/{multiarch}", f"/usr/lib/{multiarch}"] if multiarch else []
    found: list[str] = []
    for folder in [*ld_so_conf_dirs(etc), *defaults, "/lib", "/usr/lib"]:
        if folder not in found:
            found.append(folder)
    return found


def _libraries(
    search: LibrarySearch, root: Path, stdlib: str, multiarch: str
) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Each extension module's libraries (copied into ``root`` at their builder paths) and the
    system libraries a manylinux wheel may load, each with its closure."""

    def copy(library: str) -> None:
        target = root / library.lstrip("/")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(search.content(library), target)

    extensions = {}
    dynload = root / stdlib.lstrip("/") / "lib-dynload"
    for path in sorted(dynload.glob("*.so")):
        libraries, missing = search.closure(path)
        for library in libraries:
            copy(library)
        extensions[path.name.split(".")[0]] = {
            "file": path.name,
            "libraries": libraries,
            "missing": missing,
        }
    system = {}
    for soname in WHEEL_SYSTEM_LIBRARIES:
        path = f"/lib/{multiarch}/{soname}"
        if search.host_path(path) is not None:
            closure, _ = search.closure(search.content(path))
            system[soname] = sorted({path, *closure})
            for library in system[soname]:
                copy(library)
    return extensions, system


@cache
def load_stdlib(folder: Path) -> Stdlib:
    """The index of one extracted builder Python (once per process)."""
    facts = json.loads((folder / "facts.json").read_text())
    root = folder / "root"
    stdlib = root / facts["stdlib"].lstrip("/")
    sources: dict[str, Path] = {}
    packages: set[str] = set()
    for current, dirs, files in os.walk(stdlib):
        here = Path(current)
        relative = here.relative_to(stdlib)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and d.isidentifier())
        if relative.parts and not (here / "__init__.py").is_file():
            dirs[:] = []  # not a package: nothing below is importable by a dotted name
            continue
        prefix = ".".join(relative.parts)
        if prefix:
            sources[prefix] = here / "__init__.py"
            packages.add(prefix)
        for name in files:
            stem = name[:-3]
            if name.endswith(".py") and stem.isidentifier() and stem != "__init__":
                sources[f"{prefix}.{stem}" if prefix else stem] = here / name
    return Stdlib(
        root=root,
        sources=sources,
        packages=frozenset(packages),
        extensions=facts["extensions"],
        builtin=frozenset(facts["builtin"]),
        preloaded=frozenset(facts["preloaded"]),
        dynload=stdlib / "lib-dynload",
        ca_bundle=facts.get("ca_bundle"),
        system_libraries=facts.get("system_libraries", {}),
        builtin_failures=facts.get("builtin_extensions", {}).get("failed", {}),
    )
