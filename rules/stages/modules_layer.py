"""Pipeline step 4b: the workflow's modules as an image layer beside the shared program.

``--compiler nuitka`` compiles one program per platform with the engine's own modules only
(``rules/stages/render.py`` ``program/``). What a workflow's tools need beyond it comes here,
per (workflow, platform), into ``cache/layers/<key>/<arch>/``, a folder the image copies in:

- ``app/layer.zip``: the standard-library modules of the closure
  (``rules/stages/module_closure.py``), Debian's own bytecode of the builder, sourceless,
  deflated (a third of the size; the engine's entry point puts it on ``sys.path``), and the
  pure-Python wheels with their ``.dist-info`` (``rules/stages/wheel_placement.py``);
- ``app/<name>.cpython-311-<triplet>.so``: their extension modules (``_decimal``, ``_sqlite3``,
  ``_ssl``, the CJK codecs when a tool can need them), and at their builder paths the shared
  libraries those load that the program does not ship already (libmpdec, libsqlite3, libssl);
- ``app/<package>/``: the other locked wheels for the platform (extension modules, data read
  by path), installed and compiled to sourceless bytecode by the builder's Python
  (``unchecked-hash``: no timestamps), once per wheel set;
- ``etc/ssl/certs/ca-certificates.crt`` when TLS is in the layer (a link to certifi's bundle
  when certifi is there);
- ``.meta/layer.json``: what is in it, for the SBOM.

The program's folder ``/app`` is on its ``sys.path``, and the engine's
``runner_template/layer_imports.py`` finds submodules of packages it has compiled in. Everything
is read from files copied once out of the builder (``rules/stages/builder_python.py``), so an
edit that adds an import takes a fraction of a second here and no emulator. Same inputs, same
bytes: mtimes 0, fixed modes, sorted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from rules.errors import UserError
from rules.fsutil import file_sha256, locked, replace_tree, reset_metadata, staging_dir
from rules.paths import cache_dir
from rules.platforms import arch_of
from rules.stages.builder_files import run_builder
from rules.stages.builder_python import Stdlib, builder_python_dir, load_stdlib
from rules.stages.elf_needed import needed_libraries
from rules.stages.lock import BUILDER_PYTHON, ensure_wheel, wheel_platform_tags
from rules.stages.module_closure import Closure, ImportsMemo, module_closure
from rules.stages.program_builtins import program_builtins
from rules.stages.stdlib_shake import excluded_modules
from rules.stages.toolchain import host_arch
from rules.stages.wheel_placement import Placement, path_readers, place_wheels, wheel_modules

LAYER_META = ".meta/layer.json"
# The layer's standard-library bytecode, deflated (the engine's entry point puts it on sys.path).
LAYER_ZIP = "layer.zip"
CJK_CODECS = ("_multibytecodec", "_codecs_cn", "_codecs_hk", "_codecs_iso2022", "_codecs_jp")
CJK_CODECS += ("_codecs_kr", "_codecs_tw")


@dataclass(frozen=True)
class LayerRequest:
    """Everything that decides one platform's layer."""

    platform: str
    builder_image: str
    program: Path  # the shared program's folder, cache/compiled/<key>/<arch>
    imports: dict[str, list[str]]  # dotted module -> who imports it ("tool NAME", "step ID")
    optional: frozenset[str] = frozenset()
    https: bool = False
    cjk_codecs: bool = False
    wheels: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    unicodedata: tuple[str, ...] = ()  # who may need it (analysis ``unicodedata_users``)

    @property
    def arch(self) -> str:
        return arch_of(self.platform)

    def roots(self) -> dict[str, list[str]]:
        """The closure's roots: the tools' imports, ``ssl`` for an https endpoint, and
        ``unicodedata`` (a built-in the shared program leaves out, 1.1 MB) for every workflow
        that runs Python code of its own, names a character in an input pattern, or calls https.

        The rule is by who runs, not by what is imported, because the uses of ``unicodedata``
        are mostly invisible to an import scan: the ``idna`` codec is looked up by name
        (``socket.getaddrinfo`` and ``gethostbyaddr`` encode every ``str`` host name with it,
        ``ssl`` its ``server_hostname``, tool code may call ``.encode("idna")``), ``re``'s parser
        imports it for a ``\\N{...}`` escape in a pattern built from data, and the compiler in
        the container for one in a tool's string literal. Nearly every tool's imports reach
        ``re`` or ``socket`` anyway (``json`` imports ``re``). What is left without it is what
        only the engine runs: LLM and API tools, whose calls resolve ASCII host names as bytes
        (``runner_template/http_client.py``)."""
        roots = {name: list(users) for name, users in self.imports.items()}
        if self.https:
            roots.setdefault("ssl", ["an https endpoint"])
        users = [*self.unicodedata, *(["an https endpoint"] if self.https else [])]
        if users:
            roots.setdefault("unicodedata", users)
        return roots


