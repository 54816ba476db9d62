"""The build-side rules that need no Docker: platforms, stdlib shaking, keys, labels, runtime."""

import sysconfig
from pathlib import Path

import pytest
from helpers import WORKFLOWS

from rules.errors import UserError
from rules.graph.build import prepare
from rules.platforms import parse_platforms
from rules.stages.analyze import dotted_imports
from rules.stages.bases import builder_tag
from rules.stages.compile import CompileRequest, compile_key
from rules.stages.image import _check_runtime
from rules.stages.image_names import default_tag
from rules.stages.image_request import ImageRequest
from rules.stages.program_builtins import DROPPED, DROPPED_FILE, FALLBACK, UNUSED_PATHS
from rules.stages.render import engine_files, engine_sources, program_files
from rules.stages.stdlib_shake import (
    ENGINE_AS_BYTECODE,
    ENGINE_UNUSED,
    EXCLUDABLE,
    JSON_SPEEDUPS,
    LAYERED_IMPORTS,
    TLS,
    excluded_modules,
)


def test_platforms_default_both_and_are_checked():
    assert parse_platforms(None) == ["linux/amd64", "linux/arm64"]
    assert parse_platforms("linux/arm64, linux/amd64,linux/arm64") == ["linux/amd64", "linux/arm64"]
    with pytest.raises(UserError, match="unsupported platform 'linux/s390x'"):
        parse_platforms("linux/s390x")


def test_unused_stdlib_groups_and_tls_are_left_out():
    out = excluded_modules([], https=False)
    assert {"ssl", "hashlib", "_hashlib", "lzma", "decimal", "xml", "pyexpat"} <= set(out)
    assert "json" not in out and "re" not in out


def test_a_group_stays_when_a_tool_imports_from_it():
    out = excluded_modules(["hashlib", "tarfile"], https=True)
    assert "hashlib" not in out and "_hashlib" not in out
    assert "tarfile" not in out and "lzma" not in out  # the whole compression group stays
    assert "ssl" not in out and "xml" in out


def test_engine_is_shared_when_tools_import_only_what_the_engine_has():
    # json and sys are the engine's own imports: no difference in the engine.
    assert engine_files(["json", "sys"], False) == engine_files([], False)
    assert engine_files(["platform"], False) != engine_files([], False)
    assert engine_files([], True) != engine_files([], False)  # TLS changes the flags


def test_two_workflows_with_the_same_tool_imports_share_the_engine():
    first = prepare(WORKFLOWS / "simple_summarizer.json")
    second = prepare(WORKFLOWS / "parallel_profile.json")
    assert first.engine_digest == second.engine_digest
    assert first.bundle_digest != second.bundle_digest


def test_the_shared_program_is_the_same_for_every_workflow():
    # Different tools, imports, packages-free https endpoints: one program, flags fixed.
    digests = {
        prepare(WORKFLOWS / name).program_digest()
        for name in ("simple_summarizer.json", "calculator.json", "url_analyzer.json")
    }
    assert len(digests) == 1
    flags = program_files()["compile-flags.txt"].decode().split()
    assert "--nofollow-import-to=ssl" in flags and "--nofollow-import-to=decimal" in flags
    assert LAYERED_IMPORTS in flags
    assert ENGINE_AS_BYTECODE in flags and JSON_SPEEDUPS in flags


def test_every_nuitka_compile_keeps_the_json_speedups():
    # onefile compiles the workflow's engine with these flags: json's C part is asked for too.
    flags = engine_files(["decimal"], False)["compile-flags.txt"].decode().split()
    assert JSON_SPEEDUPS in flags and ENGINE_AS_BYTECODE not in flags


