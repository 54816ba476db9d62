"""The command line as users call it: real processes, exit codes, no tracebacks."""

import json

import pytest
from helpers import ROOT, WORKFLOWS, minimal_workflow, run_cli, write_json


def test_python_entry_point_and_console_script_agree():
    import shutil
    import subprocess

    script = shutil.which("docker-workflow") or str(ROOT / ".venv" / "bin" / "docker-workflow")
    a = run_cli("analyze", str(WORKFLOWS / "calculator.json"), "--json")
    b = subprocess.run(
        [script, "analyze", str(WORKFLOWS / "calculator.json"), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert a.returncode == b.returncode == 0
    assert json.loads(a.stdout) == json.loads(b.stdout)


def test_analyze_text_report():
    proc = run_cli("analyze", str(WORKFLOWS / "text_insights.json"))
    assert proc.returncode == 0
    for expected in (
        "LLM tools",
        "keyword_extractor",
        "Ollama models",
        "llama3",
        "Python modules",
        "unicodedata",
        "available -> 5 kept",
    ):
        assert expected in proc.stdout


def test_invalid_workflow_exits_2_with_one_line_per_problem(tmp_path):
    data = minimal_workflow(workflow_id="Bad Id")
    data["steps"][0]["input_mapping"]["text"] = "inputs.missing"
    path = write_json(tmp_path / "bad.json", data)
    proc = run_cli("analyze", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {path}: $.workflow_id: 'Bad Id' is not a safe name")
    assert lines[1].startswith(f"error: {path}: $.steps[0].input_mapping.text: 'inputs.missing'")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_missing_file_and_unknown_tool_are_clear(tmp_path):
    proc = run_cli("analyze", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "nope.json: $: file not found" in proc.stderr
    data = minimal_workflow()
    data["steps"][0]["tool"] = "no_such_tool"
    proc = run_cli("analyze", str(write_json(tmp_path / "w.json", data)))
    assert proc.returncode == 2 and "$.steps[0].tool: unknown tool 'no_such_tool'" in proc.stderr


def test_run_local_without_llm_and_input_file(tmp_path):
    inputs = write_json(tmp_path / "in.json", {"a": 9, "b": 4, "operation": "modulo"})
    proc = run_cli("run", "--local", str(WORKFLOWS / "calculator.json"), "-f", str(inputs))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == 1


def test_run_local_reports_bad_inputs_with_the_runner_exit_code():
    proc = run_cli("run", "--local", str(WORKFLOWS / "calculator.json"), '{"a": "x", "b": 1}')
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["type"] == "bad_input"
    assert "input 'a' must be of type number" in proc.stderr


def test_run_local_passes_large_tricky_inputs_intact(tmp_path):
    # Over 1 MB: more than one command-line argument may hold, so through a file and stdin.
    text = '"quotes", \\backslashes\\, new\nlines, tabs\t, unicode é 漢字 🎉 {braces} ' * 16000
    payload = json.dumps({"data": text}, ensure_ascii=False)
    write = tmp_path / "big.json"
    write.write_text(payload, encoding="utf-8")
    workflow = str(WORKFLOWS / "parallel_profile.json")
    for proc in (
        run_cli("run", "--local", workflow, "-f", str(write)),
        run_cli("run", "--local", workflow, "-f", "-", input_text=payload),
    ):
        assert proc.returncode == 0, proc.stderr[-400:]
        combined = json.loads(proc.stdout)["result"]["combined"]
        assert combined["result_a"]["length"] == len(text) > 1_000_000


def test_export_embeds_registry_tools(tmp_path):
    proc = run_cli("export", str(WORKFLOWS / "text_insights.json"), "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    exported = json.loads((tmp_path / "text_insights.json").read_text())
    assert exported["portable"] is True
    assert set(exported["tools"]) == {
        "text_cleaner",
        "word_counter",
        "keyword_extractor",
        "sentiment_analyzer",
        "title_generator",
    }
    # The exported file needs no registry: analyze it from a folder with no tools/.
    again = run_cli("analyze", str(tmp_path / "text_insights.json"), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tools_used"] == 5


def test_usage_errors_exit_non_zero():
    assert run_cli().returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_inputs_with_a_huge_integer_are_one_line_naming_where_they_came_from(tmp_path):
    """``-f FILE``, the argument and stdin are parsed by the host with the bounds of every
    JSON reader: one line naming the origin and the JSON path, exit 2, before anything runs."""
    big = "9" * 4400
    path = tmp_path / "in.json"
    path.write_text(f'{{"a": {big}, "b": 1}}')
    workflow = str(WORKFLOWS / "calculator.json")
    for args, stdin, origin, where in [
        (["-f", str(path)], None, str(path), "$.a"),
        ([f'{{"a": {big}, "b": 1}}'], None, "the inputs argument", "$.a"),
        ([], f'{{"a": 1, "b": [{big}]}}', "stdin", "$.b[0]"),
    ]:
        proc = run_cli("run", "--local", workflow, *args, input_text=stdin)
        assert proc.returncode == 2, proc.stderr
        expected = f"error: {origin}: {where}: an integer of 4400 digits (at most 4300)"
        assert proc.stderr.strip() == expected
        assert proc.stdout == ""


def _cli_with_stdout(stdout, *args):
    import subprocess

    from helpers import CLI, ROOT

    return subprocess.run(
        [*CLI, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120
    )


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_output_to_a_full_disk_or_a_closed_pipe_is_one_line(json_flag):
    import os

    workflow = str(WORKFLOWS / "calculator.json")
    with open("/dev/full", "w") as full:
        proc = _cli_with_stdout(full, "analyze", *json_flag, workflow)
    assert proc.returncode == 1
    assert proc.stderr == "error: writing the output failed: No space left on device\n"
    read, write = os.pipe()
    os.close(read)  # nobody reads: every write is EPIPE
    try:
        proc = _cli_with_stdout(write, "analyze", *json_flag, workflow)
    finally:
        os.close(write)
    assert proc.returncode == 1
    assert proc.stderr == "error: writing the output failed: Broken pipe\n"


def test_llm_server_with_a_port_out_of_range_is_one_line():
    proc = run_cli("llm-server", "--port", "99999")
    assert proc.returncode == 2
    assert proc.stderr == "error: --port must be between 0 and 65535 (0 picks a free one)\n"


@pytest.mark.parametrize("kind", ["loop", "long"])
def test_a_workflow_path_that_cannot_resolve_is_one_line_in_every_command(tmp_path, kind):
    """The workflow argument itself a link loop or a 300-byte name: one line, exit 2, in the
    commands that go through the graph (which resolves it in every step) and in the rest."""
    if kind == "loop":
        (tmp_path / "a.json").symlink_to("b.json")
        (tmp_path / "b.json").symlink_to("a.json")
        path = tmp_path / "a.json"
    else:
        path = tmp_path / ("w" * 300 + ".json")
    for command in (
        ["run", "--local", str(path), "{}", "-o", str(tmp_path / "cache")],
        ["build", str(path), "-o", str(tmp_path / "cache")],
        ["analyze", str(path)],
        ["export", str(path), "-o", str(tmp_path / "out.json")],
    ):
        proc = run_cli(*command)
        assert proc.returncode == 2, (command, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"error: {path}: $: ")
