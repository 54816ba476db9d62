"""A CycloneDX bill of materials per platform, from what the build knows, byte-for-byte stable.

The build knows exactly what goes into an image: the workflow's bundle, the rendered engine,
the locked wheels (name, version, sha256), and what the compile step left in
``compiled/<key>/<arch>/.meta`` (Nuitka's compilation report: every standard-library and
extension module in the program, the builder's Python) plus the libc the program was linked
against (its ELF closure in the same folder). :func:`sbom_json` writes that as CycloneDX 1.6
JSON with ``cyclonedx-python-lib``; the image ships it as ``/app/sbom.cdx.json`` with a label
``docker-workflow.sbom-digest`` (``rules/stages/image.py``), and ``docker-workflow sbom`` prints it.

Reproducible: the timestamp is the epoch (``SOURCE_DATE_EPOCH=0``, like the image), the serial
number is a UUID derived from the inputs, and every list is sorted, so the same inputs give the
same bytes, and the same image digest.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rules.errors import UserError
from rules.fsutil import file_sha256
from rules.platforms import arch_of
from rules.stages.prepared import digest

# Beside Nuitka's report in a compiled program's .meta/: what its stdlib.zip holds.
PROGRAM_ZIP_MANIFEST = ".meta/stdlib-zip.json"

if TYPE_CHECKING:
    from rules.stages.image_request import ImageRequest

SBOM_PATH = "app/sbom.cdx.json"  # inside the image (and the image build's context folder)
SBOM_LABEL = "docker-workflow.sbom-digest"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REPORT = "compilation-report.xml"
# glibc names itself in its own binary: "GNU C Library (Debian GLIBC 2.36-9+deb12u9) ...
# release version 2.36"; musl's loader carries no such string, only the libc flavour is known.
_GLIBC_BANNER = re.compile(
    rb"GNU C Library \(([^)]*)\) [a-z ]*release version ([0-9]+(?:\.[0-9]+)*)"
)


@dataclass(frozen=True)
class Module:
    """One module compiled or copied into the program."""

    name: str
    kind: str  # Nuitka's: CompiledPythonModule, PythonExtensionModule, ...
    origin: str  # "stdlib", "engine" or "package"
    sha256: str | None = None  # an extension module's file


@dataclass(frozen=True)
class BuilderFacts:
    """What the compile step says about the program of one platform."""

    python_version: str | None
    python_flavor: str | None
    compiler: str | None  # "nuitka 2.7.x", when the report names it
    libc: str  # glibc or musl
    libc_version: str | None
    libc_origin: str | None  # "Debian GLIBC 2.36-9+deb12u9"
    os_release: str | None  # the builder's, as Nuitka saw it: "Debian-12"
    modules: tuple[Module, ...]
    libraries: tuple[tuple[str, str], ...]  # (path in the image, sha256) of each shared library
    program_sha256: str | None


def _origin(source_path: str) -> str:
    """Where a module came from, by the source path Nuitka reports (``${sys.prefix}`` ...)."""
    if "/pkgs/" in source_path or "site-packages" in source_path:
        return "package"
    if source_path.startswith("${cwd}") or source_path.startswith("/src"):
        return "engine"
    return "stdlib"


def report_facts(report: Path) -> tuple[dict[str, str], list[Module]]:
    """The ``<python>`` facts and the modules of Nuitka's report (none for other compilers)."""
    if not report.exists():
        return {}, []
    try:
        root = ElementTree.parse(report).getroot()
    except ElementTree.ParseError as error:
        raise UserError(f"{report}: not a readable Nuitka report ({error})") from None
    modules = [
        Module(node.get("name", ""), node.get("kind", ""), _origin(node.get("source_path", "")))
        for node in root.iter("module")
        if node.get("name")
    ]
    python = root.find("python")
    facts = dict(python.attrib) if python is not None else {}
    if root.get("nuitka_version"):
        facts["compiler"] = f"nuitka {root.get('nuitka_version')}"
    return facts, modules


def extension_file(compiled: Path, module: Module) -> Path | None:
    """An extension module's file beside the program, if the image has it (the compile step
    drops some after Nuitka, like the CJK codecs); the other modules are compiled in."""
    stem = compiled / "app" / module.name.replace(".", "/")
    return next(iter(sorted(stem.parent.glob(f"{stem.name}*.so"))), None)


def _shipped_modules(compiled: Path, modules: list[Module]) -> list[Module]:
    shipped = {}
    for module in modules:
        if module.kind == "PythonExtensionModule":
            path = extension_file(compiled, module)
            if path is None:
                continue
            module = Module(module.name, module.kind, module.origin, file_sha256(path))
        shipped[module.name, module.kind] = module
    return [shipped[key] for key in sorted(shipped)]


def _zipped_origin(name: str) -> str:
    return "engine" if name.split(".")[0] == "runner_template" else "stdlib"


