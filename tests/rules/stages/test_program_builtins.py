"""The shared program's own table of built-in modules, and the layer's view of what it dropped.

The table is written from Debian's ``config.c`` by ``rules/docker/build/inittab.py``; the
dropped modules' extensions come from ``rules/docker/build/builtin_extensions.py``'s reading of
``Setup.local``; the frozen tables (no deep-frozen modules) by ``rules/docker/build/frozen.py``.
The scripts run inside the builder; here their functions run on text in Debian's format and on
this Python's own importlib sources. The closure runs on a builder tree written by hand (the
layout of ``cache/builder-python``); tests/docker/test_dropped_builtins.py runs the real ones.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import re
import sys
import sysconfig
from pathlib import Path

import pytest

from rules.errors import UserError
from rules.stages.builder_python import builder_python_path, load_stdlib
from rules.stages.module_closure import module_closure
from rules.stages.program_builtins import BUILTINS_META, program_builtins

BUILD = Path(__file__).parents[3] / "rules" / "docker" / "build"
CONFIG_C = """/* Generated automatically from ../Modules/config.c.in by makesetup. */
#include "Python.h"

extern PyObject* PyInit__bisect(void);
extern PyObject* PyInit_unicodedata(void);
extern PyObject* PyInit_pyexpat(void);
extern PyObject* PyInit_posix(void);

struct _inittab _PyImport_Inittab[] = {

    {"_bisect", PyInit__bisect},
    {"unicodedata", PyInit_unicodedata},
    {"pyexpat", PyInit_pyexpat},
    {"posix", PyInit_posix},

    /* This module lives in marshal.c */
    {"marshal", PyMarshal_Init},
    {"__main__", NULL},
    {"builtins", NULL},
    {"sys", NULL},

