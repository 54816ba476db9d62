import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import WORKFLOWS, minimal_workflow, write_json

from rules.errors import InvalidInput
from rules.graph.build import prepare
from rules.stages.analyze import dotted_imports, imported_modules
from rules.stages.pipeline import analyze_file
from rules.stages.render import engine_files, tool_imports_module, tree_digest
from rules.stages.shake import canonical_json, digest, shake


def test_imports_are_read_from_source_without_running_it():
    source = (
        "import os.path, json\nfrom collections import Counter\nfrom . import x\n"
        "__import__('csv')\nimport importlib\nimportlib.import_module('uuid')\nraise SystemExit"
    )
    required, optional = imported_modules(source, "$", "f")
    assert required == {"os", "json", "collections", "csv", "importlib", "uuid"}
    assert optional == set()


def test_imports_in_try_except_import_error_are_optional():
    source = (
        "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n"
        "try:\n    import lzma\nexcept (ModuleNotFoundError, OSError):\n    pass\n"
        "try:\n    import csv\nfinally:\n    pass\n"
    )
    required, optional = imported_modules(source, "$", "f")
    assert required == {"csv"} and optional == {"yaml", "lzma"}


LIBRARY = """\
import json


def _test():
    import doctest
    return _helper()


def _helper():
    import pdb


def _also_at_import():
    import csv


def _by_name():
    import uuid


def _never_named():
    import zlib


@register
def _decorated():
    import bz2


def main():
    import argparse


_also_at_import()
HOOK = getattr(object, "_by_name", None)

if __name__ == "__main__":
    import unittest
    _test()
    _also_at_import()
    _by_name()
    _decorated()
    main()
else:
    import heapq
if "__main__" == __name__:
    import sqlite3
"""


def test_what_a_library_module_runs_only_as_the_main_program_is_not_its_import():
    required, optional = dotted_imports(LIBRARY, "lib", stdlib=True)
    assert required == {"json", "csv", "uuid", "zlib", "bz2", "argparse", "heapq"}
    assert optional == set()
    # A wheel's private function may be called from another module: only the block goes.
    required, _ = dotted_imports(LIBRARY, "lib")
    assert required == {"json", "csv", "uuid", "zlib", "bz2", "argparse", "heapq", "doctest", "pdb"}
    # A tool's code may run as __main__ (the engine runs it so): all of it counts.
    required, _ = dotted_imports(LIBRARY)
    assert {"doctest", "pdb", "unittest", "sqlite3"} <= required


def test_pickles_self_test_brings_no_doctest():
    """The case that made the rule: logging imports pickle, whose ``_test`` imported doctest
    (and through it pdb, unittest and pydoc) into every layer that reaches logging."""
    source = Path(sysconfig.get_paths()["stdlib"], "pickle.py").read_text("utf-8")
    required, optional = dotted_imports(source, "pickle", stdlib=True)
    assert "doctest" not in required | optional and "argparse" not in required | optional
    assert "_compat_pickle" in required


@pytest.mark.parametrize(
    "call",
    [
        "__import__('os; import shutil')",
        "__import__('a b')",
        "__import__(7)",
        "importlib.import_module('x\\nimport os')",
    ],
)
def test_dynamic_imports_of_non_module_names_are_refused(call):
    with pytest.raises(InvalidInput, match="is not a module name"):
        imported_modules(f"import importlib\n{call}\n", "$.tools.t", "f.json")


def test_generated_imports_are_guarded_and_only_identifiers():
    text = tool_imports_module(["yaml", "xml.dom"]).decode()
    assert "try:\n    import xml.dom  # noqa: F401\nexcept ImportError:\n    pass" in text
    compile(text, "_tool_imports.py", "exec")
    with pytest.raises(ValueError, match="not a module name"):
        tool_imports_module(["os; import shutil"])


def test_analysis_of_a_multi_tool_workflow():
    _, analysis, _ = analyze_file(WORKFLOWS / "text_insights.json")
    data = analysis.to_json()
    assert data["llm_tools"] == ["keyword_extractor", "sentiment_analyzer", "title_generator"]
    assert data["executable_tools"] == ["text_cleaner", "word_counter"]
    assert data["models"] == ["llama3"]
    assert {"collections", "re", "unicodedata", "json", "sys"} == set(data["python_modules"])
    assert data["pip_packages"] == [] and data["https"] is False
    assert data["tools_used"] == 5 and data["tools_available"] > 10