def zip_manifest(compiled: Path) -> dict:
    """What the shared program's ``app/stdlib.zip`` and the extension modules beside it hold
    (rules/stages/program_stdlib.py): ``{"modules", "extensions", "libraries"}``, each name ->
    sha256; empty for a program without the zip."""
    path = compiled / PROGRAM_ZIP_MANIFEST
    if not path.is_file():
        return {"modules": {}, "extensions": {}, "libraries": {}}
    return json.loads(path.read_text())


def _zipped_modules(compiled: Path) -> list[Module]:
    """The shared program's standard library and engine beyond its binary, with digests."""
    manifest = zip_manifest(compiled)
    found = [
        Module(n, "ZippedBytecodeModule", _zipped_origin(n), d)
        for n, d in manifest["modules"].items()
    ]
    found += [
        Module(n, "PythonExtensionModule", "stdlib", d) for n, d in manifest["extensions"].items()
    ]
    return sorted(found, key=lambda module: (module.name, module.kind))


_SHARED_LIBRARY = re.compile(r"\.so(\.[0-9]+)*$")


def _libraries(compiled: Path, modules: list[Module]) -> list[tuple[str, str]]:
    """Every shared library shipped with the program (its ELF closure), hashed; extension
    modules are listed as modules."""
    extensions = {m.name.rsplit(".", 1)[-1] for m in modules if m.sha256}
    found = []
    for path in sorted(compiled.rglob("*")):
        relative = path.relative_to(compiled)
        if relative.parts[0] == ".meta" or path.is_symlink() or not path.is_file():
            continue
        if relative.parts[0] == "app" and path.name.split(".")[0] in extensions:
            continue
        if _SHARED_LIBRARY.search(path.name):
            found.append((f"/{relative.as_posix()}", file_sha256(path)))
    return found


def _libc_version(folder: Path) -> tuple[str | None, str | None]:
    """glibc's version and Debian's package version, from the ``libc.so.6`` the image ships."""
    for path in sorted(folder.glob("**/libc.so.6")):
        if ".meta" in path.parts or not path.is_file():
            continue
        found = _GLIBC_BANNER.search(path.read_bytes())
        if found:
            return found.group(2).decode(), found.group(1).decode()
    return None, None


def builder_facts(compiled: Path) -> BuilderFacts:
    """The facts of ``compiled/<key>/<arch>`` (its ``.meta`` folder and its ELF closure)."""
    meta = compiled / ".meta"
    python, modules = report_facts(meta / REPORT)
    version = python.get("python_version")
    if version is None and (meta / "python").exists():  # compiler none: python3.11
        version = (meta / "python").read_text().strip().removeprefix("python")
    libc = (meta / "libc").read_text().strip() if (meta / "libc").exists() else "glibc"
    libc_version, libc_origin = _libc_version(compiled) if libc == "glibc" else (None, None)
    modules = _shipped_modules(compiled, modules) + _zipped_modules(compiled)
    program = compiled / "app" / "workflow"
    return BuilderFacts(
        python_version=version,
        python_flavor=python.get("python_flavor"),
        compiler=python.get("compiler"),
        libc=libc,
        libc_version=libc_version,
        libc_origin=libc_origin,
        os_release=python.get("os_release"),
        modules=tuple(modules),
        libraries=tuple(_libraries(compiled, modules)),
        program_sha256=file_sha256(program) if program.is_file() else None,
    )


def _wheels(request: ImageRequest, platform: str) -> list[dict]:
    from rules.stages.lock import ENGINE_LOCK_FILE, lock_wheels

    lock_path = request.engine_dir / ENGINE_LOCK_FILE if request.engine_dir else None
    if lock_path is None or not lock_path.exists():
        return []
    return sorted(lock_wheels(json.loads(lock_path.read_text()), platform), key=lambda w: w["name"])


def _serial(request: ImageRequest, platform: str, facts: BuilderFacts) -> uuid.UUID:
    """A UUID of the inputs: the same inputs, the same serial number (and bytes)."""
    identity = json.dumps(
        [
            request.workflow_id,
            request.version,
            request.bundle_digest,
            request.engine_digest,
            request.runtime,
            platform,
            str(request.compiled[platform].parent.name),  # the compile key
            request.layers[platform].parent.name if platform in request.layers else None,
            facts.python_version,
            facts.libc_version,
        ]
    )
    return uuid.uuid5(uuid.NAMESPACE_URL, f"docker-workflow:sbom:{identity}")


def layer_manifest(request: ImageRequest, platform: str) -> dict:
    """What the platform's module layer holds (``.meta/layer.json``; empty without one)."""
    folder = request.layers.get(platform)
    if folder is None:
        return {}
    return json.loads((folder / ".meta" / "layer.json").read_text())


