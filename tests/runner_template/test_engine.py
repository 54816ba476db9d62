import json
import threading
import time

import pytest
from fakes import FakeOllama, ok

from runner_template import engine as engine_module
from runner_template.engine import Engine, RunHandle
from runner_template.errors import CanceledError, InputError, LLMError, StepTimeoutError, ToolError

SLEEPY = (
    "import sys, json, time; d = json.load(sys.stdin); start = time.monotonic();"
    " time.sleep(d.get('sleep', 0.3)); print(json.dumps({'start': start, 'end': time.monotonic()}))"
)
# Fails until it has been called `succeed_on` times; counts calls in a file.
FLAKY = """
import json, pathlib, sys
d = json.load(sys.stdin)
counter = pathlib.Path(d["counter"])
calls = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(calls))
if calls < d["succeed_on"]:
    sys.exit(7)
print(json.dumps(calls))
"""
FAIL = "raise RuntimeError('primary is down')"
ECHO = "import sys, json; print(json.dumps(json.load(sys.stdin)))"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(engine_module, "RETRY_BACKOFF_SECONDS", 0.01)


def make_bundle(steps, tools, inputs=None, outputs=None):
    return {
        "format": 1,
        "workflow": {
            "id": "t",
            "inputs": inputs or {},
            "outputs": outputs or {},
            "steps": steps,
        },
        "tools": {
            name: {"kind": "executable", "source": src} if isinstance(src, str) else src
            for name, src in tools.items()
        },
    }


def test_steps_in_a_parallel_group_overlap_in_time():
    steps = [
        {"step_id": f"s{i}", "type": "python_tool", "tool": "sleepy", "parallel_group": 1}
        for i in range(3)
    ]
    outputs = {f"s{i}": {"source_reference": f"steps.s{i}.output"} for i in range(3)}
    started = time.monotonic()
    result = Engine(make_bundle(steps, {"sleepy": SLEEPY}, outputs=outputs)).run({})
    elapsed = time.monotonic() - started
    assert max(r["start"] for r in result.values()) < min(r["end"] for r in result.values())
    assert elapsed < 0.85  # three 0.3 s steps, not 0.9 s in a row


def test_steps_without_a_group_run_in_written_order():
    steps = [{"step_id": f"s{i}", "type": "python_tool", "tool": "sleepy"} for i in range(2)]
    outputs = {f"s{i}": {"source_reference": f"steps.s{i}.output"} for i in range(2)}
    result = Engine(make_bundle(steps, {"sleepy": SLEEPY}, outputs=outputs)).run({})
    assert result["s0"]["end"] <= result["s1"]["start"]


def test_references_feed_later_steps_and_outputs_walk_into_objects():
    steps = [
        {
            "step_id": "a",
            "type": "python_tool",
            "tool": "echo",
            "input_mapping": {"x": "inputs.x", "n": 3, "lit": {"literal": "inputs.x"}},
            "output_name": "res",
        },
        {
            "step_id": "b",
            "type": "python_tool",
            "code": "result = res['x'] * res['n']",
            "input_mapping": {"res": "steps.a.res"},
        },
    ]
    outputs = {
        "lit": {"source_reference": "steps.a.res.lit"},
        "product": {"source_reference": "steps.b.output"},
    }
    bundle = make_bundle(steps, {"echo": ECHO}, {"x": {"type": "integer"}}, outputs)
    assert Engine(bundle).run({"x": 4}) == {"lit": "inputs.x", "product": 12}


def test_retry_on_failure_retries_with_a_bound(tmp_path):
    step = {
        "step_id": "f",
        "type": "python_tool",
        "tool": "flaky",
        "retry_on_failure": True,
        "max_retries": 2,
        "input_mapping": {"counter": {"literal": str(tmp_path / "n")}, "succeed_on": 3},
    }
    assert Engine(make_bundle([step], {"flaky": FLAKY})).run({}) == {"output": 3}

    step["input_mapping"]["counter"] = {"literal": str(tmp_path / "m")}
    step["max_retries"] = 1
    with pytest.raises(ToolError, match="exited with status 7"):
        Engine(make_bundle([step], {"flaky": FLAKY})).run({})
    assert (tmp_path / "m").read_text() == "2"


