"""Every bad-input class of a workflow file: one line each, file + JSON path + problem."""

import json

import pytest
from helpers import minimal_workflow, write_json

from rules.errors import InvalidInput
from rules.files.spec import load_workflow


def problems_of(tmp_path, data=None, text=None):
    path = tmp_path / "wf.json"
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    else:
        write_json(path, data)
    with pytest.raises(InvalidInput) as caught:
        load_workflow(path)
    for problem in caught.value.problems:
        assert problem.file == str(path)
        assert "\n" not in str(problem)
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def test_minimal_workflow_loads(tmp_path):
    assert load_workflow(write_json(tmp_path / "wf.json", minimal_workflow())).id == "mini"


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "wf.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(minimal_workflow()).encode())
    assert load_workflow(path).id == "mini"


def test_not_json_reports_line_and_column(tmp_path):
    assert problems_of(tmp_path, text='{\n  "workflow_id": "x",\n  oops\n}') == [
        "$: invalid JSON at line 3 column 3: Expecting property name enclosed in double quotes"
    ]


def test_not_utf8_and_missing_file(tmp_path):
    assert "not UTF-8" in problems_of(tmp_path, text=b'{"a": "\xff"}')[0]
    with pytest.raises(InvalidInput, match="file not found"):
        load_workflow(tmp_path / "missing.json")


def test_duplicate_keys_are_refused(tmp_path):
    assert problems_of(tmp_path, text='{"workflow_id": "a", "workflow_id": "b"}') == [
        "$: key 'workflow_id' appears twice in one object"
    ]


def test_schema_problems_name_the_json_path(tmp_path):
    data = minimal_workflow()
    data["steps"][0]["type"] = "shell"
    data["steps"][0]["timeout"] = -1
    del data["workflow_id"]
    found = problems_of(tmp_path, data)
    assert "$: 'workflow_id' is required" in found
    assert any(p.startswith("$.steps[0].type: 'shell' is not one of") for p in found)
    assert any(p.startswith("$.steps[0].timeout: -1 is less than or equal") for p in found)


def test_top_level_must_be_an_object(tmp_path):
    assert problems_of(tmp_path, text="[1, 2]") == ["$: a workflow must be a JSON object"]


@pytest.mark.parametrize("bad_id", ["My Flow", "UPPER", "a/b", "-lead", "x" * 65, "a..b"])
def test_unsafe_workflow_id(tmp_path, bad_id):
    found = problems_of(tmp_path, minimal_workflow(workflow_id=bad_id))
    assert found[0].startswith("$.workflow_id: ") and "is not a safe name" in found[0]


def test_unknown_input_step_and_output_references(tmp_path):
    data = minimal_workflow()
    data["steps"].append(
        {
            "step_id": "two",
            "type": "python_tool",
            "tool": "word_counter",
            "input_mapping": {
                "a": "inputs.nope",
                "b": "steps.ghost.output",
                "c": "steps.count.wrong",
                "d": "steps.two.output",
                "e": "text",
                "f": {"x": 1},
            },
        }
    )
    data["outputs"]["bad"] = {"source_reference": "steps.count.output"}
    found = problems_of(tmp_path, data)
    assert found == [
        "$.steps[1].input_mapping.a: 'inputs.nope' names input 'nope', which is not declared"
        " (inputs: text)",
        "$.steps[1].input_mapping.b: 'steps.ghost.output' names step 'ghost', which does not exist",
        "$.steps[1].input_mapping.c: 'steps.count.wrong': step 'count' produces 'stats', not"
        " 'wrong' (its output_name)",
        "$.steps[1].input_mapping.d: 'steps.two.output': a step cannot read its own output",
        "$.steps[1].input_mapping.e: 'text' is not a reference: write 'inputs.NAME' or"
        " 'steps.STEP.OUTPUT[.key...]' (a literal value must be a JSON number, boolean, null,"
        ' or {"literal": ...})',
        '$.steps[1].input_mapping.f: an object value must be {"literal": ...}; references are'
        " strings",
        "$.outputs.bad.source_reference: 'steps.count.output': step 'count' produces 'stats',"
        " not 'output' (its output_name)",
    ]


