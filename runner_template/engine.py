"""Execute a bundle: the steps of one workflow as a DAG, with timeouts, retries and fallbacks.

Every attempt of a step runs in its own daemon thread and reports to one queue; the scheduler
loop in :meth:`Engine.run` owns all state. A thread cannot be killed, so a step that overruns its
``timeout`` is failed by the scheduler and its thread is abandoned (daemon threads never keep the
process alive). Retries wait with exponential backoff without holding a thread.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from typing import Any

from runner_template.errors import LLMError, RunnerError, StepTimeoutError, ToolError
from runner_template.inputs import prepare_inputs
from runner_template.ollama import DEFAULT_ENDPOINT, OllamaClient
from runner_template.plan import step_dependencies
from runner_template.pytools import run_executable_tool, run_inline_code
from runner_template.references import parse_reference, resolve_mapping_value, resolve_reference
from runner_template.templates import format_value, render

DEFAULT_STEP_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 2
RETRY_BACKOFF_SECONDS = float(os.environ.get("WORKFLOW_RETRY_BACKOFF", "0.5"))
MAX_PARALLEL = int(os.environ.get("WORKFLOW_MAX_PARALLEL", "8"))
LLM_OPTION_KEYS = (
    "temperature",
    "num_predict",
    "seed",
    "top_k",
    "top_p",
    "min_p",
    "stop",
    "num_ctx",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
)


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays one JSON document."""
    print(f"[workflow] {message}", file=sys.stderr, flush=True)


class StepStats:
    """What one step cost, for ``--stats`` and the benchmarks."""

    __slots__ = ("attempts", "llm_server_seconds", "tool", "wall_seconds")

    def __init__(self) -> None:
        self.attempts = 0
        self.wall_seconds = 0.0
        self.llm_server_seconds = 0.0
        self.tool: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class _StepState:
    """The scheduler's bookkeeping for one step (plain class: dataclasses cost import time)."""

    def __init__(self, step: dict[str, Any], tool_id: str | None) -> None:
        self.step = step
        self.tool_id = tool_id
        self.attempt = 0
        self.status = "waiting"  # waiting | running | backoff | done
        self.deadline = 0.0
        self.not_before = 0.0
        self.used_fallback = False
        self.started = 0.0
        self.stats = StepStats()


