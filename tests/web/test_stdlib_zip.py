"""The scanner that shakes Pyodide's standard library archive (3.14 sources, read as text)."""

from __future__ import annotations

import zipfile

from rules.stages.web.stdlib_zip import imports_of, needed_modules, runtime_imports

SOURCE = """
import os, sys as system
from . import helpers
from .inner import thing as other
from .. import sibling
from collections import (
    abc,
    OrderedDict,
)

def later():
    import pdb
    from email import parser
"""


def test_imports_are_resolved_and_marked_top_level_or_not():
    found = imports_of(SOURCE, "pkg.sub.mod", is_package=False)
    assert {name for name, top in found.items() if top} >= {
        "os",
        "sys",
        "pkg.sub",
        "pkg.sub.helpers",
        "pkg.sub.inner.thing",
        "pkg.sibling",
        "collections.abc",
        "collections.OrderedDict",
    }
    assert found["pdb"] is False and found["email.parser"] is False
    assert imports_of("from . import x", "pkg", is_package=True) == {"pkg": True, "pkg.x": True}


def archive(tmp_path, files):
    path = tmp_path / "stdlib.zip"
    with zipfile.ZipFile(path, "w") as out:
        for name, text in files.items():
            out.writestr(name, text)
    return zipfile.ZipFile(path)


def test_lazy_imports_of_excluded_modules_are_not_followed_top_level_ones_are(tmp_path):
    files = {
        "a.py": "import b\ndef f():\n    import lazy\n    import unittest\n",
        "b.py": "import unittest.case\n",
        "lazy.py": "",
        "unittest/__init__.py": "",
        "unittest/case.py": "",
        "unittest/mock.py": "",
        "pdb.py": "import unittest\n",
        "x/__main__.py": "",
        "x/__init__.py": "def f():\n    import x.__main__\n",
    }
    with archive(tmp_path, files) as zipped:
        kept = needed_modules(zipped, ["a", "x"], excluded=["unittest"])
    assert kept == {"a", "b", "lazy", "unittest", "unittest.case", "x"}


def test_the_runtimes_own_imports_are_found_in_its_javascript():
    js = 'API.pyimport("functools");m=importlib.import_module("pyodide.code");x="_pyodide._base"'
    assert {"functools", "pyodide.code", "_pyodide._base"} <= runtime_imports(js)
    assert "API" not in runtime_imports(js)