def test_no_retry_without_retry_on_failure(tmp_path):
    step = {
        "step_id": "f",
        "type": "python_tool",
        "tool": "flaky",
        "input_mapping": {"counter": {"literal": str(tmp_path / "n")}, "succeed_on": 2},
    }
    with pytest.raises(ToolError):
        Engine(make_bundle([step], {"flaky": FLAKY})).run({})
    assert (tmp_path / "n").read_text() == "1"


def test_fallback_tool_is_used_when_a_tool_fails():
    tools = {
        "primary": {"kind": "executable", "source": FAIL, "fallback_tool": "backup"},
        "backup": ECHO,
    }
    step = {"step_id": "s", "type": "python_tool", "tool": "primary", "input_mapping": {"v": 1}}
    engine = Engine(make_bundle([step], tools))
    handle = RunHandle()
    assert engine.run({}, handle=handle) == {"output": {"v": 1}}
    assert handle.stats["s"].tool == "backup"


def test_statistics_belong_to_each_run_not_to_the_shared_engine():
    """Two runs of one engine at once: each handle has its own run's figures."""
    step = {"step_id": "s", "type": "python_tool", "tool": "sleepy", "input_mapping": {"sleep": 0}}
    engine = Engine(make_bundle([step], {"sleepy": SLEEPY}))
    assert not hasattr(engine, "stats")
    first, second = RunHandle(), RunHandle()
    engine.run({}, handle=first)
    engine.run({}, handle=second)
    assert first.stats["s"] is not second.stats["s"]
    assert first.stats["s"].attempts == second.stats["s"].attempts == 1


def test_a_canceled_run_stops_at_once_and_abandons_its_step():
    step = {
        "step_id": "s",
        "type": "python_tool",
        "tool": "sleepy",
        "input_mapping": {"sleep": 5},
        "timeout": 30,
    }
    engine = Engine(make_bundle([step], {"sleepy": SLEEPY}))
    handle = RunHandle()
    threading.Timer(0.2, handle.cancel).start()
    started = time.monotonic()
    with pytest.raises(CanceledError, match="canceled"):
        engine.run({}, handle=handle)
    assert time.monotonic() - started < 2


def test_failure_without_fallback_names_the_step():
    step = {"step_id": "s", "type": "python_tool", "tool": "primary"}
    with pytest.raises(ToolError, match="primary is down") as caught:
        Engine(make_bundle([step], {"primary": FAIL})).run({})
    assert caught.value.step == "s"


def test_step_timeout_stops_waiting():
    step = {
        "step_id": "slow",
        "type": "python_tool",
        "tool": "sleepy",
        "timeout": 0.3,
        "input_mapping": {"sleep": 5},
    }
    started = time.monotonic()
    with pytest.raises(StepTimeoutError, match=r"within 0\.3 s"):
        Engine(make_bundle([step], {"sleepy": SLEEPY})).run({})
    assert time.monotonic() - started < 2


def test_a_step_run_in_place_reports_its_overrun_on_time():
    # With on_overrun, a Python step runs on the caller's thread; the watchdog reports its
    # overrun from another thread at the deadline, and run() raises the same error after.
    steps = [
        {"step_id": "first", "type": "python_tool", "code": "import threading\nresult = 1"},
        {
            "step_id": "slow",
            "type": "python_tool",
            "tool": "sleepy",
            "timeout": 0.3,
            "input_mapping": {"sleep": 1.5},
            "depends_on": ["first"],
        },
    ]
    caller = threading.current_thread()
    reported: list[tuple[float, object, threading.Thread]] = []
    started = time.monotonic()
    with pytest.raises(StepTimeoutError, match=r"within 0\.3 s") as caught:
        Engine(make_bundle(steps, {"sleepy": SLEEPY})).run(
            {},
            on_overrun=lambda error: reported.append(
                (time.monotonic() - started, error, threading.current_thread())
            ),
        )
    assert time.monotonic() - started >= 1.5  # run() returned when the step did
    [(at, error, thread)] = reported
    assert at < 1.0 and error is caught.value and thread is not caller