class Engine:
    """Runs the workflow of one bundle; the bundle format is written by ``rules/shake.py``."""

    def __init__(self, bundle: dict[str, Any], endpoint: str | None = None) -> None:
        self.bundle = bundle
        self.workflow = bundle["workflow"]
        self.tools: dict[str, dict[str, Any]] = bundle.get("tools", {})
        self.endpoint_override = endpoint or os.environ.get("OLLAMA_ENDPOINT") or None
        self.stats: dict[str, StepStats] = {}

    # -- public -----------------------------------------------------------------------------

    def run(self, given_inputs: Any) -> dict[str, Any]:
        """Run every step and return the workflow's outputs object."""
        inputs = prepare_inputs(self.workflow.get("inputs") or {}, given_inputs)
        steps = self.workflow["steps"]
        waits = step_dependencies(steps)
        states = {s["step_id"]: _StepState(s, s.get("tool")) for s in steps}
        outputs: dict[str, dict[str, Any]] = {}
        reports: queue.Queue = queue.Queue()
        started = time.monotonic()

        while len(outputs) < len(steps):
            now = time.monotonic()
            running = sum(1 for st in states.values() if st.status == "running")
            for step_id, state in states.items():
                ready = state.status == "waiting" or (
                    state.status == "backoff" and now >= state.not_before
                )
                if ready and running < MAX_PARALLEL and waits[step_id] <= outputs.keys():
                    self._start(state, inputs, outputs, reports)
                    running += 1
            wake = [st.deadline for st in states.values() if st.status == "running"]
            wake += [st.not_before for st in states.values() if st.status == "backoff"]
            timeout = max(0.0, min(wake) - time.monotonic()) if wake else None
            try:
                step_id, attempt, ok, value = reports.get(timeout=timeout)
            except queue.Empty:
                step_id, attempt, ok, value = None, 0, False, None
            if step_id is not None:
                state = states[step_id]
                if state.status == "running" and state.attempt == attempt:
                    self._settle(state, ok, value, outputs)
            for state in states.values():
                if state.status == "running" and time.monotonic() >= state.deadline:
                    error = StepTimeoutError(
                        f"step '{state.step['step_id']}' did not finish within"
                        f" {self._timeout(state):g} s",
                        state.step["step_id"],
                    )
                    self._settle(state, False, error, outputs)

        log(f"done in {time.monotonic() - started:.3f} s")
        return self._collect_outputs(inputs, outputs)

    # -- scheduling -------------------------------------------------------------------------

    def _timeout(self, state: _StepState) -> float:
        tool = self.tools.get(state.tool_id or "", {})
        return float(state.step.get("timeout") or tool.get("timeout") or DEFAULT_STEP_TIMEOUT)

    def _max_retries(self, step: dict[str, Any]) -> int:
        if not step.get("retry_on_failure"):
            return 0
        return int(step.get("max_retries", DEFAULT_MAX_RETRIES))

    def _start(self, state: _StepState, inputs, outputs, reports: queue.Queue) -> None:
        step = state.step
        state.attempt += 1
        state.status = "running"
        state.deadline = time.monotonic() + self._timeout(state)
        if state.attempt == 1 and not state.used_fallback:
            state.started = time.monotonic()
        state.stats.attempts += 1
        state.stats.tool = state.tool_id
        label = state.tool_id or "inline code"
        log(f"step {step['step_id']}: start ({label}, attempt {state.attempt})")
        attempt, deadline, tool_id = state.attempt, state.deadline, state.tool_id

        def work() -> None:
            try:
                values = {
                    key: resolve_mapping_value(value, inputs, outputs)
                    for key, value in (step.get("input_mapping") or {}).items()
                }
                result = self._execute(step, tool_id, values, deadline, state.stats)
                reports.put((step["step_id"], attempt, True, result))
            except RunnerError as error:
                error.step = error.step or step["step_id"]
                reports.put((step["step_id"], attempt, False, error))
            except LookupError as error:
                reports.put(
                    (step["step_id"], attempt, False, ToolError(str(error), step["step_id"]))
                )
            except Exception as error:  # a bug in the engine, reported as such
                reports.put(
                    (step["step_id"], attempt, False, RunnerError(repr(error), step["step_id"]))
                )

        threading.Thread(target=work, name=f"step-{step['step_id']}", daemon=True).start()

    def _settle(self, state: _StepState, ok: bool, value: Any, outputs) -> None:
        step_id = state.step["step_id"]
        if ok:
            state.status = "done"
            state.stats.wall_seconds = time.monotonic() - state.started
            self.stats[step_id] = state.stats
            outputs[step_id] = {state.step.get("output_name") or "output": value}
            log(f"step {step_id}: done in {state.stats.wall_seconds:.3f} s")
            return
        error: RunnerError = value
        retries = self._max_retries(state.step)
        if state.attempt <= retries:
            pause = RETRY_BACKOFF_SECONDS * 2 ** (state.attempt - 1)
            log(f"step {step_id}: {error.message}; retrying in {pause:g} s")
            state.status, state.not_before = "backoff", time.monotonic() + pause
            return
        fallback = state.step.get("fallback_tool") or self.tools.get(state.tool_id or "", {}).get(
            "fallback_tool"
        )
        if fallback and not state.used_fallback:
            log(f"step {step_id}: {error.message}; falling back to tool '{fallback}'")
            state.tool_id, state.used_fallback, state.attempt = fallback, True, 0
            state.status, state.not_before = "backoff", time.monotonic()
            return
        self.stats[step_id] = state.stats
        raise error

    # -- step kinds -------------------------------------------------------------------------

    def _execute(self, step, tool_id, values, deadline: float, stats: StepStats) -> Any:
        if step["type"] == "python_tool":
            if tool_id is None:
                return run_inline_code(step["step_id"], step["code"], values)
            tool = self.tools[tool_id]
            if tool["kind"] == "llm":  # a fallback may cross kinds
                return self._call_llm(step, tool, values, deadline, stats)
            return run_executable_tool(tool_id, tool["source"], values, step["step_id"])
        tool = self.tools[tool_id]
        if tool["kind"] == "executable":
            return run_executable_tool(tool_id, tool["source"], values, step["step_id"])
        return self._call_llm(step, tool, values, deadline, stats)

    def _endpoint(self, tool: dict[str, Any]) -> str:
        return self.endpoint_override or tool.get("endpoint") or DEFAULT_ENDPOINT

    def _call_llm(self, step, tool, values, deadline: float, stats: StepStats) -> Any:
        template = step.get("prompt_template") or tool.get("prompt_template")
        if template:
            prompt = render(template, values)
        elif len(values) == 1:
            prompt = format_value(next(iter(values.values())))
        else:
            prompt = "\n".join(f"{key}: {format_value(value)}" for key, value in values.items())
        payload: dict[str, Any] = {"model": tool["model"], "prompt": prompt}
        if tool.get("system_prompt"):
            payload["system"] = render(tool["system_prompt"], values)
        options = {key: tool[key] for key in LLM_OPTION_KEYS if tool.get(key) is not None}
        options.update(tool.get("options") or {})
        if options:
            payload["options"] = options
        if tool.get("format") is not None:
            payload["format"] = tool["format"]
        client = OllamaClient(self._endpoint(tool), log=log)
        reply = client.generate(payload, deadline, step["step_id"])
        stats.llm_server_seconds += reply.get("total_duration", 0) / 1e9
        text = reply["response"]
        if tool.get("format") is None:
            return text.strip()
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise LLMError(
                f"model {tool['model']!r} was asked for JSON but replied {text[:80]!r}",
                step["step_id"],
            ) from error

    # -- outputs ----------------------------------------------------------------------------

    def _collect_outputs(self, inputs, outputs) -> dict[str, Any]:
        declared = self.workflow.get("outputs") or {}
        if not declared:
            last = self.workflow["steps"][-1]["step_id"]
            return dict(outputs[last])
        result: dict[str, Any] = {}
        for name, spec in declared.items():
            try:
                result[name] = resolve_reference(
                    parse_reference(spec["source_reference"]), inputs, outputs
                )
            except LookupError as error:
                raise ToolError(f"output '{name}': {error}") from error
        return result
