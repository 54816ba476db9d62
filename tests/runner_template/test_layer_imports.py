"""The layer's finder: a package split between the program's zip and the layer's folder."""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path

import pytest

from runner_template.layer_imports import LayerFinder, _twins


@pytest.fixture
def program(tmp_path, monkeypatch):
    """A program folder with ``stdlib.zip`` on ``sys.path`` and a fresh finder."""
    archive = tmp_path / "stdlib.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zpkg/__init__.py", "WHERE = 'zip'\n")
        zipped.writestr("zpkg/inner.py", "WHERE = 'zip'\n")
        zipped.writestr("fpkg/fromzip.py", "WHERE = 'zip'\n")
    (tmp_path / "fpkg").mkdir()
    (tmp_path / "fpkg" / "__init__.py").write_text("WHERE = 'folder'\n")
    (tmp_path / "zpkg").mkdir()
    (tmp_path / "zpkg" / "layered.py").write_text("WHERE = 'folder'\n")
    finder = LayerFinder()
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(archive), *sys.path])
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, finder])
    yield tmp_path
    for name in [n for n in sys.modules if n.split(".")[0] in ("zpkg", "fpkg")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def test_a_zipped_package_finds_its_submodule_in_the_layer_folder(program):
    assert importlib.import_module("zpkg.inner").WHERE == "zip"
    layered = importlib.import_module("zpkg.layered")
    assert layered.WHERE == "folder"
    assert Path(layered.__file__) == program / "zpkg" / "layered.py"


def test_a_folder_package_finds_its_submodule_in_the_zip(program):
    assert importlib.import_module("fpkg").WHERE == "folder"
    assert importlib.import_module("fpkg.fromzip").WHERE == "zip"


def test_a_package_without_a_folder_finds_its_submodules_by_name(program):
    import types

    frozen = types.ModuleType("fpkg")
    frozen.__path__ = []  # as the frozen encodings package has
    sys.modules["fpkg"] = frozen
    assert importlib.import_module("fpkg.fromzip").WHERE == "zip"


def test_a_module_in_neither_place_is_still_not_found(program):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("zpkg.nowhere")


def test_twins_map_both_ways_and_leave_other_folders_alone():
    zips = ["/app/stdlib.zip"]
    assert _twins("/app/stdlib.zip/email", zips) == ["/app/email"]
    assert _twins("/app/encodings", zips) == ["/app/stdlib.zip/encodings"]
    assert _twins("/usr/lib/python3.11", zips) == []
    assert _twins("/app/stdlib.zip", zips) == []
    both = ["/app/stdlib.zip", "/app/layer.zip"]
    assert _twins("/app/stdlib.zip/email", both) == ["/app/layer.zip/email", "/app/email"]
    assert _twins("/app/email", both) == ["/app/stdlib.zip/email", "/app/layer.zip/email"]
