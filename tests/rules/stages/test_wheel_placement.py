"""Which installed distributions go into the layer's zip: the rules one by one, and that what
goes there still imports, reads its data and its metadata from the zip in a real Python."""

from __future__ import annotations

import importlib.util
import marshal
import subprocess
import sys
from pathlib import Path

import pytest
from wheels import make_wheel

from rules.stages.modules_layer import write_zip
from rules.stages.wheel_placement import (
    needs_real_paths,
    path_readers,
    place_wheels,
    wheel_modules,
)

# The builder's top-level standard-library names (a few: the rule reads them from the builder).
STDLIB = {"enum", "json", "os"}


def install(folder: Path, dist: str, files: dict[str, bytes]) -> None:
    """What pip leaves for one distribution: its files and a RECORD naming them."""
    info = folder / f"{dist}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist.split('-')[0]}\nVersion: {dist.split('-')[1]}\n"
    )
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    lines = [f"{name.removesuffix('c')},sha256=x,1" for name in files]
    (info / "RECORD").write_text("\n".join([*lines, f"{info.name}/RECORD,,"]) + "\n")


def pyc(source: str) -> bytes:
    """Sourceless bytecode as the layer's is: hash-based, unchecked (flags 1)."""
    code = compile(source, "<wheel>", "exec")
    return importlib.util.MAGIC_NUMBER + b"\x01\0\0\0" + b"\0" * 8 + marshal.dumps(code)


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    folder = tmp_path / "installed"
    install(
        folder,
        "pure-1.0",
        {
            "pure/__init__.pyc": pyc("from .core import VALUE\n"),
            "pure/core.pyc": pyc("VALUE = 7\n"),
            "pure/data/words.txt": b"alpha\nbeta\n",
            "pure/py.typed": b"",
        },
    )
    install(folder, "single-2.0", {"single.pyc": pyc("X = 1\n")})
    install(
        folder,
        "speedy-1.0",
        {"speedy/__init__.pyc": pyc(""), "speedy/_fast.cpython-311-x86_64-linux-gnu.so": b"E"},
    )
    install(folder, "bundle-1.0", {"bundle/__init__.pyc": pyc(""), "bundle/ca.pem": b"PEM"})
    install(folder, "enum34-1.1", {"enum/__init__.pyc": pyc("")})
    install(folder, "nsa-1.0", {"ns/a.pyc": pyc("")})
    install(folder, "nsb-1.0", {"ns/b.pyc": pyc("")})
    return folder


def test_pure_distributions_go_to_the_zip_and_the_rest_stays_loose(installed):
    placement = place_wheels(installed, readers={"bundle"}, stdlib=STDLIB)
    assert placement.zipped_distributions == ("pure-1.0.dist-info", "single-2.0.dist-info")
    assert set(placement.zipped) == {
        "pure/__init__.pyc",
        "pure/core.pyc",
        "pure/data/words.txt",
        "pure/py.typed",
        "pure-1.0.dist-info/METADATA",
        "pure-1.0.dist-info/RECORD",
        "single.pyc",
        "single-2.0.dist-info/METADATA",
        "single-2.0.dist-info/RECORD",
    }
    loose = {path.as_posix() for path in placement.loose}
    assert "speedy/_fast.cpython-311-x86_64-linux-gnu.so" in loose  # an extension module
    assert "bundle/ca.pem" in loose  # its code asks for a real path
    assert "enum/__init__.pyc" in loose  # shadows the standard library's enum
    assert {"ns/a.pyc", "ns/b.pyc"} <= loose  # one namespace, two distributions
    assert not loose & set(placement.zipped)
    everything = {p.relative_to(installed).as_posix() for p in installed.rglob("*") if p.is_file()}
    assert loose | set(placement.zipped) == everything


def test_a_distribution_without_record_stays_loose(installed):
    (installed / "pure-1.0.dist-info" / "RECORD").unlink()
    placement = place_wheels(installed, readers=set(), stdlib=STDLIB)
    assert "pure-1.0.dist-info" not in placement.zipped_distributions
    assert Path("pure/core.pyc") in placement.loose


def test_what_is_zipped_imports_and_reads_its_data_and_metadata_from_the_zip(installed, tmp_path):
    placement = place_wheels(installed, readers=set(), stdlib=STDLIB)
    layer = tmp_path / "layer.zip"
    write_zip(layer, placement.zipped)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import importlib.metadata, importlib.resources, pure, single\n"
        "assert pure.__file__.startswith(sys.argv[1]), pure.__file__\n"
        "print(pure.VALUE, single.X)\n"
        "print(importlib.resources.files('pure').joinpath('data/words.txt').read_text().split())\n"
        "print(importlib.metadata.version('pure'), importlib.metadata.version('single'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script, str(layer)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["7 1", "['alpha', 'beta']", "1.0 2.0"]


@pytest.mark.parametrize(
    ("source", "needs"),
    [
        ("from importlib.resources import files\nfiles(__package__)\n", False),
        ("import json\nVALUE = json.dumps([1])\n", False),
        ("import os\nHERE = os.path.dirname(__file__)\n", True),
        ("import mod\nprint(mod.__file__)\n", True),
        ("import pkgutil\n__path__ = pkgutil.extend_path(__path__, __name__)\n", True),
        ("from importlib.resources import as_file, files\n", True),
        ("from importlib.resources import path as get_path\n", True),
        ("import importlib.resources\nimportlib.resources.path('a', 'b')\n", True),
        ("import pkg_resources\n", True),
        ("from pkg_resources import resource_string\n", True),
        ("def broken(:\n", True),  # cannot be judged: stays loose
        ("import importlib.util\nO = importlib.util.find_spec('x').origin\n", True),
        ("import inspect\nF = inspect.getfile(inspect)\n", True),
        ("from importlib.resources import files\nopen(files('p') / 'schema.json')\n", True),
        ("import os, importlib.resources as r\nos.fspath(r.files('p') / 'x')\n", True),
        ("from importlib.resources import files\nxhr.open('GET', files('p'))\n", False),
    ],
)
def test_code_that_reads_its_files_by_path_is_recognised(source, needs):
    assert needs_real_paths(source.encode()) is needs


def test_path_readers_names_the_top_level_package_of_the_code(tmp_path):
    plain = make_wheel(tmp_path, "plain", modules={"plain/__init__.py": "X = 1\n"})
    reader = make_wheel(
        tmp_path,
        "reader",
        modules={"reader/__init__.py": "", "reader/deep/where.py": "W = __file__\n"},
    )
    module = make_wheel(tmp_path, "onefile", modules={"onefile.py": "W = __file__\n"})
    # pip installs <dist>.data/purelib/ at the top level: its code counts under that name.
    data = make_wheel(
        tmp_path,
        "datalib",
        modules={"datalib-1.0.data/purelib/hidden/__init__.py": "W = __file__\n"},
    )
    modules = wheel_modules([plain, reader, module, data])
    assert path_readers(modules) == {"reader", "onefile", "hidden"}
    assert "hidden" in modules and modules["hidden"][1]  # installed as a package at the top