def _engine_stdlib_closure() -> set[str]:
    """Every standard-library module of this Python (the builder's 3.11) that the engine's code
    reaches, following each module's imports anywhere in its code (inside functions too), but
    not into the groups the program leaves out."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    left_out = [*(name for group in EXCLUDABLE.values() for name in group), *TLS]
    todo: list[str] = []
    for name, data in engine_sources().items():
        module = "runner_template." + name.removesuffix(".py").replace("/", ".")
        package = module.endswith(".__init__")
        required, optional = dotted_imports(
            data.decode(), module.removesuffix(".__init__"), package
        )
        todo += sorted(required | optional)
    seen: set[str] = set()
    while todo:
        parts = todo.pop().split(".")
        for name in (".".join(parts[: i + 1]) for i in range(len(parts))):
            if any(f"{name}.".startswith(f"{out}.") for out in left_out):
                break
            path = stdlib.joinpath(*name.split("."))
            package = (path / "__init__.py").is_file()
            source = path / "__init__.py" if package else path.with_suffix(".py")
            if name in seen or not source.is_file():
                continue
            seen.add(name)
            required, optional = dotted_imports(source.read_text("utf-8", "replace"), name, package)
            todo += sorted(required | optional)
    return seen


def test_the_program_leaves_out_only_what_the_engine_never_imports():
    closure = _engine_stdlib_closure()
    assert {"json", "traceback", "linecache", "tokenize", "http.server", "email.utils"} <= closure
    reached = {
        name for name in closure for out in ENGINE_UNUSED if f"{name}.".startswith(f"{out}.")
    }
    assert reached == set()
    flags = program_files()["compile-flags.txt"].decode().split()
    assert {f"--nofollow-import-to={name}" for name in ENGINE_UNUSED} <= set(flags)
    # A workflow's own engine (--compiler onefile) keeps them: it has no layer.
    assert (
        "--nofollow-import-to=tomllib" not in engine_files([], False)["compile-flags.txt"].decode()
    )


def test_the_program_drops_only_built_ins_the_engine_can_do_without():
    # No module the engine reaches imports a dropped built-in, except the reviewed ones, each
    # in a try with a pure-Python fallback (pickle's Pickler, datetime's classes: datetime's
    # second import of _datetime is in the try's else, which counts as required here).
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    importers: dict[str, set[str]] = {}
    sources = {
        "runner_template." + name.removesuffix(".py").replace("/", "."): data.decode()
        for name, data in engine_sources().items()
    }
    for name in _engine_stdlib_closure():
        path = stdlib.joinpath(*name.split("."))
        package = (path / "__init__.py").is_file()
        source = path / "__init__.py" if package else path.with_suffix(".py")
        sources[name] = source.read_text("utf-8", "replace")
    for module, text in sources.items():
        package = module.endswith(".__init__") or (stdlib / module.replace(".", "/")).is_dir()
        required, optional = dotted_imports(text, module.removesuffix(".__init__"), package)
        for imported in (required | optional) & DROPPED:
            importers.setdefault(imported, set()).add(module)
    # unicodedata: modules that import it only on paths the engine never takes; which of them
    # do depends on this Python's patch level (traceback's from 3.11.4).
    assert importers.pop("unicodedata") <= UNUSED_PATHS["unicodedata"]
    assert importers == {name: {owner} for name, owner in FALLBACK.items()}
    assert {"zlib", "_socket", "array", "_sha512"}.isdisjoint(DROPPED)
    dropped = program_files()[DROPPED_FILE].decode().split()
    assert dropped == sorted(DROPPED)
    assert DROPPED_FILE not in engine_files([], False)  # a workflow's own engine keeps them


def test_compile_key_follows_what_goes_into_the_compile(monkeypatch, tmp_path):
    monkeypatch.setattr("rules.stages.compile.toolchain_dir", lambda compiler, arch: tmp_path)
    base = CompileRequest(Path("e"), "digest-1", "linux/amd64", "nuitka", "builder:1")
    same = CompileRequest(Path("elsewhere"), "digest-1", "linux/amd64", "nuitka", "builder:1")
    assert compile_key(base) == compile_key(same)
    for changed in (
        CompileRequest(Path("e"), "digest-2", "linux/amd64", "nuitka", "builder:1"),
        CompileRequest(Path("e"), "digest-1", "linux/arm64", "nuitka", "builder:1"),
        CompileRequest(Path("e"), "digest-1", "linux/amd64", "onefile", "builder:1"),
        CompileRequest(Path("e"), "digest-1", "linux/amd64", "nuitka", "builder:2"),
    ):
        assert compile_key(changed) != compile_key(base)


def test_builder_tag_depends_on_the_platforms():
    assert builder_tag(["linux/amd64"]) != builder_tag(["linux/amd64", "linux/arm64"])
    assert builder_tag(["linux/amd64"]).startswith("docker-workflow/builder:bookworm-")


def image_request(tmp_path, runtime):
    compiled = tmp_path / "amd64"
    if not (compiled / ".meta").exists():
        (compiled / ".meta").mkdir(parents=True)
        (compiled / ".meta" / "libc").write_text("glibc\n")
    return ImageRequest(
        "wf",
        "1",
        tmp_path / "b.json",
        "sha256:b",
        "e",
        ["llama3"],
        ["t"],
        {"linux/amd64": compiled},
        default_tag("wf"),
        runtime=runtime,
    )


def test_alpine_needs_a_musl_program(tmp_path):
    assert _check_runtime(image_request(tmp_path, "scratch")) == "scratch"
    with pytest.raises(UserError, match="needs a musl"):
        _check_runtime(image_request(tmp_path, "alpine"))
    (tmp_path / "amd64" / ".meta" / "libc").write_text("musl\n")
    assert _check_runtime(image_request(tmp_path, "alpine")) == "alpine:3.20"


def test_labels_say_what_is_inside(tmp_path):
    labels = image_request(tmp_path, "scratch").labels()
    assert labels["workflow.id"] == "wf" and labels["workflow.models"] == "llama3"
    assert labels["workflow.platforms"] == "linux/amd64"
    assert labels["docker-workflow.managed"] == "true"
    assert default_tag("wf") == "workflow-wf:latest"


def test_an_image_of_another_recipe_is_not_current(tmp_path, monkeypatch):
    """An upgrade that changes the image's Dockerfile rebuilds images that match otherwise."""
    import rules.stages.image as image
    import rules.stages.image_request as image_request_module

    before = image_request(tmp_path, "scratch").labels()
    image_request_module.image_recipe_digest.cache_clear()
    monkeypatch.setattr(
        image_request_module, "docker_file", lambda name: b"FROM scratch\n# another recipe\n"
    )
    after = image_request(tmp_path, "scratch").labels()
    image_request_module.image_recipe_digest.cache_clear()
    assert before["docker-workflow.image-recipe"] != after["docker-workflow.image-recipe"]
    monkeypatch.setattr(image, "image_labels", lambda tag: before)
    assert not image.image_is_current(image_request(tmp_path, "scratch"))


