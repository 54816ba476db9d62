import threading

import pytest

from runner_template.errors import ToolError
from runner_template.pytools import parse_tool_output, run_executable_tool, run_inline_code

ECHO = "import sys, json; data = json.load(sys.stdin); print(json.dumps({'got': data}))"


def test_tool_reads_json_on_stdin_and_prints_json():
    assert run_executable_tool("echo", ECHO, {"a": 'é\n"q"'}, "s") == {"got": {"a": 'é\n"q"'}}


def test_non_json_output_is_kept_as_text():
    assert run_executable_tool("t", "print('hello world')", {}, "s") == "hello world"
    assert parse_tool_output("  \n") is None


def test_exit_status_and_exceptions_become_tool_errors():
    with pytest.raises(ToolError, match="exited with status 3: partial"):
        run_executable_tool("t", "import sys; print('partial'); sys.exit(3)", {}, "s")
    with pytest.raises(ToolError, match="ZeroDivisionError"):
        run_executable_tool("t", "1/0", {}, "s")
    with pytest.raises(ToolError, match="invalid Python"):
        run_executable_tool("t", "def (", {}, "s")


def test_sys_exit_zero_is_success():
    assert run_executable_tool("t", "import sys; print(1); sys.exit(0)", {}, "s") == 1


def test_each_call_gets_a_fresh_namespace():
    run_executable_tool("t", "leak = 1", {}, "s")
    assert (
        run_executable_tool("t", "import json; print(json.dumps('leak' in globals()))", {}, "s")
        is False
    )


def test_threads_see_their_own_stdin_and_stdout():
    code = (
        "import sys, json, time; data = json.load(sys.stdin); time.sleep(0.05);"
        " print(json.dumps(data['n']))"
    )
    results = {}

    def worker(n):
        results[n] = run_executable_tool("t", code, {"n": n}, "s")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: n for n in range(8)}


def test_inline_code_sees_values_and_sets_result():
    assert run_inline_code("s", "result = a + inputs['b']", {"a": 1, "b": 2}) == 3
    with pytest.raises(ToolError, match="did not set 'result'"):
        run_inline_code("s", "x = 1", {})


def test_inline_code_gets_its_values_as_json_on_stdin_only_when_it_reads_it():
    code = "import sys, json\nresult = json.load(sys.stdin)['a'] * 2"
    assert run_inline_code("s", code, {"a": 21}) == 42
    assert run_inline_code("s", "import sys\nresult = [line for line in sys.stdin]", {}) == ["{}"]
    # A value JSON cannot write (a set, made by an earlier step's code) is no error until read.
    assert run_inline_code("s", "result = sorted(v)", {"v": {2, 1}}) == [1, 2]
    read = "import sys\nresult = sys.stdin.read()"
    with pytest.raises(ToolError, match=r"tool 's.code' failed: .*set is not JSON serializable"):
        run_inline_code("s", read, {"v": {2, 1}})
    with pytest.raises(ToolError, match=r"inline code of step 's' input: .*cannot be written"):
        run_inline_code("s", read, {"v": 10**5000})