def test_steps_with_retries_never_run_in_place():
    step = {"step_id": "s", "type": "python_tool", "code": "result = 1"}
    retried = {**step, "step_id": "r", "retry_on_failure": True}
    engine = Engine(make_bundle([step, retried], {}))
    assert engine.runs_in_place(engine_module._StepState(step, None))
    assert not engine.runs_in_place(engine_module._StepState(retried, None))


def test_a_chain_of_steps_run_in_place_is_known_before_any_run():
    first = {"step_id": "a", "type": "python_tool", "code": "result = 1"}
    second = {"step_id": "b", "type": "python_tool", "code": "result = 2"}
    assert Engine(make_bundle([first, second], {})).in_place_only
    grouped = [{**first, "parallel_group": "g"}, {**second, "parallel_group": "g"}]
    assert not Engine(make_bundle(grouped, {})).in_place_only  # the two run on workers
    retried = {**second, "retry_on_failure": True}
    assert not Engine(make_bundle([first, retried], {})).in_place_only


def test_a_chain_run_in_place_checks_what_the_scheduler_checks():
    # in_place_only runs go step by step on the caller's thread: the same outputs, statistics,
    # cancelation, deadline and first failure as the scheduler's loop.
    def code(step_id: str, source: str, mapping: dict, after: list[str]) -> dict:
        step = {"step_id": step_id, "type": "python_tool", "code": source}
        return {**step, "input_mapping": mapping, "depends_on": after}

    steps = [
        code("a", "result = n + 1", {"n": "inputs.n"}, []),
        code("b", "result = a * 2", {"a": "steps.a.output"}, ["a"]),
        code("c", "result = 1 / (a - 4)", {"a": "steps.a.output"}, ["b"]),
    ]
    engine = Engine(make_bundle(steps, {}, {"n": {"type": "number", "required": True}}))
    assert engine.in_place_only
    quiet = lambda error: None  # noqa: E731
    handle = RunHandle()
    assert engine.run({"n": 1}, on_overrun=quiet, handle=handle) == engine.run({"n": 1})
    assert [(k, v.attempts) for k, v in handle.stats.items()] == [("a", 1), ("b", 1), ("c", 1)]
    with pytest.raises(ToolError, match="division by zero") as caught:
        engine.run({"n": 3}, on_overrun=quiet, handle=(failed := RunHandle()))
    assert caught.value.step == "c" and set(failed.stats) == {"a", "b", "c"}
    canceled = RunHandle()
    canceled.cancel()
    with pytest.raises(CanceledError):
        engine.run({"n": 1}, on_overrun=quiet, handle=canceled)
    assert canceled.stats == {}
    with pytest.raises(StepTimeoutError, match="deadline"):
        engine.run({"n": 1}, on_overrun=quiet, deadline=time.monotonic() - 1)


def test_bad_inputs_fail_before_any_step():
    bundle = make_bundle(
        [{"step_id": "s", "type": "python_tool", "code": "result = 1"}],
        {},
        {"x": {"type": "string", "required": True}},
    )
    with pytest.raises(InputError, match="missing required input 'x'"):
        Engine(bundle).run({})


def llm_tool(**extra):
    return {
        "kind": "llm",
        "model": "m",
        "system_prompt": "Be {tone}.",
        "temperature": 0,
        "num_predict": 20,
        "seed": 1,
        **extra,
    }