def test_compile_key_hashes_the_toolchain_bytes_not_names(monkeypatch, tmp_path):
    monkeypatch.setattr("rules.stages.compile.toolchain_dir", lambda compiler, arch: tmp_path)
    (tmp_path / "nuitka-4.3.3.tar.gz").write_bytes(b"one")
    request = CompileRequest(Path("e"), "d", "linux/amd64", "nuitka", "b")
    before = compile_key(request)
    (tmp_path / "nuitka-4.3.3.tar.gz").write_bytes(b"two")  # same name, other bytes
    assert compile_key(request) != before


def test_code_fingerprints_ignore_docstrings_and_comments():
    from rules.graph.fingerprint import _analyze_source

    plain = b"def f(x):\n    return x + 1\n"
    documented = b'"""Module."""\n\n\ndef f(x):\n    """Add one."""\n    # why\n    return x + 1\n'
    changed = b"def f(x):\n    return x + 2\n"
    assert _analyze_source(plain)[0] == _analyze_source(documented)[0]
    assert _analyze_source(plain)[0] != _analyze_source(changed)[0]


def test_code_fingerprints_are_scoped_to_the_step():
    from rules.graph.fingerprint import _closure

    image = _closure("rules.stages.image")
    analyze = _closure("rules.stages.analyze")
    assert "rules/stages/image.py" in image and "rules/stages/analyze.py" not in image
    assert "rules/cli/main.py" not in analyze and "rules/stages/compile.py" not in analyze
    assert "rules/files/schema/workflow.schema.json" in analyze  # data the step reads counts too
    assert "rules/docker/build/Dockerfile.image" in image


def test_every_engine_file_a_runner_gets_is_part_of_the_render_step_fingerprint():
    # render copies the engine's files as data: an edit to any of them must render again (an
    # edit to engine.py once left every image with the engine of before).
    from rules.graph.fingerprint import _closure
    from rules.stages.render import engine_sources
    from runner_template.web import PAGE_FILES

    render = _closure("rules.stages.render")
    copied = {f"runner_template/{name}" for name in engine_sources()}
    copied |= {f"runner_template/web/{name}" for name in PAGE_FILES}
    assert copied <= set(render), sorted(copied - set(render))


def test_foreign_platforms_compile_their_c_with_zig_unless_told_not_to(monkeypatch, tmp_path):
    monkeypatch.setattr("rules.stages.compile.host_arch", lambda: "amd64")
    monkeypatch.setattr("rules.stages.compile.toolchain_dir", lambda compiler, arch: tmp_path)

    def request(platform, compiler="nuitka", cross="auto"):
        return CompileRequest(Path("e"), "d", platform, compiler, "b", cross)

    assert request("linux/arm64").cross_compiler == "zig"
    assert request("linux/amd64").cross_compiler is None  # native: the builder's gcc
    assert request("linux/arm64", cross="off").cross_compiler is None
    assert request("linux/arm64", compiler="none").cross_compiler is None
    assert compile_key(request("linux/arm64")) != compile_key(request("linux/arm64", cross="off"))
