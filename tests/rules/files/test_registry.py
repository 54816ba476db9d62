import pytest
from helpers import ROOT, minimal_workflow, write_json

from rules.errors import InvalidInput
from rules.files.registry import BUILTIN_TOOLS, Registry, default_model, resolve_tools
from rules.files.spec import load_workflow

SHIPPED = sorted(p.stem for p in BUILTIN_TOOLS.rglob("*.yaml"))


def test_builtin_registry_has_the_corpus_ids_and_more():
    corpus_ids = {
        "summarizer",
        "content_generator",
        "outline_generator",
        "code_reviewer",
        "basic_calculator",
        "save_to_disk",
    }
    assert corpus_ids <= set(SHIPPED)
    assert len(set(SHIPPED) - corpus_ids) >= 6


@pytest.mark.parametrize("tool_id", SHIPPED)
def test_every_shipped_tool_normalizes(tool_id):
    tool = Registry([BUILTIN_TOOLS]).load(tool_id)
    assert tool.id == tool_id
    if tool.kind == "executable":
        compile(tool.definition["source"], tool_id, "exec")
    else:
        assert tool.definition.get("prompt_template") and tool.definition.get("system_prompt")


def lightweight(tmp_path, steps, **extra):
    return load_workflow(
        write_json(tmp_path / "wf.json", minimal_workflow(steps=steps, outputs={}, **extra))
    )


def test_unknown_tool_lists_where_it_looked(tmp_path):
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "python_tool", "tool": "nope"}])
    with pytest.raises(InvalidInput) as caught:
        resolve_tools(wf, Registry([BUILTIN_TOOLS]))
    (problem,) = caught.value.problems
    assert problem.path == "$.steps[0].tool"
    assert problem.message.startswith("unknown tool 'nope' (searched ")


def test_portable_workflow_must_embed_its_tools(tmp_path):
    wf = lightweight(
        tmp_path, [{"step_id": "a", "type": "python_tool", "tool": "word_counter"}], portable=True
    )
    with pytest.raises(InvalidInput, match="not embedded in 'tools'"):
        resolve_tools(wf, Registry([BUILTIN_TOOLS]))


def test_step_type_must_match_tool_kind(tmp_path):
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "llm_call", "tool": "word_counter"}])
    with pytest.raises(InvalidInput, match="needs an llm tool, but 'word_counter' is executable"):
        resolve_tools(wf, Registry([BUILTIN_TOOLS]))


def test_only_used_tools_and_their_fallbacks_are_resolved(tmp_path):
    wf = lightweight(
        tmp_path,
        [
            {
                "step_id": "a",
                "type": "llm_call",
                "tool": "translator",
                "fallback_tool": "summarizer",
            },
            {"step_id": "b", "type": "python_tool", "tool": "word_counter"},
        ],
    )
    assert sorted(resolve_tools(wf, Registry([BUILTIN_TOOLS]))) == [
        "summarizer",
        "translator",
        "word_counter",
    ]


def test_earlier_registry_folders_override_later_ones(tmp_path):
    mine = tmp_path / "mine"
    (mine / "llm").mkdir(parents=True)
    (mine / "llm" / "summarizer.yaml").write_text("type: llm\nllm:\n  model: mistral\n")
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "llm_call", "tool": "summarizer"}])
    tools = resolve_tools(wf, Registry([mine, BUILTIN_TOOLS]))
    assert tools["summarizer"].definition["model"] == "mistral"
    assert tools["summarizer"].origin == str(mine / "llm" / "summarizer.yaml")


def test_default_model_order(monkeypatch):
    monkeypatch.delenv("OLLAMA_MODEL", raising=False)
    assert default_model() == "llama3"
    monkeypatch.setenv("OLLAMA_MODEL", "qwen")
    assert default_model() == "qwen"
    assert default_model("phi") == "phi"


def test_tool_without_model_gets_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("OLLAMA_MODEL", raising=False)
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "llm_call", "tool": "summarizer"}])
    assert (
        resolve_tools(wf, Registry([BUILTIN_TOOLS]), "tiny")["summarizer"].definition["model"]
        == "tiny"
    )


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "type: executable\nexecutable:\n  command: bash\n  args: ['-c', 'ls']\n",
            "command 'bash' cannot run in a compiled image",
        ),
        (
            "type: executable\nexecutable:\n  command: python\n  args: ['missing.py']\n",
            "cannot use script 'missing.py': file not found",
        ),
        ("type: magic\n", r"'magic' is not one of \['llm', 'executable', 'python', 'api'\]"),
        ("type: llm\nllm: {model: a, model: b}\n", "key 'model' appears twice"),
        ("type: llm\ntimeout: .nan\n", "not a finite number"),
        ("type: llm\ntimeout: 1.0e+10\n", "10000000000.0 is greater than the maximum of 3600"),
        ("type: api\n", "an api tool needs 'api_spec'"),
        ("type: llm\nllm: [1\n", "invalid YAML at line 3"),
        ("- just a list\n", "a tool definition must be a mapping"),
    ],
)
def test_bad_tool_files_are_clear_errors(tmp_path, yaml_text, message):
    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / "bad.yaml").write_text(yaml_text)
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "python_tool", "tool": "bad"}])
    with pytest.raises(InvalidInput, match=message) as caught:
        resolve_tools(wf, Registry([folder]))
    assert caught.value.problems[0].file == str(folder / "bad.yaml")