def test_llm_step_sends_prompt_system_and_options():
    fake = FakeOllama(lambda n, body: ok("  the answer  "))
    step = {
        "step_id": "ask",
        "type": "llm_call",
        "tool": "llm",
        "prompt_template": 'About {topic}, reply {"k": 1}',
        "input_mapping": {"topic": "inputs.topic", "tone": {"literal": "brief"}},
        "output_name": "answer",
    }
    bundle = make_bundle([step], {"llm": llm_tool()}, {"topic": {"type": "string"}})
    try:
        result = Engine(bundle, endpoint=fake.url).run({"topic": "cats"})
    finally:
        fake.close()
    assert result == {"answer": "the answer"}
    sent = fake.requests[0]
    assert sent["prompt"] == 'About cats, reply {"k": 1}'
    assert sent["system"] == "Be brief."
    assert sent["options"] == {"temperature": 0, "num_predict": 20, "seed": 1}
    assert sent["stream"] is False


def test_llm_json_format_is_parsed_and_bad_json_is_an_error():
    fake = FakeOllama(lambda n, body: ok('{"a": 1}') if n == 1 else ok("not json"))
    step = {"step_id": "j", "type": "llm_call", "tool": "llm", "input_mapping": {"x": 1}}
    bundle = make_bundle([step], {"llm": llm_tool(format="json")})
    try:
        assert Engine(bundle, endpoint=fake.url).run({}) == {"output": {"a": 1}}
        assert fake.requests[0]["format"] == "json"
        assert fake.requests[0]["prompt"] == "1"
        with pytest.raises(LLMError, match="asked for JSON"):
            Engine(bundle, endpoint=fake.url).run({})
    finally:
        fake.close()


def test_tool_prompt_template_is_used_when_the_step_has_none():
    fake = FakeOllama(lambda n, body: ok(json.dumps(body["prompt"])))
    step = {
        "step_id": "s",
        "type": "llm_call",
        "tool": "llm",
        "input_mapping": {"text": "inputs.t"},
    }
    bundle = make_bundle(
        [step], {"llm": llm_tool(prompt_template="Summarize: {text}")}, {"t": {"type": "string"}}
    )
    try:
        assert Engine(bundle, endpoint=fake.url).run({"t": "x"}) == {"output": '"Summarize: x"'}
    finally:
        fake.close()


# -- bounds on time -----------------------------------------------------------------------------


def test_a_step_deadline_bounds_retries_and_fallback(monkeypatch, tmp_path):
    monkeypatch.setattr(engine_module, "RETRY_BACKOFF_SECONDS", 0.2)
    tools = {
        "slow_fail": {
            "kind": "executable",
            "source": "import time; time.sleep(0.2); raise SystemExit(3)",
            "fallback_tool": "sleepy",
        },
        "sleepy": SLEEPY,
    }
    step = {
        "step_id": "s",
        "type": "python_tool",
        "tool": "slow_fail",
        "retry_on_failure": True,
        "max_retries": 10,
        "timeout": 0.5,
        "deadline": 1.5,
        "input_mapping": {"sleep": 5},
    }
    started = time.monotonic()
    with pytest.raises(StepTimeoutError, match=r"deadline of 1\.5 s"):
        Engine(make_bundle([step], tools)).run({})
    assert time.monotonic() - started < 2.5


def test_the_default_step_deadline_is_twice_the_timeout():
    step = {
        "step_id": "s",
        "type": "python_tool",
        "tool": "fail",
        "retry_on_failure": True,
        "max_retries": 10,
        "timeout": 0.2,
    }
    tools = {"fail": "import time; time.sleep(0.15); raise SystemExit(1)"}
    started = time.monotonic()
    with pytest.raises((ToolError, StepTimeoutError)):
        Engine(make_bundle([step], tools)).run({})
    assert time.monotonic() - started < 0.6  # not 11 attempts of 0.15 s


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300, -5, "soon", True])
def test_unusable_timeouts_fall_back_to_the_default(value):
    step = {"step_id": "s", "type": "python_tool", "code": "result = 1", "timeout": value}
    assert Engine(make_bundle([step], {})).run({}) == {"output": 1}