def test_dollar_dialect_is_rejected_with_the_fix(tmp_path):
    data = minimal_workflow()
    data["steps"][0]["input_mapping"]["text"] = "${inputs.text}"
    found = problems_of(tmp_path, data)
    assert found == [
        "$.steps[0].input_mapping.text: '${inputs.text}' uses the ${...} dialect, which is not"
        " supported: write 'inputs.text'"
    ]


def test_duplicate_step_ids(tmp_path):
    data = minimal_workflow()
    data["steps"].append(dict(data["steps"][0]))
    assert "$.steps[1].step_id: duplicate step id 'count'" in problems_of(tmp_path, data)


def test_dependency_cycle_in_a_group(tmp_path):
    steps = [
        {
            "step_id": "a",
            "type": "python_tool",
            "code": "result = 1",
            "parallel_group": 1,
            "depends_on": ["b"],
        },
        {
            "step_id": "b",
            "type": "python_tool",
            "code": "result = 2",
            "parallel_group": 1,
            "depends_on": ["a"],
        },
    ]
    found = problems_of(tmp_path, minimal_workflow(steps=steps, outputs={}))
    assert len(found) == 1 and found[0].startswith("$.steps: dependency cycle: ")


def test_forward_reference_outside_a_group(tmp_path):
    steps = [
        {
            "step_id": "a",
            "type": "python_tool",
            "code": "result = x",
            "input_mapping": {"x": "steps.b.output"},
        },
        {"step_id": "b", "type": "python_tool", "code": "result = 2"},
    ]
    found = problems_of(tmp_path, minimal_workflow(steps=steps, outputs={}))
    assert found == [
        "$.steps[0]: step 'a' depends on step 'b', which is written after it and is not in the"
        " same parallel_group: move it before"
    ]


def test_unknown_depends_on(tmp_path):
    data = minimal_workflow()
    data["steps"][0]["depends_on"] = ["nobody"]
    assert problems_of(tmp_path, data) == ["$.steps[0].depends_on[0]: unknown step 'nobody'"]


def test_step_kind_needs(tmp_path):
    steps = [
        {"step_id": "a", "type": "llm_call"},
        {"step_id": "b", "type": "python_tool"},
        {"step_id": "c", "type": "python_tool", "generate_tool": True},
    ]
    found = problems_of(tmp_path, minimal_workflow(steps=steps, outputs={}))
    assert found[0] == "$.steps[0]: an llm_call step needs 'tool' (an LLM tool id)"
    assert found[1].startswith("$.steps[1]: a python_tool step needs exactly one of 'tool'")
    assert found[2].startswith("$.steps[2].generate_tool: tools generated by an LLM at run time")


def test_input_declarations_are_checked(tmp_path):
    inputs = {
        "text": {"type": "string", "required": True},
        "n": {"type": "number", "default": "ten"},
        "p": {"type": "string", "pattern": "(unclosed"},
        "e": {"type": "string", "enum": ["a"], "default": "b"},
    }
    found = problems_of(tmp_path, minimal_workflow(inputs=inputs))
    assert found == [
        "$.inputs.n.default: the default breaks its own declaration: input 'n' must be of type"
        " number, got 'ten'",
        "$.inputs.p.pattern: invalid regular expression: missing ), unterminated subpattern at"
        " position 0",
        "$.inputs.e.default: the default breaks its own declaration: input 'e' must be one of"
        " 'a', got 'b'",
    ]


def test_dollar_dialect_in_prompt_template(tmp_path):
    steps = [
        {
            "step_id": "a",
            "type": "llm_call",
            "tool": "summarizer",
            "prompt_template": "Use ${inputs.text}",
        }
    ]
    found = problems_of(tmp_path, minimal_workflow(steps=steps, outputs={}))
    assert found[0].startswith("$.steps[0].prompt_template: '${inputs.text}' uses the ${...}")