def sbom_json(request: ImageRequest, platform: str) -> bytes:
    """The CycloneDX 1.6 JSON of the image of ``request`` for ``platform``."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    facts = builder_facts(request.compiled[platform])
    arch = arch_of(platform)

    def sha256(hex_digest: str) -> HashType:
        return HashType(alg=HashAlgorithm.SHA_256, content=hex_digest.removeprefix("sha256:"))

    def props(**values: str | None) -> list[Property]:
        return [
            Property(name=f"docker-workflow:{k.replace('_', '-')}", value=v)
            for k, v in values.items()
            if v
        ]

    workflow = Component(
        type=ComponentType.CONTAINER,
        name=f"workflow-{request.workflow_id}",
        version=request.version or None,
        bom_ref="workflow",
        hashes=[sha256(request.bundle_digest)],
        properties=props(
            platform=platform,
            runtime=request.runtime,
            bundle_digest=request.bundle_digest,
            engine_digest=request.engine_digest,
            models=",".join(request.models),
            tools=",".join(request.tools),
        ),
    )
    components = [
        Component(
            type=ComponentType.APPLICATION,
            name="docker-workflow-engine",
            version=request.engine_digest,
            bom_ref="engine",
            description="the workflow engine, rendered for this workflow and compiled",
            hashes=[sha256(facts.program_sha256)] if facts.program_sha256 else [],
            properties=props(compiler=facts.compiler, path="/app/workflow"),
        ),
        Component(
            type=ComponentType.LIBRARY,
            name="cpython",
            version=facts.python_version,
            bom_ref="cpython",
            purl=PackageURL("generic", name="cpython", version=facts.python_version),
            description="the builder's Python, compiled into the program",
            properties=props(flavor=facts.python_flavor, builder_os=facts.os_release),
        ),
        Component(
            type=ComponentType.LIBRARY,
            name=facts.libc,
            version=facts.libc_version,
            bom_ref="libc",
            purl=PackageURL("generic", name=facts.libc, version=facts.libc_version),
            description="the C library of the builder, shipped with the program",
            properties=props(origin=facts.libc_origin),
        ),
    ]
    for module in facts.modules:
        if module.origin == "package":
            continue  # its wheel is listed with version and hash below
        components.append(
            Component(
                type=ComponentType.LIBRARY,
                name=module.name,
                version=facts.python_version if module.origin == "stdlib" else None,
                group="cpython-stdlib" if module.origin == "stdlib" else "engine",
                bom_ref=f"module:{module.origin}:{module.name}:{module.kind}",
                hashes=[sha256(module.sha256)] if module.sha256 else [],
                properties=props(module_kind=module.kind),
            )
        )
    layer = layer_manifest(request, platform)
    layered = [(name, "LayeredBytecodeModule", d) for name, d in layer.get("modules", {}).items()]
    layered += [(n, "LayeredExtensionModule", d) for n, d in layer.get("extensions", {}).items()]
    for name, kind, hex_digest in sorted(layered):
        components.append(
            Component(
                type=ComponentType.LIBRARY,
                name=name,
                version=facts.python_version,
                group="cpython-stdlib",
                bom_ref=f"module:layer:{name}:{kind}",
                hashes=[sha256(hex_digest)],
                properties=props(module_kind=kind),
            )
        )
    libraries = [*facts.libraries, *sorted(layer.get("libraries", {}).items())]
    for path, hex_digest in libraries:
        components.append(
            Component(
                type=ComponentType.FILE,
                name=path.rsplit("/", 1)[-1],
                group="shared-library",
                bom_ref=f"file:{path}",
                hashes=[sha256(hex_digest)],
                properties=props(path=path),
            )
        )
    for wheel in _wheels(request, platform):
        components.append(
            Component(
                type=ComponentType.LIBRARY,
                name=wheel["name"],
                version=wheel["version"],
                bom_ref=f"pypi:{wheel['name']}",
                purl=PackageURL("pypi", name=wheel["name"].lower(), version=wheel["version"]),
                hashes=[sha256(wheel["sha256"])],
                properties=props(wheel=wheel["file"]),
            )
        )
    bom = Bom(
        serial_number=_serial(request, platform, facts),
        metadata=BomMetaData(
            component=workflow,
            timestamp=EPOCH,
            properties=props(architecture=arch),
        ),
        components=components,
    )
    bom.register_dependency(workflow, components)
    text = JsonV1Dot6(bom).output_as_string()
    return text.encode() + b"\n"


def validate_sbom(data: bytes) -> None:
    """Check ``data`` against the CycloneDX 1.6 JSON schema; a :class:`UserError` if it fails."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode())
    if error is not None:
        raise UserError(f"the SBOM does not follow the CycloneDX 1.6 schema: {error}")


def write_sboms(request: ImageRequest, context: Path) -> dict[str, str]:
    """Write each platform's SBOM into ``context/sbom-<arch>/`` (the image's last layer);
    return platform -> its digest (the label of that platform's image)."""
    digests = {}
    for platform in sorted(request.compiled):
        data = sbom_json(request, platform)
        path = context / f"sbom-{arch_of(platform)}" / SBOM_PATH
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        digests[platform] = digest(data)
    return digests


def platform_stages(runtime: str, digests: dict[str, str]) -> str:
    """The Dockerfile's first stages, one per platform: the runtime with the label naming that
    platform's SBOM digest (a build's ``--label`` values are the same for every platform)."""
    return "\n".join(
        f'FROM {runtime} AS base-{arch_of(platform)}\nLABEL {SBOM_LABEL}="{digest_}"'
        for platform, digest_ in sorted(digests.items())
    )