def test_a_run_deadline_stops_the_whole_run():
    step = {"step_id": "s", "type": "python_tool", "tool": "sleepy", "input_mapping": {"sleep": 5}}
    started = time.monotonic()
    with pytest.raises(StepTimeoutError):
        Engine(make_bundle([step], {"sleepy": SLEEPY})).run({}, deadline=time.monotonic() + 0.3)
    assert time.monotonic() - started < 1.5


def test_tool_level_retry_on_failure_applies(tmp_path):
    tools = {"flaky": {"kind": "executable", "source": FLAKY, "retry_on_failure": True}}
    step = {
        "step_id": "f",
        "type": "python_tool",
        "tool": "flaky",
        "input_mapping": {"counter": {"literal": str(tmp_path / "n")}, "succeed_on": 2},
    }
    assert Engine(make_bundle([step], tools)).run({}) == {"output": 2}


# -- events ---------------------------------------------------------------------------------------


def test_events_report_steps_and_tokens():
    lines = [{"response": "Hi", "done": False}, {"response": "!", "done": True}]
    body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    fake = FakeOllama(lambda n, _: (200, body, 0))
    steps = [
        {"step_id": "a", "type": "python_tool", "code": "result = 2"},
        {"step_id": "b", "type": "llm_call", "tool": "llm", "input_mapping": {"x": 1}},
    ]
    events = []
    try:
        result = Engine(make_bundle(steps, {"llm": llm_tool()}), endpoint=fake.url).run(
            {}, on_event=events.append
        )
    finally:
        fake.close()
    assert result == {"output": "Hi!"}
    kinds = [(e["event"], e["step"]) for e in events]
    assert kinds == [
        ("step_started", "a"),
        ("step_finished", "a"),
        ("step_started", "b"),
        ("token", "b"),
        ("token", "b"),
        ("step_finished", "b"),
    ]
    assert all(e["seconds"] >= 0 for e in events if e["event"] == "step_finished")


# -- sub-workflows and API tools ------------------------------------------------------------------


def child_bundle_part():
    return {
        "workflow": {
            "id": "child",
            "inputs": {"n": {"type": "integer", "required": True}},
            "outputs": {"double": {"source_reference": "steps.d.output"}},
            "steps": [
                {
                    "step_id": "d",
                    "type": "python_tool",
                    "code": "result = n * 2",
                    "input_mapping": {"n": "inputs.n"},
                },
            ],
        },
        "tools": {},
    }


def test_sub_workflow_runs_the_child_with_mapped_inputs():
    steps = [
        {
            "step_id": "c1",
            "type": "sub_workflow",
            "workflow": "child@1",
            "input_mapping": {"n": "inputs.x"},
            "output_name": "res",
            "parallel_group": 1,
        },
        {
            "step_id": "c2",
            "type": "sub_workflow",
            "workflow": "child@1",
            "input_mapping": {"n": 10},
            "output_name": "res",
            "parallel_group": 1,
        },
    ]
    outputs = {
        "a": {"source_reference": "steps.c1.res.double"},
        "b": {"source_reference": "steps.c2.res"},
    }
    bundle = make_bundle(steps, {}, {"x": {"type": "integer"}}, outputs)
    bundle["workflows"] = {"child@1": child_bundle_part()}
    events = []
    assert Engine(bundle).run({"x": 4}, on_event=events.append) == {"a": 8, "b": {"double": 20}}
    assert ("step_finished", "c1/d") in [(e["event"], e["step"]) for e in events]


def test_a_failing_child_names_the_parent_step_and_the_child():
    steps = [
        {
            "step_id": "c",
            "type": "sub_workflow",
            "workflow": "child@1",
            "input_mapping": {"n": {"literal": "not a number"}},
        }
    ]
    bundle = make_bundle(steps, {})
    bundle["workflows"] = {"child@1": child_bundle_part()}
    with pytest.raises(ToolError, match="sub-workflow 'child': input 'n' must be of type integer"):
        Engine(bundle).run({})


