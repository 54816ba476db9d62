"""The module layer's assembly on a small builder tree: closure, what the program has, the ELF
closure of extension modules, the one-line errors, and the same bytes on every build.

The tree is what ``rules/docker/build/builder_python.py`` leaves in ``cache/builder-python``
(the real layout, written by hand here, so these tests need no Docker); the image tests
(tests/docker/test_module_layer.py) run the real builder's.
"""

from __future__ import annotations

import hashlib
import json
import os
import py_compile
import zipfile
from pathlib import Path

import pytest

from rules.errors import UserError
from rules.paths import cache_dir
from rules.stages.builder_python import builder_python_path, load_stdlib
from rules.stages.elf_needed import needed_libraries
from rules.stages.module_closure import module_closure
from rules.stages.modules_layer import (
    LayerRequest,
    build_layer,
    layer_key,
    layer_leave_out,
    program_modules,
)
from rules.stages.program_stdlib import COMPUTED_ROOTS, engine_roots, left_out
from rules.stages.sbom import PROGRAM_ZIP_MANIFEST
from rules.stages.stdlib_shake import ENGINE_UNUSED, EXCLUDABLE, TLS

BUILDER = "fake/builder:1"  # never in the engine: the extracted folder below stands for it
STDLIB = "usr/lib/python3.11"
SOURCES = {
    "money.py": "import numbers\nfrom _money import *\n",
    "_pymoney.py": "x = 1\n",
    "numbers.py": "",  # the program has it
    "shop/__init__.py": "from . import cart\nfrom .till import ring\n",
    "shop/cart.py": "import os\ntry:\n    import _winapi\nexcept ImportError:\n    pass\n",
    "shop/till.py": "import money\nif False:\n    import msvcrt\n",
    "shop/unused.py": "import tkinter\n",
    "needs_nothing.py": "import _lost\n",
    "broken.py": "import _broken\n",
    "hashlib.py": (
        "try:\n    import _hashlib\nexcept ImportError:\n    _hashlib = None\n"
        "def builtin(name):\n    import _md5, _sha256, _blake2\n"
    ),
    "ssl.py": "",  # an https endpoint's root
}
EXTENSIONS = {
    "_money": ["/lib/x86_64-linux-gnu/libmoney.so.1", "/lib/x86_64-linux-gnu/libc.so.6"],
    "_broken": [],
    "_hashlib": ["/lib/x86_64-linux-gnu/libcrypto.so.3"],
    "_md5": [],
    "_sha256": [],
    "_blake2": [],
    "unicodedata": [],  # a built-in the program drops, linked by the builder (facts.json)
}


