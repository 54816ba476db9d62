import json
import subprocess
import sys

from helpers import WORKFLOWS, minimal_workflow, write_json

from rules.analyze import analyze, imported_modules
from rules.pipeline import analyze_file, prepare
from rules.registry import BUILTIN_TOOLS, Registry
from rules.render import engine_files, tree_digest
from rules.shake import canonical_json, digest, shake
from rules.spec import load_workflow


def test_imports_are_read_from_source_without_running_it():
    source = (
        "import os.path, json\nfrom collections import Counter\nfrom . import x\n"
        "__import__('csv')\nraise SystemExit"
    )
    assert imported_modules(source, "$", "f") == {"os", "json", "collections", "csv"}


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
    wf = load_workflow(
        write_json(
            tmp_path / "w.json",
            minimal_workflow(
                steps=steps,
                outputs={},
                tools=tools,
                dependencies={"pip_packages": [{"name": "numpy", "version": ">=1"}]},
            ),
        )
    )
    analysis, _ = analyze(wf, Registry([BUILTIN_TOOLS]))
    assert analysis.pip_packages == ["PyYAML", "numpy>=1", "requests"]
    assert analysis.https is True
    assert analysis.inline_code_steps == ["a"]


def test_bundle_holds_only_used_tools_and_runtime_fields():
    workflow, _, tools = analyze_file(WORKFLOWS / "simple_summarizer.json")
    bundle = shake(workflow, tools)
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
        engine_files(["csv", "uuid"], False)
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