    /* Sentinel */
    {0, 0}
};
"""
SETUP_LOCAL = """# Edit this file for local setup changes
*static*
_bisect _bisectmodule.c
_blake2 _blake2/blake2module.c _blake2/blake2b_impl.c _blake2/blake2s_impl.c
pyexpat pyexpat.c -lexpat
zlib  zlibmodule.c -lz  # compressed
FOO=bar
"""


def script(name: str):
    """A builder script, loaded as a module (it runs under the builder's python3)."""
    spec = importlib.util.spec_from_file_location(name, BUILD / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_keeps_every_entry_but_the_dropped_ones():
    text, kept = script("inittab").trimmed(CONFIG_C, {"unicodedata", "pyexpat"})
    assert "unicodedata" not in text and "pyexpat" not in text
    assert "PyInit__bisect(void);" in text and '{"posix", PyInit_posix},' in text
    assert "_PyImport_Inittab[]" in text and "{0, 0}" in text  # the table itself stays whole
    assert kept == ["_bisect", "posix", "marshal", "builtins", "sys"]  # __main__ is no module
    assert script("inittab").trimmed(CONFIG_C, set())[1][:4] == [
        "_bisect",
        "unicodedata",
        "pyexpat",
        "posix",
    ]


def test_a_dropped_name_the_table_lacks_is_an_error():
    with pytest.raises(ValueError, match=r"config\.c has no built-in module _nosuch"):
        script("inittab").trimmed(CONFIG_C, {"_nosuch", "pyexpat"})
    with pytest.raises(ValueError, match=r"not a config\.c"):
        script("inittab").trimmed("int x;\n", set())


def test_setup_local_names_each_module_its_objects_and_libraries():
    assert script("builtin_extensions").setup_modules(SETUP_LOCAL) == {
        "_bisect": (["_bisectmodule.o"], []),
        "_blake2": (["blake2module.o", "blake2b_impl.o", "blake2s_impl.o"], []),
        "pyexpat": (["pyexpat.o"], ["-lexpat"]),
        "zlib": (["zlibmodule.o"], ["-lz"]),
    }


BUILDER = "fake/builder:builtins"
STDLIB = "usr/lib/python3.11"


def fake_builder(failed: dict[str, str]) -> Path:
    """A builder whose Python has ``pyexpat`` and ``zlib`` built in and, of the two, could
    link only those not in ``failed`` as extension modules (``pyexpat`` loads libexpat)."""
    folder = builder_python_path(BUILDER, "linux/amd64")
    dynload = folder / "root" / STDLIB / "lib-dynload"
    dynload.mkdir(parents=True)
    (folder / "root" / STDLIB / "xmltool.py").write_text("import pyexpat\n")
    (folder / "root" / STDLIB / "__pycache__").mkdir()
    (folder / "root" / STDLIB / "__pycache__" / "xmltool.cpython-311.pyc").write_bytes(b"pyc")
    extensions = {}
    for name in sorted({"pyexpat", "zlib"} - set(failed)):
        so = f"{name}.cpython-311-x86_64-linux-gnu.so"
        (dynload / so).write_bytes(b"\x7fELF")
        libraries = ["/lib/x86_64-linux-gnu/libexpat.so.1"] if name == "pyexpat" else []
        extensions[name] = {"file": so, "libraries": libraries, "missing": []}
    facts = {
        "python": "3.11",
        "stdlib": "/" + STDLIB,
        "builtin": ["posix", "pyexpat", "sys", "zlib"],
        "builtin_extensions": {"built": sorted(extensions), "failed": failed},
        "preloaded": [],
        "extensions": extensions,
        "ca_bundle": None,
    }
    (folder / "facts.json").write_text(json.dumps(facts))
    return folder


def program_with_table(root: Path, names: list[str] | None) -> Path:
    program = root / "compiled" / "k" / "amd64"
    (program / ".meta").mkdir(parents=True)
    if names is not None:
        (program / BUILTINS_META).write_text("".join(f"{n}\n" for n in names))
    return program


def test_a_built_in_the_program_dropped_comes_as_an_extension(tmp_path):
    stdlib = load_stdlib(fake_builder({}))
    roots = {"xmltool": ["tool parse"], "zlib": ["tool pack"]}
    trimmed = program_builtins(program_with_table(tmp_path / "a", ["posix", "sys"]), stdlib)
    assert trimmed == {"posix", "sys"}
    found = module_closure(roots, set(), stdlib, set(), "linux/amd64", builtin=trimmed)
    assert found.modules == {"xmltool"} and found.extensions == {"pyexpat", "zlib"}
    # A program linked with Debian's own table has them all: nothing to layer.
    full = program_builtins(program_with_table(tmp_path / "b", None), stdlib)
    assert full == stdlib.builtin
    found = module_closure(roots, set(), stdlib, set(), "linux/amd64", builtin=full)
    assert found.modules == {"xmltool"} and found.extensions == set()


def test_a_dropped_built_in_that_could_not_be_linked_is_one_line_naming_tool_import_platform():
    stdlib = load_stdlib(fake_builder({"pyexpat": "gcc: cannot find -lexpat"}))
    with pytest.raises(UserError) as error:
        module_closure(
            {"xmltool": ["tool parse"]}, set(), stdlib, set(), "linux/arm64", builtin={"sys"}
        )
    message = str(error.value)
    assert message.startswith("tool parse imports xmltool, which needs pyexpat:")
    assert "linux/arm64" in message and "gcc: cannot find -lexpat" in message
    assert "\n" not in message
    # Imported only inside try/except ImportError: skipped, as the interpreter would.
    found = module_closure(
        {"xmltool": ["tool parse"]}, {"xmltool"}, stdlib, set(), "linux/arm64", builtin={"sys"}
    )
    assert found.extensions == set()


def c_arrays(text: str) -> dict[str, bytes]:
    """The byte arrays a generated frozen.c defines, read back from its C text."""
    found = re.findall(r"static const unsigned char (\w+)\[\] = \{([^}]*)\};", text)
    return {
        name: bytes(int(v) for v in body.replace("\n", "").split(",") if v.strip())
        for name, body in found
    }


def test_the_frozen_tables_carry_the_bootstrap_as_bytecode_and_no_deep_frozen_module():
    frozen = script("frozen")
    modules = frozen.bootstrap_modules(Path(sysconfig.get_paths()["stdlib"]))
    text = frozen.frozen_c(modules)
    # Every symbol of the archive's frozen.o and every one of deepfreeze.o's the rest of
    # libpython needs is defined, and no deep-frozen module is referenced.
    for symbol in (
        "_PyImport_FrozenBootstrap",
        "_PyImport_FrozenStdlib",
        "_PyImport_FrozenTest",
        "_PyImport_FrozenAliases",
        "PyImport_FrozenModules",
    ):
        assert re.search(rf"^const struct \w+ \*{symbol} = ", text, re.M), symbol
    assert "int _Py_Deepfreeze_Init(void) { return 0; }" in text
    assert "void _Py_Deepfreeze_Fini(void) {}" in text
    assert "_toplevel" not in text and "get_code" not in text
    entries = re.findall(
        r'^    \{"(\w+)", (M_\d+), \(int\)sizeof\(\2\), false, NULL\},$', text, re.M
    )
    assert [name for name, _ in entries] == [
        "_frozen_importlib",
        "_frozen_importlib_external",
        "zipimport",
    ]
    assert re.findall(r'^    \{"(\w+)", "([\w.]+)"\},$', text, re.M) == [
        ("_frozen_importlib", "importlib._bootstrap"),
        ("_frozen_importlib_external", "importlib._bootstrap_external"),
    ]
    arrays = c_arrays(text)
    for name, array in entries:
        origin, _, data = modules[name]
        assert arrays[array] == data  # the C bytes are the marshalled code, unchanged
        code = marshal.loads(arrays[array])
        # The code name import.c looks for to hide importlib's frames from tracebacks.
        assert code.co_filename == f"<frozen {origin}>"
    zipimport = marshal.loads(arrays[entries[2][1]])
    namespace: dict = {"__name__": "zipimport_check"}
    exec(zipimport, namespace)  # the frozen zipimport is a working module of this Python
    assert namespace["zipimporter"].__name__ == "zipimporter" and "__doc__" not in namespace


def test_the_frozen_code_has_no_docstrings_or_asserts():
    code = marshal.loads(script("frozen").frozen_code("m", '"""doc"""\nassert x\ny = 1\n'))
    assert code.co_filename == "<frozen m>"
    exec(code, namespace := {})  # the assert on an unbound name is gone
    assert namespace["y"] == 1 and "__doc__" not in namespace
    with pytest.raises(ValueError, match="no bootstrap modules"):
        script("frozen").frozen_c({})


def test_a_python_without_a_bootstrap_source_is_an_error(tmp_path, monkeypatch, capsys):
    frozen = script("frozen")
    monkeypatch.setattr(frozen.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path / "lib")})
    monkeypatch.setattr(sys, "argv", ["frozen.py", str(tmp_path / "out")])
    assert frozen.main() == 2
    assert "no source of importlib._bootstrap to freeze" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