def test_registry_for_workflow_searches_beside_the_workflow(tmp_path):
    project = tmp_path / "proj"
    (project / "tools").mkdir(parents=True)
    (project / "workflows").mkdir()
    registry = Registry.for_workflow(project / "workflows" / "x.json")
    assert registry.roots[0] == (project / "tools").resolve()
    assert registry.roots[-1] == (ROOT / "tools").resolve()


BOMB = """type: llm
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (BOMB, "aliases .* are not allowed in tool files"),
        ("type: llm\nx: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 100 levels"),
        ('type: llm\nsystem_prompt: "\\ud800"\n', "lone surrogate"),
    ],
)
def test_hostile_tool_files_fail_fast_in_one_line(tmp_path, yaml_text, message):
    import time

    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / "bad.yaml").write_text(yaml_text)
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "llm_call", "tool": "bad"}])
    started = time.monotonic()
    with pytest.raises(InvalidInput, match=message) as caught:
        resolve_tools(wf, Registry([folder]))
    assert time.monotonic() - started < 2
    assert len(caught.value.problems) == 1 and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "script",
    [
        "/etc/hostname",
        "../secret.txt",
        "../../secret.txt",
        "sub/../../secret.txt",
        "/dev/zero",
        "link.py",
        "fifo.py",
        "big.py",
    ],
)
def test_scripts_are_confined_to_the_registry_folder(tmp_path, script):
    import os

    (tmp_path / "secret.txt").write_text("TOP SECRET")
    folder = tmp_path / "reg" / "tools"
    folder.mkdir(parents=True)
    (folder / "link.py").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(folder / "fifo.py")
    (folder / "big.py").write_text("x = 1\n" * 300_000)
    (folder / "bad.yaml").write_text(f"type: executable\nexecutable:\n  script: {script!r}\n")
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "python_tool", "tool": "bad"}])
    with pytest.raises(InvalidInput) as caught:
        resolve_tools(wf, Registry([folder]))
    assert "TOP SECRET" not in str(caught.value)
    assert caught.value.problems[0].path == "$.executable"


def test_scripts_in_subfolders_of_the_registry_are_fine(tmp_path):
    folder = tmp_path / "tools"
    (folder / "exe" / "lib").mkdir(parents=True)
    (folder / "exe" / "lib" / "x.py").write_text("print(1)\n")
    (folder / "exe" / "ok.yaml").write_text("type: executable\nexecutable:\n  script: lib/x.py\n")
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "python_tool", "tool": "ok"}])
    assert resolve_tools(wf, Registry([folder]))["ok"].definition["source"] == "print(1)\n"


def test_every_sampling_option_the_engine_honours_reaches_the_bundle():
    """min_p and the penalties once passed the schema and were dropped on the way in."""
    from rules.files.registry import normalize_tool
    from runner_template.bundle_format import LLM_OPTION_KEYS

    values = {"min_p": 0.05, "repeat_penalty": 1.1, "presence_penalty": 0.2}
    values["frequency_penalty"] = 0.3
    raw = {"type": "llm", "llm": {"model": "m", "prompt_template": "{text}", **values}}
    tool = normalize_tool("t", raw, "t.yaml", (), None)
    assert {key: tool.definition[key] for key in values} == values
    assert set(values) <= set(LLM_OPTION_KEYS)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("loop.py", "is a symbolic link loop"),
        ("a\0b.py", "contains a NUL byte"),
        ("s" * 300 + ".py", r"has a name of 303 bytes \(at most 255\)"),
    ],
)
def test_hostile_script_names_are_one_line(tmp_path, script, message):
    import json

    folder = tmp_path / "reg" / "tools"
    folder.mkdir(parents=True)
    (folder / "loop.py").symlink_to("loop2.py")
    (folder / "loop2.py").symlink_to("loop.py")
    quoted = json.dumps(script)  # a YAML double-quoted string: the NUL as \u0000
    (folder / "bad.yaml").write_text(f"type: executable\nexecutable:\n  script: {quoted}\n")
    wf = lightweight(tmp_path, [{"step_id": "a", "type": "python_tool", "tool": "bad"}])
    with pytest.raises(InvalidInput, match=message) as caught:
        resolve_tools(wf, Registry([folder]))
    assert caught.value.problems[0].path == "$.executable"
    assert len(caught.value.lines()) == 1