def test_third_party_imports_and_https_endpoints_are_reported(tmp_path):
    steps = [
        {"step_id": "a", "type": "python_tool", "code": "import yaml, requests\nresult = 1"},
        {"step_id": "b", "type": "llm_call", "tool": "remote"},
    ]
    tools = {"remote": {"type": "llm", "model": "m", "endpoint": "https://llm.example:443"}}
    data = minimal_workflow(
        steps=steps,
        outputs={},
        tools=tools,
        dependencies={"pip_packages": [{"name": "numpy", "version": ">=1"}, "rich==14.2.0"]},
    )
    _, analysis, _ = analyze_file(write_json(tmp_path / "w.json", data))
    assert analysis.pip_packages == ["numpy>=1", "PyYAML", "requests", "rich==14.2.0"]
    assert analysis.third_party_modules == ["requests", "yaml"]
    assert analysis.https is True
    assert analysis.inline_code_steps == ["a"]


def test_who_may_need_unicodedata_is_everyone_running_python_code(tmp_path):
    # The LLM-only summarizer runs only the engine: nothing to bring (the shared program
    # leaves unicodedata to the layer).
    _, summarizer, _ = analyze_file(WORKFLOWS / "simple_summarizer.json")
    assert summarizer.unicodedata_users == []
    _, insights, _ = analyze_file(WORKFLOWS / "text_insights.json")
    assert insights.unicodedata_users == ["tool text_cleaner", "tool word_counter"]
    # Code that imports nothing still may ("b\u00fccher".encode("idna")); a pattern that names
    # a character needs it in re's parser; one that does not, nothing.
    inputs = {
        "code": {"type": "string", "pattern": "^\\N{LATIN SMALL LETTER A}+$"},
        "plain": {"type": "string", "pattern": "^[a-z]+$"},
    }
    steps = [{"step_id": "a", "type": "python_tool", "code": "result = 'x'.encode('idna')"}]
    data = minimal_workflow(inputs=inputs, steps=steps, outputs={})
    _, analysis, _ = analyze_file(write_json(tmp_path / "w.json", data))
    assert analysis.unicodedata_users == ["input code", "step a"]


def test_an_import_no_requirement_explains_is_an_error(tmp_path):
    steps = [{"step_id": "a", "type": "python_tool", "code": "import frobnicator\nresult = 1"}]
    path = write_json(tmp_path / "w.json", minimal_workflow(steps=steps, outputs={}))
    with pytest.raises(InvalidInput) as caught:
        analyze_file(path)
    (problem,) = caught.value.problems
    assert problem.path == "$.steps[0].code"
    assert "imports 'frobnicator', which is not in the standard library" in problem.message


def test_original_tool_definition_with_source_code_and_requirements(tmp_path):
    tools = {
        "fetch": {
            "tool_id": "fetch",
            "name": "Fetch",
            "type": "python",
            "source_code": "import json, sys, yaml\nprint(json.dumps({'ok': True}))",
            "requirements": ["PyYAML==6.0.2"],
            "retry_on_failure": True,
            "timeout": 30,
        }
    }
    steps = [{"step_id": "a", "type": "python_tool", "tool": "fetch"}]
    path = write_json(
        tmp_path / "w.json", minimal_workflow(steps=steps, outputs={}, tools=tools, portable=True)
    )
    tree, analysis, tools_by_node = analyze_file(path)
    assert analysis.pip_packages == ["PyYAML==6.0.2"]
    assert analysis.executable_tools == ["fetch"]
    bundle = shake(tree, tools_by_node)
    assert bundle["tools"]["fetch"]["kind"] == "executable"
    assert bundle["tools"]["fetch"]["retry_on_failure"] is True
    assert "requirements" not in bundle["tools"]["fetch"]  # packages go to the engine


def test_api_tools_and_existing_tool_steps(tmp_path):
    tools = {
        "lookup": {
            "type": "api",
            "api_spec": {
                "method": "post",
                "url": "https://api.example/v1/{q}",
                "headers": {"Authorization": "Bearer ${API_TOKEN}"},
            },
        }
    }
    steps = [
        {
            "step_id": "a",
            "type": "existing_tool",
            "tool": "word_counter",
            "input_mapping": {"text": "inputs.text"},
        },
        {"step_id": "b", "type": "existing_tool", "tool": "lookup", "input_mapping": {"q": 1}},
    ]
    path = write_json(tmp_path / "w.json", minimal_workflow(steps=steps, outputs={}, tools=tools))
    tree, analysis, tools_by_node = analyze_file(path)
    assert analysis.api_tools == ["lookup"] and analysis.https is True
    bundle = shake(tree, tools_by_node)
    assert [s["type"] for s in bundle["workflow"]["steps"]] == ["python_tool", "python_tool"]
    assert bundle["tools"]["lookup"]["api_spec"]["method"] == "POST"
    assert "${API_TOKEN}" in json.dumps(bundle)  # the name of the secret, never its value


