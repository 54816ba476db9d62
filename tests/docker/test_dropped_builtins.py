"""Built-in modules the shared program leaves out of its link, through a real amd64 image.

The program links its own table of built-ins (rules/stages/program_builtins.py): its init
functions for the dropped modules are gone, and so is libexpat. One workflow's tool imports
every dropped module and uses a few: each comes from the module layer as an extension module
the builder linked from Debian's libpython3.11-pic.a, resolving the Python API against the
program; pyexpat brings libexpat with it. The same image shows the frozen bootstrap
(rules/docker/build/frozen.py): ``zipimport`` frozen, the engine's standard library from its zip,
``decimal`` from the layer.
"""

from __future__ import annotations

import json

import pytest
from helpers import write_json
from image_inspect import docker_run, image_file, image_files

from rules.stages.program_builtins import DROPPED

TAG = "dw-test/dropped-builtins:1"
SUFFIX = ".cpython-311-x86_64-linux-gnu.so"
# xxsubtype is CPython's example module, no standard-library name (sys.stdlib_module_names):
# the analysis would take it for a package.
IMPORTED = sorted(DROPPED - {"xxsubtype"})
CODE = f"""import {", ".join(IMPORTED)}
import cmath, decimal, hashlib, pickle, sys, zipimport
import xml.etree.ElementTree as ET
loaded = {{name: sys.modules[name].__file__ for name in {IMPORTED!r}}}
result = {{
    "files": loaded,
    "zipimport": zipimport.__spec__.origin,
    "bootstrap": sys.modules["_frozen_importlib"].__spec__.loader_state.origname,
    "json": type(sys.modules["json"].__loader__).__name__,
    "sum": str(decimal.Decimal("1.1") + decimal.Decimal("0.2")),
    "decimal": sys.modules["_decimal"].__file__,
    "sqrt": str(cmath.sqrt(-4)),
    "tag": ET.fromstring("<a><b>" + text + "</b></a>").find("b").text,
    "blake2": hashlib.blake2b(text.encode(), digest_size=8).hexdigest(),
    "sha3": hashlib.sha3_256(b"").hexdigest()[:16],
    "pickled": _pickle.loads(_pickle.dumps({{"x": text}})),
}}
"""


@pytest.fixture(scope="module")
def dropped_image(dw, tmp_path_factory):
    """The amd64 image of a workflow whose one step runs ``CODE`` on the input ``text``: every
    check here reads it."""
    workflow = {
        "workflow_id": "dropped-builtins",
        "version": "1.0.0",
        "inputs": {"text": {"type": "string", "required": True}},
        "outputs": {"all": {"source_reference": "steps.all.result"}},
        "steps": [
            {
                "step_id": "all",
                "type": "python_tool",
                "code": CODE,
                "input_mapping": {"text": "inputs.text"},
                "output_name": "result",
            }
        ],
    }
    path = write_json(tmp_path_factory.mktemp("dropped") / "dropped-builtins.json", workflow)
    proc = dw("build", str(path), "-t", TAG, "--platform", "linux/amd64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return TAG


def test_a_tool_imports_every_dropped_built_in_from_the_layer(dropped_image):
    proc = docker_run(dropped_image, '{"text": "hi"}', options=["--read-only", "--user", "65532"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)["all"]
    assert result["files"] == {name: f"/app/{name}{SUFFIX}" for name in IMPORTED}
    assert result["sqrt"] == "2j" and result["tag"] == "hi" and result["pickled"] == {"x": "hi"}
    assert result["blake2"] == "106bce4401410416"  # hashlib.blake2b(b"hi", digest_size=8)
    assert result["sha3"] == "a7ffc6f8bf1ed766"  # sha3_256 of nothing


def test_the_program_has_none_of_them_and_libexpat_comes_with_pyexpat(dropped_image):
    files = image_files(dropped_image, "linux/amd64")
    assert {f"app/{name}{SUFFIX}" for name in IMPORTED} <= set(files)
    # libexpat is no longer beside the program: the layer brings it at the builder's path.
    assert "app/libexpat.so.1" not in files
    assert any(name.endswith("lib/x86_64-linux-gnu/libexpat.so.1") for name in files)
    program = image_file(dropped_image, "linux/amd64", "/app/workflow")
    assert b"PyInit_posix" in program  # the check below can see init functions
    for name in DROPPED:
        assert f"PyInit_{name}\0".encode() not in program, name


def test_the_program_has_no_deep_frozen_modules_and_its_frozen_bootstrap_imports(dropped_image):
    """rules/docker/build/frozen.py: the bootstrap (zipimport with it) is frozen bytecode, the
    engine's standard library loads from the zip through it, a tool's module (``decimal``)
    from the layer; deepfreeze.o's code objects (``site``, ``__hello__``, ...) are not in the
    program."""
    proc = docker_run(dropped_image, '{"text": "hi"}', options=["--read-only", "--user", "65532"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)["all"]
    assert {key: result[key] for key in ("zipimport", "bootstrap", "json", "sum", "decimal")} == {
        "zipimport": "frozen",
        "bootstrap": "importlib._bootstrap",
        "json": "zipimporter",
        "sum": "1.3",
        "decimal": f"/app/_decimal{SUFFIX}",
    }
    program = image_file(dropped_image, "linux/amd64", "/app/workflow")
    assert b"<frozen importlib._bootstrap_external>" in program  # strings of code are visible
    assert b"addsitepackages" not in program  # a name in site's deep-frozen code
    assert b"Hello world!" not in program  # __hello__'s, a test module's