def test_api_tool_makes_the_described_call(monkeypatch):
    monkeypatch.setenv("API_TOKEN", "t0k")
    fake = FakeOllama(lambda n, body: (200, json.dumps({"got": body}).encode(), 0))
    tool = {
        "kind": "api",
        "api_spec": {
            "method": "POST",
            "url": fake.url + "/items/{name}?q={query}",
            "headers": {"Authorization": "Bearer ${API_TOKEN}"},
            "body": {"count": "{n}", "label": "item {name}"},
        },
    }
    step = {
        "step_id": "call",
        "type": "python_tool",
        "tool": "api",
        "input_mapping": {"name": {"literal": "a b/c"}, "query": {"literal": "x&y"}, "n": 3},
    }
    try:
        result = Engine(make_bundle([step], {"api": tool})).run({})
    finally:
        fake.close()
    assert result == {"output": {"got": {"count": 3, "label": "item a b/c"}}}
    assert fake.paths == ["/items/a%20b%2Fc?q=x%26y"]
    assert fake.headers[0]["Authorization"] == "Bearer t0k"


def test_api_tool_errors_are_tool_failures(monkeypatch):
    monkeypatch.delenv("API_TOKEN", raising=False)
    tool = {
        "kind": "api",
        "api_spec": {"url": "http://127.0.0.1:9/x", "headers": {"X": "${API_TOKEN}"}},
    }
    step = {"step_id": "call", "type": "python_tool", "tool": "api"}
    with pytest.raises(ToolError, match="environment variable API_TOKEN is not set"):
        Engine(make_bundle([step], {"api": tool})).run({})
    fake = FakeOllama(lambda n, body: (404, b"no such item", 0))
    tool = {"kind": "api", "api_spec": {"method": "POST", "url": fake.url + "/x"}}
    try:
        with pytest.raises(ToolError, match="answered HTTP 404: no such item"):
            Engine(make_bundle([step], {"api": tool})).run({})
    finally:
        fake.close()


def test_the_watchdog_fires_each_entry_once_unless_unwatched_first():
    # watch() and unwatch() take no lock: whoever pops an entry owns it.
    watchdog = engine_module._Watchdog()
    fired: list[tuple[str, float]] = []
    done = threading.Event()

    def fire(name: str) -> None:
        fired.append((name, time.monotonic()))
        if name == "late":
            done.set()

    now = time.monotonic()
    later = watchdog.watch(now + 2.3, fire, "late")
    kept = watchdog.watch(now + 2.0, fire, "kept")
    time.sleep(0.05)  # asleep until 2 s from now: an earlier deadline watched wakes it
    early = watchdog.watch(now + 0.1, fire, "soon")
    assert watchdog.unwatch(kept)  # never fires
    assert done.wait(10)
    assert [name for name, _ in fired] == ["soon", "late"]
    assert fired[0][1] - now < 1.5 and fired[1][1] - now >= 2.3  # "soon" did not wait for 2 s
    assert not watchdog.unwatch(early) and not watchdog.unwatch(later)  # taken by the watchdog
    assert not watchdog.unwatch(kept)


def test_an_entry_watched_while_the_watchdog_looks_still_wakes_it():
    """The watchdog copies its entries, then sleeps until the earliest; an entry watched just
    after the copy must wake it again. It did not when the watchdog's mark for "looking" made
    :meth:`watch` skip the wake-up: the entry fired when the watchdog next woke by itself
    (here 30 s late). The copy below lets the other watcher in at exactly that point."""
    watchdog = engine_module._Watchdog()
    fired = threading.Event()
    first_copy = threading.Event()

    class Entries(dict):
        def items(self):
            copy = list(super().items())
            if not first_copy.is_set():
                first_copy.set()
                late = threading.Thread(
                    target=watchdog.watch, args=(time.monotonic() + 0.1, fired.set)
                )
                late.start()
                late.join(0.3)  # it read the mark (and now waits for the lock, or returned)
            return copy

    watchdog._entries = Entries()
    watchdog.watch(time.monotonic() + 30, lambda: None)  # starts the watchdog: it looks
    assert fired.wait(10)