def test_credentials_in_endpoints_are_refused(tmp_path):
    tools = {"t": {"type": "llm", "model": "m", "endpoint": "http://u:secret@host:11434"}}
    steps = [{"step_id": "a", "type": "llm_call", "tool": "t"}]
    path = write_json(tmp_path / "w.json", minimal_workflow(steps=steps, outputs={}, tools=tools))
    with pytest.raises(InvalidInput, match="carries credentials") as caught:
        analyze_file(path)
    assert "secret" not in str(caught.value)


def test_bundle_holds_only_used_tools_and_runtime_fields():
    tree, _, tools = analyze_file(WORKFLOWS / "simple_summarizer.json")
    bundle = shake(tree, tools)
    assert set(bundle["tools"]) == {"summarizer_tool"}
    assert "created_by" not in json.dumps(bundle)
    assert "description" not in bundle["workflow"]["steps"][0]


def test_bundle_bytes_and_digest_are_deterministic():
    first = canonical_json(shake(*analyze_file(WORKFLOWS / "text_insights.json")[::2]))
    second = canonical_json(shake(*analyze_file(WORKFLOWS / "text_insights.json")[::2]))
    assert first == second and digest(first) == digest(second)
    assert digest(first).startswith("sha256:")


def test_engine_depends_only_on_the_import_list():
    assert tree_digest(engine_files(["csv"], False)) == tree_digest(engine_files(["csv"], False))
    assert tree_digest(engine_files(["csv"], False)) != tree_digest(
        engine_files(["csv", "wave"], False)
    )


def test_prepare_renders_a_runnable_runner():
    prepared = prepare(WORKFLOWS / "calculator.json")
    assert prepared.bundle_path.exists() and prepared.entry_point.exists()
    assert (prepared.entry_point.parent / "runner_template" / "engine.py").exists()
    imports = (prepared.entry_point.parent / "_tool_imports.py").read_text()
    assert "import platform" in imports
    proc = subprocess.run(
        # -S: no site-packages: the runner must need the standard library only.
        [sys.executable, "-S", str(prepared.entry_point), '{"a": 2, "b": 5, "operation": "power"}'],
        capture_output=True,
        text=True,
        env={"WORKFLOW_BUNDLE": str(prepared.bundle_path)},
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == 32


def test_rendering_twice_leaves_no_staging_folders():
    first = prepare(WORKFLOWS / "calculator.json")
    prepare(WORKFLOWS / "calculator.json")
    for folder in (first.out_dir, first.out_dir.parent):
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []


def test_analyze_lists_every_environment_variable_the_workflow_reads(tmp_path):
    """An API-only workflow reads ``${VAR}`` in its URL and headers, an LLM tool its key
    variable: ``analyze`` lists them all, in the table and in ``--json``."""
    from helpers import run_cli

    tools = {
        "lookup": {
            "type": "api",
            "api_spec": {
                "method": "GET",
                "url": "https://api.example/v1/{q}?apikey=${API_TOKEN}&region=${REGION}",
                "headers": {"X-Tenant": "${TENANT_ID}", "Accept": "application/json"},
                "body": {"note": "${NOT_EXPANDED_IN_BODIES}"},
            },
        },
        "ask": {"type": "llm", "llm": {"model": "m", "api_key_env": "MY_LLM_KEY"}},
        "ask_default": {"type": "llm", "llm": {"model": "m"}},
    }
    steps = [
        {"step_id": "a", "type": "existing_tool", "tool": "lookup", "input_mapping": {"q": 1}},
        {"step_id": "b", "type": "existing_tool", "tool": "ask", "input_mapping": {"q": 1}},
        {"step_id": "c", "type": "existing_tool", "tool": "ask_default", "input_mapping": {"q": 1}},
    ]
    path = write_json(tmp_path / "w.json", minimal_workflow(steps=steps, outputs={}, tools=tools))
    expected = ["API_TOKEN", "MY_LLM_KEY", "OLLAMA_API_KEY", "REGION", "TENANT_ID"]
    _, analysis, _ = analyze_file(path)
    assert analysis.environment == expected
    proc = run_cli("analyze", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["environment"] == expected
    proc = run_cli("analyze", str(path), env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("Environment"))
    assert row.split(None, 1)[1].strip() == f"5  ({', '.join(expected)})"