@cache
def _code_digest() -> str:
    """The bytes of the layer's code: a layer made by other code is another layer."""
    from rules.stages import (
        analyze,
        builder_files,
        builder_python,
        elf_needed,
        module_closure,
        wheel_placement,
    )
    from rules.stages import program_builtins as builtins_module

    digest = hashlib.sha256()
    modules = (sys.modules[__name__], builder_files, builder_python, elf_needed, module_closure)
    modules += (builtins_module, analyze, wheel_placement)  # analyze: the closure's import scan
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def layer_key(request: LayerRequest) -> str:
    facts = {
        "code": _code_digest(),
        "platform": request.platform,
        "builder": builder_python_dir(request.builder_image, request.platform).parent.name,
        "program": request.program.parent.name,  # the compile key
        "imports": sorted(request.imports),
        "optional": sorted(request.optional),
        "https": request.https,
        "cjk": request.cjk_codecs,
        # Who may need unicodedata names it in an error only: the layer is the same for any.
        "unicodedata": bool(request.unicodedata),
        "wheels": sorted(w["sha256"] for w in request.wheels),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def program_modules(program: Path) -> set[str]:
    """The modules the shared program has: compiled in, in its stdlib.zip, or extension
    modules beside it."""
    from rules.stages.sbom import REPORT, extension_file, report_facts, zip_manifest

    _, modules = report_facts(program / ".meta" / REPORT)
    return {
        module.name
        for module in modules
        if module.kind != "PythonExtensionModule" or extension_file(program, module) is not None
    } | {name for part in ("modules", "extensions") for name in zip_manifest(program)[part]}


def program_libraries(program: Path) -> set[str]:
    """Paths (in the image) of the shared libraries the program's layer ships already."""
    found = set()
    for path in program.rglob("*"):
        relative = path.relative_to(program)
        if relative.parts[0] not in (".meta", "app") and (path.is_file() or path.is_symlink()):
            found.add("/" + relative.as_posix())
    return found


def layer_leave_out(request: LayerRequest) -> frozenset[str]:
    """The groups of the standard library (``stdlib_shake.EXCLUDABLE``, TLS) that neither a tool
    nor a locked package imports: the closure does not follow into them, as the program does
    not. A module reached only through one (``pickle``'s ``_test`` imports ``doctest``, which
    brings unittest, asyncio and ssl) never loads without it."""
    wanted = [*request.roots(), *(n for w in request.wheels for n in w.get("stdlib_imports", []))]
    return frozenset(excluded_modules(sorted({n.split(".")[0] for n in wanted}), request.https))


def layer_dir(request: LayerRequest) -> Path:
    return cache_dir() / "layers" / layer_key(request) / request.arch


def build_layer(request: LayerRequest) -> Path:
    """Assemble (or reuse) the layer of one platform; return its folder."""
    target = layer_dir(request)
    if (target / LAYER_META).is_file():
        return target
    stdlib = load_stdlib(builder_python_dir(request.builder_image, request.platform))
    roots = request.roots()
    optional = set(request.optional)
    memo = ImportsMemo()
    sources = wheel_sources(request)
    closure = module_closure(
        roots,
        optional,
        stdlib,
        program_modules(request.program),
        request.platform,
        memo,
        sources,
        leave_out=layer_leave_out(request),
        builtin=program_builtins(request.program, stdlib),
    )
    if request.cjk_codecs:
        closure.extensions |= {n for n in CJK_CODECS if n in stdlib.extensions}
    with locked(target.parent / f".{request.arch}.lock"):
        if not (target / LAYER_META).is_file():
            staging = staging_dir(target)
            try:
                _assemble(request, stdlib, closure, path_readers(sources), staging)
                replace_tree(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


def copy_extensions(
    stdlib: Stdlib, names: set[str], out: Path, shipped: set[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Extension modules into ``out/app/`` and the builder libraries they load (at their
    builder paths, once, unless ``shipped`` has them): ``{module: sha256}``, ``{path: sha256}``."""
    extensions: dict[str, str] = {}
    libraries: dict[str, str] = {}
    for name in sorted(names):
        entry = stdlib.extensions[name]
        _copy(stdlib.dynload / entry["file"], out / "app" / entry["file"], 0o755)
        extensions[name] = file_sha256(out / "app" / entry["file"])
        for library in entry["libraries"]:
            copy_library(stdlib, library, out, shipped, libraries)
    return extensions, libraries


def copy_library(
    stdlib: Stdlib, library: str, out: Path, shipped: set[str], copied: dict[str, str]
) -> None:
    """A builder library at its own path under ``out``, once, unless ``shipped`` has it."""
    if library not in shipped and library not in copied:
        _copy(stdlib.root / library.lstrip("/"), out / library.lstrip("/"), 0o755)
        copied[library] = file_sha256(out / library.lstrip("/"))


def zip_member(module: str, is_package: bool) -> str:
    """A module's bytecode's name in a zip ``zipimport`` reads: ``a/b.pyc``, ``a/__init__.pyc``."""
    parts = module.split(".")
    return "/".join([*parts, "__init__.pyc"]) if is_package else "/".join(parts) + ".pyc"


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    """A zip of ``members`` (name -> bytes), each deflated at level 9, sorted, with fixed dates
    and modes: the same members give the same bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name], compresslevel=9)


def _copy(source: Path, target: Path, mode: int = 0o644) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    os.chmod(target, mode)


def _assemble(
    request: LayerRequest, stdlib: Stdlib, closure: Closure, readers: set[str], out: Path
) -> None:
    """The layer's files into ``out``; ``readers``: the wheels' top-level names whose code
    reads its files by path (``wheel_placement.path_readers``)."""
    app = out / "app"
    app.mkdir(parents=True)
    modules = {}
    members = {}
    for name in sorted(closure.modules):
        pyc = stdlib.bytecode(name)
        assert pyc is not None  # the closure keeps only modules with bytecode
        members[zip_member(name, name in stdlib.packages)] = pyc.read_bytes()
        modules[name] = file_sha256(pyc)
    shipped = program_libraries(request.program)
    extensions, libraries = copy_extensions(stdlib, closure.extensions, out, shipped)
    placement = Placement({}, (), ())
    if request.wheels:
        installed = installed_wheels(request)
        names = {*stdlib.sources, *stdlib.extensions, *stdlib.builtin}
        stdlib_tops = {name.split(".")[0] for name in names}
        placement = place_wheels(installed, readers, stdlib_tops)
        members.update(placement.zipped)
        for relative in placement.loose:
            _copy(
                installed / relative, app / relative, 0o755 if relative.suffix == ".so" else 0o644
            )
        for library in _wheel_libraries(installed, stdlib, request.platform):
            copy_library(stdlib, library, out, shipped, libraries)
    if members:
        write_zip(app / LAYER_ZIP, members)
    tls = "ssl" in closure.modules or any(w["name"].lower() == "certifi" for w in request.wheels)
    if tls and stdlib.ca_bundle:
        _place_ca_bundle(stdlib, out)
    manifest = {
        "platform": request.platform,
        "modules": modules,
        "extensions": extensions,
        "libraries": libraries,
        "wheels": sorted(w["file"] for w in request.wheels),
        "wheels_in_zip": list(placement.zipped_distributions),
        "ca_bundle": stdlib.ca_bundle if tls else None,
    }
    (out / ".meta").mkdir()
    (out / LAYER_META).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    reset_metadata(out)


def _place_ca_bundle(stdlib: Stdlib, out: Path) -> None:
    """The CA bundle at the builder's path (``SSL_CERT_FILE`` names it). When ``certifi`` is
    in the layer, loose (``rules/stages/wheel_placement.py``), the system path is a link to
    its ``cacert.pem``: one bundle in the image, not two (0.21 MB), and the newer of the two,
    since the locked certifi is newer than the builder's Debian release."""
    assert stdlib.ca_bundle is not None
    target = out / stdlib.ca_bundle.lstrip("/")
    certifi = out / "app" / "certifi" / "cacert.pem"
    if certifi.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(certifi, target.parent))
    else:
        _copy(stdlib.root / stdlib.ca_bundle.lstrip("/"), target)


def _wheel_libraries(installed: Path, stdlib: Stdlib, platform: str) -> list[str]:
    """The system libraries (builder paths) the wheels' extension modules load; what a wheel
    bundles itself (auditwheel's ``<name>.libs/``) is found beside it."""
    bundled = {path.name for path in installed.rglob("*.so*")}
    found: set[str] = set()
    for module in sorted(installed.rglob("*.so*")):
        for soname in needed_libraries(module):
            if soname in bundled:
                continue
            closure = stdlib.system_libraries.get(soname)
            if closure is None:
                raise UserError(
                    f"the package file {module.relative_to(installed)} needs {soname}, which"
                    f" the builder for {platform} does not have: it cannot be layered"
                )
            found.update(closure)
    return sorted(found)


def wheel_sources(request: LayerRequest) -> dict[str, tuple[bytes, bool]]:
    """Module -> (source, is a package) of the locked wheels' code: the closure follows the
    imports of the wheel modules a tool reaches (as a compiler would), so what a package
    imports only in code nobody reaches (a CLI, an optional backend) stays out."""
    return wheel_modules([ensure_wheel(wheel, request.platform) for wheel in request.wheels])


def installed_wheels(request: LayerRequest) -> Path:
    """The platform's locked wheels installed into one folder, compiled to sourceless bytecode
    (once per wheel set: ``cache/layer-wheels/<key>/``)."""
    key = hashlib.sha256(
        json.dumps(
            [_code_digest(), request.arch, sorted(w["sha256"] for w in request.wheels)]
        ).encode()
    ).hexdigest()[:20]
    target = cache_dir() / "layer-wheels" / key
    if target.is_dir():
        return target
    files = [ensure_wheel(wheel, request.platform) for wheel in request.wheels]
    staging = staging_dir(target)
    try:
        _pip_install(files, request.arch, staging)
        _compile_bytecode(staging, request.builder_image)
        replace_tree(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _pip_install(files: list[Path], arch: str, dest: Path) -> None:
    platforms = [arg for tag in wheel_platform_tags(arch) for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    command += ["--no-compile", "--only-binary", ":all:", "--target", str(dest), *platforms]
    command += ["--python-version", BUILDER_PYTHON, "--implementation", "cp"]
    result = subprocess.run(
        [*command, *map(str, files)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"installing the locked wheels for the module layer failed: {last}")
    shutil.rmtree(dest / "bin", ignore_errors=True)  # console scripts: nothing runs them
    _drop_machine_records(dest)


def _drop_machine_records(dest: Path) -> None:
    """pip records where each wheel file was (``direct_url.json``: a path in this machine's
    cache) and the console scripts it wrote (``../../bin/``, with this machine's Python in
    their first line, removed above): neither is a fact about the image, and either would make
    the same workflow built elsewhere another layer. They go, and their ``RECORD`` lines too:
    a RECORD keeps the lines of files that are in the layer."""
    for marker in sorted(dest.glob("*.dist-info/direct_url.json")):
        marker.unlink()
    root = dest.resolve()
    for record in sorted(dest.glob("*.dist-info/RECORD")):
        kept = []
        for line in record.read_text(encoding="utf-8").splitlines(keepends=True):
            path = (dest / line.split(",", 1)[0]).resolve()
            if path.is_relative_to(root) and path.exists():
                kept.append(line)
        record.write_text("".join(kept), encoding="utf-8")


def _compile_bytecode(folder: Path, builder_image: str) -> None:
    """Bytecode by the builder's own Python (this machine's platform: no emulator; bytecode
    is the same on every platform), sourceless, without timestamps; then the sources go."""
    # compileall's exit 1 means a file kept its source (not Python 3 syntax: never imported).
    compileall = ["-m", "compileall", "-q", "-b", "--invalidation-mode", "unchecked-hash"]
    run_builder(
        builder_image,
        f"linux/{host_arch()}",
        [*compileall, "-s", "/w", "-p", "/app", "/w"],
        {folder: "/w"},
        "compiling the locked wheels' bytecode",
        accept=(0, 1),
    )
    for path in sorted(folder.rglob("*.py")):
        if path.with_suffix(".pyc").is_file():
            path.unlink()
    for pycache in sorted(folder.rglob("__pycache__"), reverse=True):
        shutil.rmtree(pycache, ignore_errors=True)