def fake_builder() -> Path:
    """``cache/builder-python/<image>/amd64``: sources with their bytecode, extension modules
    with their libraries, facts.json."""
    folder = builder_python_path(BUILDER, "linux/amd64")
    stdlib = folder / "root" / STDLIB
    for name, text in SOURCES.items():
        path = stdlib / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        py_compile.compile(
            str(path),
            str(path.parent / "__pycache__" / f"{path.stem}.cpython-311.pyc"),
            dfile=f"/{STDLIB}/{name}",  # as in the builder: the same bytes in every tree
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    extensions = {}
    for name, libraries in EXTENSIONS.items():
        so = f"{name}.cpython-311-x86_64-linux-gnu.so"
        (stdlib / "lib-dynload").mkdir(parents=True, exist_ok=True)
        (stdlib / "lib-dynload" / so).write_bytes(b"\x7fELF " + name.encode())
        for library in libraries:
            path = folder / "root" / library.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x7fELF " + library.encode())
        missing = ["libbroken.so.9"] if name == "_broken" else []
        extensions[name] = {"file": so, "libraries": libraries, "missing": missing}
    facts = {
        "python": "3.11",
        "stdlib": "/" + STDLIB,
        "builtin": ["sys", "zlib"],
        "preloaded": ["_frozen_importlib"],
        "extensions": extensions,
        "ca_bundle": None,
    }
    (folder / "facts.json").write_text(json.dumps(facts))
    return folder


def fake_program(root: Path) -> Path:
    """A compiled program's folder: Nuitka's report (os, numbers) and libc beside it."""
    program = root / "compiled" / "k" / "amd64"
    (program / ".meta").mkdir(parents=True)
    modules = "".join(
        f'<module name="{n}" kind="CompiledPythonModule" source_path="/x/{n}.py" />'
        for n in ("os", "numbers", "runner_template.main")
    )
    (program / ".meta" / "compilation-report.xml").write_text(
        f'<nuitka-compilation-report nuitka_version="4">{modules}</nuitka-compilation-report>'
    )
    (program / "app").mkdir()
    (program / "app" / "workflow").write_bytes(b"\x7fELF program")
    (program / "lib" / "x86_64-linux-gnu").mkdir(parents=True)
    (program / "lib" / "x86_64-linux-gnu" / "libc.so.6").write_bytes(b"\x7fELF libc")
    return program


@pytest.fixture
def builder() -> Path:
    return fake_builder()


def closure(builder: Path, roots: dict[str, list[str]], optional: set[str] = frozenset()):
    program = {"os", "numbers", "runner_template.main"}
    return module_closure(roots, set(optional), load_stdlib(builder), program, "linux/amd64")


def test_the_closure_follows_imports_and_stops_at_the_program(builder):
    found = closure(builder, {"shop": ["tool cashier"]})
    # shop's __init__ imports cart and till (relative), till imports money, money its
    # extension; os and numbers are the program's; unused is never imported.
    assert found.modules == {"shop", "shop.cart", "shop.till", "money"}
    assert found.extensions == {"_money"}


def test_a_package_root_brings_only_what_its_code_imports(builder):
    found = closure(builder, {"shop.cart": ["tool a"]})
    assert found.modules == {"shop", "shop.cart", "shop.till", "money"}  # shop's __init__ runs
    assert closure(builder, {"os": ["tool b"], "zlib": ["tool c"]}).modules == set()


def test_a_module_the_builder_lacks_is_one_line_naming_tool_import_and_platform(builder):
    with pytest.raises(UserError) as error:
        closure(builder, {"tkinter": ["tool window"]})
    message = str(error.value)
    assert "tool window imports tkinter" in message and "linux/amd64" in message
    assert "\n" not in message
    # Only inside try/except ImportError: no error, nothing layered.
    assert closure(builder, {"tkinter": ["tool window"]}, {"tkinter"}).modules == set()
    # A missing module deep in the standard library is skipped (needs_nothing imports _lost,
    # which is no standard-library name at all).
    assert closure(builder, {"needs_nothing": ["step s"]}).modules == {"needs_nothing"}


def test_hashlib_s_own_algorithms_stay_out_where_openssl_has_them(builder):
    # With OpenSSL's _hashlib layered, md5 and sha256 come from it; blake2 is always _blake2's.
    found = closure(builder, {"hashlib": ["tool digest"]})
    assert found.extensions == {"_hashlib", "_blake2"}
    # A tool that imports one itself gets it.
    found = closure(builder, {"hashlib": ["tool digest"], "_md5": ["tool old"]})
    assert found.extensions == {"_hashlib", "_blake2", "_md5"}
    # Without OpenSSL (an optional import the builder could not meet), hashlib needs its own.
    program = {"os", "numbers", "runner_template.main"}
    stdlib = load_stdlib(builder)
    stdlib.extensions["_hashlib"]["missing"] = ["libcrypto.so.3"]
    found = module_closure({"hashlib": ["tool digest"]}, set(), stdlib, program, "linux/amd64")
    assert found.extensions == {"_md5", "_sha256", "_blake2"}


def test_an_extension_whose_library_is_missing_is_an_error(builder):
    with pytest.raises(UserError, match=r"tool t imports broken, whose extension module _broken"):
        closure(builder, {"broken": ["tool t"]})


def request(program: Path, **changes) -> LayerRequest:
    values = {
        "platform": "linux/amd64",
        "builder_image": BUILDER,
        "program": program,
        "imports": {"shop": ["tool cashier"]},
    }
    return LayerRequest(**{**values, **changes})


def tree(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry: its sha256 (files), mode and mtime."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = os.lstat(path)
        data = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[path.relative_to(folder).as_posix()] = (data, info.st_mode, int(info.st_mtime))
    return found


def test_the_layer_holds_bytecode_extensions_and_only_the_libraries_the_program_lacks(builder):
    layer = build_layer(request(fake_program(cache_dir())))
    files = {p.relative_to(layer).as_posix() for p in layer.rglob("*") if p.is_file()}
    assert files == {
        ".meta/layer.json",
        "app/layer.zip",
        "app/_money.cpython-311-x86_64-linux-gnu.so",
        "lib/x86_64-linux-gnu/libmoney.so.1",  # libc ships with the program
    }
    with zipfile.ZipFile(layer / "app" / "layer.zip") as archive:
        assert archive.namelist() == [
            "money.pyc",
            "shop/__init__.pyc",
            "shop/cart.pyc",
            "shop/till.pyc",
        ]
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        source = builder / "root" / STDLIB / "__pycache__" / "money.cpython-311.pyc"
        assert archive.read("money.pyc") == source.read_bytes()  # sourceless
    manifest = json.loads((layer / ".meta" / "layer.json").read_text())
    assert sorted(manifest["modules"]) == ["money", "shop", "shop.cart", "shop.till"]
    assert list(manifest["libraries"]) == ["/lib/x86_64-linux-gnu/libmoney.so.1"]
    assert all(mtime == 0 for _, _, mtime in tree(layer).values())


def test_the_same_inputs_give_the_same_layer_bytes(builder, tmp_path, monkeypatch):
    first = tree(build_layer(request(fake_program(cache_dir()))))
    monkeypatch.setenv("DOCKER_WORKFLOW_CACHE", str(tmp_path / "other"))
    fake_builder()
    program = fake_program(cache_dir())
    again = build_layer(request(program))
    assert tree(again) == first
    other = build_layer(request(program, imports={"money": ["tool m"]}))
    assert other != again and tree(other) != first


def test_unicodedata_comes_to_python_code_and_https_and_not_to_the_engine_alone(builder):
    program = fake_program(cache_dir())
    ucd = "app/unicodedata.cpython-311-x86_64-linux-gnu.so"

    def files(**changes) -> set[str]:
        layer = build_layer(request(program, **changes))
        return {p.relative_to(layer).as_posix() for p in layer.rglob("*") if p.is_file()}

    assert ucd not in files(imports={})  # LLM and API tools only: the engine never needs it
    assert ucd in files(imports={}, unicodedata=("step plain",))  # code without an import
    assert ucd in files(imports={}, https=True)  # ssl's server_hostname goes through idna
    assert request(program, https=True).roots()["unicodedata"] == ["an https endpoint"]
    users = request(program, unicodedata=("input code", "tool t")).roots()["unicodedata"]
    assert users == ["input code", "tool t"]
    # The same layer whoever needs it: two workflows whose steps are named apart share it.
    key = layer_key(request(program, unicodedata=("step plain",)))
    assert key == layer_key(request(program, unicodedata=("tool other", "step x")))
    assert key != layer_key(request(program, unicodedata=()))


def test_needed_libraries_reads_the_dynamic_section_of_a_real_extension_module():
    import _ssl

    assert "libc.so.6" in needed_libraries(Path(_ssl.__file__))
    assert any(name.startswith("libssl.so") for name in needed_libraries(Path(_ssl.__file__)))
    assert needed_libraries(Path(__file__)) == []  # not ELF


def test_where_a_wheel_was_on_this_machine_is_not_in_the_layer(tmp_path):
    """pip's ``direct_url.json`` names the wheel's path in this machine's cache: the same
    workflow built from another cache folder must give the same layer, so it goes, and its
    RECORD line with it (the other lines stay as pip wrote them)."""
    from rules.stages.modules_layer import _drop_machine_records

    info = tmp_path / "PyYAML-6.0.2.dist-info"
    info.mkdir()
    (info / "direct_url.json").write_text('{"url": "file:///tmp/cache-1/wheels/x.whl"}')
    (tmp_path / "yaml").mkdir()
    (tmp_path / "yaml" / "__init__.py").write_text("")
    (info / "RECORD").write_text(
        "../../bin/yamlscript,sha256=shebang-of-this-machine,216\n"
        "yaml/__init__.py,sha256=abc,100\n"
        "PyYAML-6.0.2.dist-info/direct_url.json,sha256=def,40\n"
        "PyYAML-6.0.2.dist-info/RECORD,,\n"
    )
    _drop_machine_records(tmp_path)
    assert not (info / "direct_url.json").exists()
    assert (info / "RECORD").read_text() == (
        "yaml/__init__.py,sha256=abc,100\nPyYAML-6.0.2.dist-info/RECORD,,\n"
    )


def test_the_closure_follows_nothing_it_is_told_to_leave_out(builder):
    stdlib = load_stdlib(builder)
    program = {"os", "numbers", "runner_template.main"}
    roots = {"shop": ["the engine"]}
    found = module_closure(
        roots, set(), stdlib, program, "linux/amd64", leave_out=frozenset({"money"})
    )
    assert found.modules == {"shop", "shop.cart", "shop.till"} and found.extensions == set()
    found = module_closure(
        roots, set(), stdlib, program, "linux/amd64", leave_out=frozenset({"shop"})
    )
    assert found.modules == set()


def test_what_the_programs_zip_holds_counts_as_the_programs(tmp_path):
    program = fake_program(tmp_path)
    assert "money" not in program_modules(program)
    manifest = {"modules": {"money": "0" * 64}, "extensions": {"_money": "1" * 64}}
    (program / PROGRAM_ZIP_MANIFEST).write_text(json.dumps({**manifest, "libraries": {}}))
    assert {"money", "_money", "os", "numbers"} <= program_modules(program)


def test_the_programs_zip_roots_are_the_engines_imports_and_the_lookups_by_name(builder):
    stdlib = load_stdlib(builder)
    roots, optional = engine_roots(stdlib)
    # What the engine imports itself, required where it is not inside a try.
    assert {"json", "http.client", "threading", "urllib.parse"} <= set(roots)
    assert "json" not in optional and "http.client" not in optional
    assert roots["json"][0].startswith("the engine (")
    # What is reached by a computed name comes too, and may be missing.
    assert set(COMPUTED_ROOTS) <= set(roots) and set(COMPUTED_ROOTS) <= optional


def test_what_the_program_leaves_out_stays_out_of_the_zip():
    out = left_out()
    assert set(TLS) | set(ENGINE_UNUSED) <= out
    assert {name for group in EXCLUDABLE.values() for name in group} <= out
    assert "_codecs_jp" in out and "_multibytecodec" in out  # a layer brings them
    assert "json" not in out and "email" not in out


def test_the_layer_does_not_follow_into_a_group_nothing_imports(tmp_path):
    def request(imports: dict, https: bool = False, wheels: tuple = ()) -> LayerRequest:
        return LayerRequest("linux/amd64", BUILDER, tmp_path, imports, https=https, wheels=wheels)

    # pickle's _test() imports doctest (dev tools), which would bring unittest, asyncio, ssl.
    out = layer_leave_out(request({"hashlib": ["tool a"]}))
    assert {"doctest", "unittest", "asyncio", "ssl"} <= out and "hashlib" not in out
    assert "ssl" not in layer_leave_out(request({"hashlib": ["tool a"]}, https=True))
    wheel = {"stdlib_imports": ["ssl", "xml.dom"]}  # what a locked package imports counts too
    out = layer_leave_out(request({}, wheels=(wheel,)))
    assert "ssl" not in out and "xml" not in out and "sqlite3" in out
