"""Execute a bundle: the steps of one workflow as a DAG, with timeouts, retries and fallbacks.

Every attempt of a step runs on a worker thread (daemon threads, reused); the run's state is
guarded by one lock in :class:`_Run`, and the worker that finishes an attempt goes on with the
next ready step itself, while the caller's thread watches the clock. A thread cannot be killed,
so a step that overruns its ``timeout`` is failed by the caller's thread and its worker is
abandoned (daemon threads never keep the process alive). Retries wait with exponential
backoff without holding a thread.
Where CPython has no threads (Pyodide in a browser), an attempt runs in place instead, to its
end: a parallel group's steps then run one after another, with the same results and errors.

Time is bounded three ways: an attempt by the step's ``timeout``; the whole step (attempts,
backoff pauses and the fallback) by its ``deadline`` (default twice the timeout); the whole run by
the caller's ``deadline`` (``--serve`` gives each request one). All three are clamped to finite
maxima, so no workflow file can make a step wait forever or spin.

Steps call an LLM (``llm_call``), run Python (``python_tool``: a tool's code or inline ``code``),
call an HTTP API (a tool of kind ``api``) or run a child workflow of the bundle
(``sub_workflow``), each in the same way: mapped values in, one value out.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from runner_template.bundle_format import LLM_OPTION_KEYS
from runner_template.errors import (
    CanceledError,
    InputError,
    LLMError,
    RunnerError,
    StepTimeoutError,
    ToolError,
)
from runner_template.inputs import InputRules
from runner_template.jsonsafe import JSONLimitError, check_tree
from runner_template.plan import step_dependencies
from runner_template.pytools import run_executable_tool, run_inline_code
from runner_template.references import Mapping, MappingError
from runner_template.templates import format_value, render
from runner_template.threads import start_daemon

Event = dict[str, Any]
EventSink = Callable[[Event], None]

DEFAULT_STEP_TIMEOUT = 120.0
MAX_STEP_TIMEOUT = 3600.0
MAX_STEP_DEADLINE = 7200.0
DEFAULT_MAX_RETRIES = 2
MAX_RETRIES = 10
BACKOFF_CAP_SECONDS = 10.0


def _env_number(name: str, default: float, low: float, high: float) -> float:
    """A numeric setting from the environment, clamped; a bad value means the default."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return min(max(value, low), high) if math.isfinite(value) else default


RETRY_BACKOFF_SECONDS = _env_number("WORKFLOW_RETRY_BACKOFF", 0.5, 0.0, BACKOFF_CAP_SECONDS)
MAX_PARALLEL = int(_env_number("WORKFLOW_MAX_PARALLEL", 8, 1, 256))


def _has_threads() -> bool:
    """False in CPython builds without threads (Pyodide in a browser: WebAssembly, no pthreads)."""
    info = getattr(sys, "_emscripten_info", None)
    return info is None or bool(info.pthreads)


# Without threads every attempt runs in place, to its end, when the scheduler starts it: steps of
# a parallel group run one after another, in the order written, with the same results and errors.
THREADS = _has_threads()

QUIET = False  # batch and serve set it: thousands of runs, one line each, not one per step


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays one JSON document."""
    if not QUIET:
        print(f"[workflow] {message}", file=sys.stderr, flush=True)


def finite_seconds(value: Any, default: float, maximum: float) -> float:
    """A positive, finite number of seconds from a bundle value, never above ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    if not math.isfinite(value) or value <= 0:
        return default
    return min(float(value), maximum)


class _Workers:
    """Threads for step attempts, reused: starting a thread cost a fifth of a small run's CPU.

    A job goes to an idle worker, else to a new one. A worker whose job overran is simply never
    back (abandoned, like the thread it replaces); an idle worker ends after
    :data:`IDLE_SECONDS`, and at most :data:`MAX_IDLE` wait, so the pool stays small.
    """

    IDLE_SECONDS = 30.0
    MAX_IDLE = 32

    def __init__(self) -> None:
        self._idle: list[queue.SimpleQueue] = []
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is not None:
            inbox.put(job)
            return
        inbox = queue.SimpleQueue()
        inbox.put(job)
        start_daemon(self._serve, inbox, name="step")

    def _serve(self, inbox: queue.SimpleQueue) -> None:
        while True:
            try:
                job = inbox.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                job = inbox.get()  # handed a job just as the wait ended
            job()
            with self._lock:
                if len(self._idle) >= self.MAX_IDLE:
                    return
                self._idle.append(inbox)


_WORKERS = _Workers()


class _Watchdog:
    """One thread that fails, on time, attempts run on their caller's own thread (see
    :meth:`Engine.run`'s ``on_overrun``): ``fire(*args)`` is called when ``deadline`` passes
    first.

    It sleeps until the earliest deadline it watches (with none, for :data:`IDLE_SECONDS`)
    and is woken only for an earlier one, so a service whose attempts take microseconds under
    a timeout of seconds wakes it about once a timeout, not once a request. :meth:`watch` and
    :meth:`unwatch` take no lock on that path (two lock holds a step were a tenth of a chain's
    bookkeeping): an entry is set and popped whole under the GIL, and whoever pops it, the
    watchdog or :meth:`unwatch`, owns it, so a popped entry either fires or is known not to.
    While the watchdog looks for due entries its :attr:`_wake_at` is infinity, so an entry
    watched meanwhile, which its copy of the entries may have missed, always wakes it: every
    deadline is earlier, so :meth:`watch` takes the lock, which it gets once the watchdog is
    asleep again, and wakes it.
    """

    IDLE_SECONDS = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._entries: dict[int, tuple[float, Callable[..., None], tuple]] = {}
        self._tokens = itertools.count()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, fire: Callable[..., None], *args: Any) -> int:
        token = next(self._tokens)
        self._entries[token] = (deadline, fire, args)
        if deadline < self._wake_at:  # it would sleep past this one (or it is looking)
            with self._lock:
                if self._thread is None:
                    self._thread = start_daemon(self._serve, name="watchdog")
                else:
                    self._cond.notify()
        return token

    def unwatch(self, token: int) -> bool:
        """Stop watching; True if the entry had not fired (nor will it ever), False when the
        watchdog took it first (its ``fire`` has been or is being called)."""
        return self._entries.pop(token, None) is not None

    def _serve(self) -> None:
        while True:
            with self._cond:
                self._wake_at = math.inf  # see the class docstring
                now = time.monotonic()
                while True:
                    try:  # a copy made while another thread watches is tried again
                        entries = list(self._entries.items())
                        break
                    except RuntimeError:
                        continue
                fired, wake_at = [], now + self.IDLE_SECONDS
                for token, (at, _fire, _args) in entries:
                    if at > now:
                        wake_at = min(wake_at, at)
                        continue
                    entry = self._entries.pop(token, None)
                    if entry is not None:  # not unwatched meanwhile: it is ours to fire
                        fired.append(entry)
                self._wake_at = wake_at
                if not fired:
                    self._cond.wait(wake_at - now)
                    continue
            for _at, fire, args in fired:
                try:
                    fire(*args)
                except Exception as error:  # the watchdog never dies
                    log(f"watchdog: {error!r}")


_WATCHDOG = _Watchdog()


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
    """The scheduler's bookkeeping for one step (plain class: dataclasses cost import time).

    ``mapping``, ``timeout`` (of an attempt, with ``tool_id``), ``budget`` (the step's
    deadline from its first start) and ``output`` (the name of its output) are the same for
    every run: :meth:`Engine.new_states` works them out once per engine."""

    __slots__ = (
        "attempt", "attempt_deadline", "budget", "mapping", "not_before", "output", "started",
        "stats", "status", "step", "step_deadline", "timeout", "tool_id", "used_fallback",
    )  # fmt: skip

    def __init__(
        self,
        step: dict[str, Any],
        tool_id: str | None,
        mapping: Mapping | None = None,
        timeout: float = DEFAULT_STEP_TIMEOUT,
        budget: float = 2 * DEFAULT_STEP_TIMEOUT,
        output: str | None = None,
    ) -> None:
        self.step = step
        self.tool_id = tool_id
        self.mapping = mapping
        self.timeout = timeout
        self.budget = budget
        self.output = output or step.get("output_name") or "output"
        self.attempt = 0
        self.status = "waiting"  # waiting | running | backoff | done
        self.attempt_deadline = 0.0
        self.step_deadline = 0.0
        self.not_before = 0.0
        self.used_fallback = False
        self.started = 0.0
        self.stats = StepStats()


class Observer:
    """What a run tells about itself as it goes (serve's metrics: ``serve.metrics``), from the
    scheduler's and the steps' threads. This one listens to nothing."""

    def note(self, kind: str, **facts: Any) -> None:
        """``step_retry`` (``step``), ``llm_call`` (``model``, ``outcome``), ``llm_retry``
        (``model``), ``llm_tokens`` (``model``; ``into``/``out``: the prompt's and the
        reply's, None if unknown)."""

    def step(self, step: str, outcome: str, seconds: float) -> None:
        """A step ended, ``ok`` or with its error type, ``seconds`` after its first start
        (a method of its own: every step of every run calls it)."""


class RunHandle:
    """What a caller holds of one run: its per-step statistics and a way to cancel it.

    Per-run state belongs to the run, not to the :class:`Engine` (``serve`` shares one engine
    across threads). :meth:`cancel` may be called from any thread, before or during the run:
    the scheduler stops at once with a :class:`CanceledError`, and the steps' threads (an LLM
    call waiting for its reply included) are abandoned, like a step that overran its time.
    """

    def __init__(self, observer: Observer | None = None) -> None:
        self.stats: dict[str, StepStats] = {}
        self.observer = observer  # told what the run does (see Observer)
        # Tokens in (prompts) and out (replies) of the run's LLM calls, sub-workflows' included,
        # as the LLM servers count them (0 when a server does not say): the OpenAI face's usage.
        self.usage = [0, 0]
        self._canceled = False  # set once, under the lock; read without it
        self._wake: queue.SimpleQueue | None = None
        self._children: list[RunHandle] = []
        self._lock = threading.Lock()
        self._usage_lock = self._lock  # a sub-workflow's handle takes its parent's (child())

    @property
    def canceled(self) -> bool:
        return self._canceled

    def cancel(self) -> None:
        with self._lock:
            self._canceled = True
            if self._wake is not None:
                self._wake.put(None)  # wakes the scheduler from its wait for a report
            children = list(self._children)
        for child in children:
            child.cancel()

    def note(self, kind: str, **facts: Any) -> None:
        if self.observer is not None:
            self.observer.note(kind, **facts)

    def count_tokens(self, into: int | None, out: int | None) -> None:
        with self._usage_lock:
            self.usage[0] += into or 0
            self.usage[1] += out or 0

    def child(self) -> RunHandle:
        """The handle of a sub-workflow's run: canceled with this one, observed by the same,
        its tokens counted in this run's usage."""
        handle = RunHandle(self.observer)
        handle.usage, handle._usage_lock = self.usage, self._usage_lock
        with self._lock:
            self._children.append(handle)
        if self.canceled:
            handle.cancel()
        return handle

    def _attach(self, reports: queue.SimpleQueue) -> None:
        with self._lock:
            self._wake = reports
            if self._canceled:
                reports.put(None)


class Engine:
    """Runs the workflow of one bundle; the bundle format is written by ``rules/stages/shake.py``.

    ``workflow_key`` selects a child workflow of the bundle (``sub_workflow`` steps use it).
    An engine holds no per-run state: one engine can run many inputs at once (batch, serve);
    what a run measures is in its :class:`RunHandle`.
    """

    def __init__(
        self,
        bundle: dict[str, Any],
        endpoint: str | None = None,
        provider: str | None = None,
        workflow_key: str | None = None,
    ) -> None:
        self.bundle = bundle
        part = bundle if workflow_key is None else bundle["workflows"][workflow_key]
        self.key = workflow_key
        self.workflow: dict[str, Any] = part["workflow"]
        self.tools: dict[str, dict[str, Any]] = part.get("tools", {})
        self.endpoint_override = endpoint or os.environ.get("OLLAMA_ENDPOINT") or None
        self.provider_override = provider or os.environ.get("LLM_PROVIDER") or None
        # The DAG is the same for every run: computed once (it was a tenth of a small run's CPU).
        self.waits = step_dependencies(self.workflow["steps"])
        self._timeouts: dict[tuple[str, str | None], float] = {}  # see timeout()
        self._budgets: dict[tuple[str, str | None], float] = {}  # see step_budget()
        self._outputs: Mapping | None = None  # see collect_outputs()
        self._input_rules: InputRules | None = None  # see run()
        self._in_place: dict[tuple[str, str | None], bool] = {}  # see runs_in_place()
        self._plans: list[tuple] | None = None  # see new_states()
        # Every run with ``on_overrun`` is a chain of steps run in place on the caller's thread,
        # which then never waits for a worker: serve's /invoke takes a fair turn for those.
        self.in_place_only = THREADS and self._chain_in_place()

    # -- public -----------------------------------------------------------------------------

    def run(
        self,
        given_inputs: Any,
        deadline: float | None = None,
        on_event: EventSink | None = None,
        handle: RunHandle | None = None,
        on_overrun: Callable[[RunnerError], None] | None = None,
    ) -> dict[str, Any]:
        """Run every step and return the workflow's outputs object.

        ``deadline`` (``time.monotonic()``) bounds the whole run; ``on_event`` receives
        ``step_started``/``step_finished``/``token`` events (from several threads); ``handle``
        receives the run's statistics and can cancel it.

        With ``on_overrun``, a Python step whose failure is final (no retries, no fallback)
        and that is the only one running runs on the caller's own thread, without the two
        hand-overs between threads that a worker costs (about a third of a small run's CPU
        under ``serve``). If it overruns its time, ``on_overrun(error)`` is called at once,
        from another thread, while the caller's thread is still inside the step (a thread
        cannot be stopped); ``run`` raises that same error when the step returns, if ever.
        The caller answers its client from ``on_overrun``; ``serve``'s ``/invoke`` does.
        """
        rules = self._input_rules
        if rules is None:  # the same for every run: read once (at the first, as before)
            rules = self._input_rules = InputRules(self.workflow.get("inputs") or {})
        inputs = rules.prepare(given_inputs)
        handle = handle or RunHandle()
        run = _Run(self, inputs, deadline, on_event, handle, on_overrun)
        try:
            return run.execute()
        except BaseException:
            # The run failed (a step overran, say) and its steps' threads are abandoned: a
            # canceled handle makes a streaming LLM call among them stop at its next token.
            handle.cancel()
            raise

    # -- step kinds (called from step threads) ----------------------------------------------

    def timeout(self, state: _StepState) -> float:
        key = (state.step["step_id"], state.tool_id)
        seconds = self._timeouts.get(key)
        if seconds is None:  # the same for every run: worked out once per step and tool
            tool = self.tools.get(state.tool_id or "", {})
            value = state.step.get("timeout") or tool.get("timeout")
            seconds = finite_seconds(value, DEFAULT_STEP_TIMEOUT, MAX_STEP_TIMEOUT)
            self._timeouts[key] = seconds
        return seconds

    def runs_in_place(self, state: _StepState) -> bool:
        """Whether the step may run on the caller's thread (see :meth:`run`): Python code
        whose overrun ends the run (no retries, no fallback); not an LLM call, an HTTP call
        or a sub-workflow, which wait on the network or stream."""
        key = (state.step["step_id"], state.tool_id)
        found = self._in_place.get(key)
        if found is None:
            step = state.step
            tool = self.tools.get(state.tool_id or "")
            found = (
                step["type"] == "python_tool"
                and (tool is None or tool.get("kind") not in ("llm", "api"))
                and self.max_retries(state) == 0
                and not (step.get("fallback_tool") or (tool or {}).get("fallback_tool"))
            )
            self._in_place[key] = found
        return found

    def _chain_in_place(self) -> bool:
        """Whether each step waits for every step before it and runs in place."""
        earlier: set[str] = set()
        for step in self.workflow["steps"]:
            step_id = step["step_id"]
            if not self.waits[step_id] >= earlier:
                return False
            if not self.runs_in_place(_StepState(step, step.get("tool"))):
                return False
            earlier.add(step_id)
        return True

    def new_states(self) -> dict[str, _StepState]:
        """A run's bookkeeping for each step, by step id, in the workflow's order; what is the
        same for every run (the input mapping parsed, the timeout and the step's deadline) is
        worked out at the first run and kept."""
        plans = self._plans
        if plans is None:
            plans = []
            for step in self.workflow["steps"]:
                state = _StepState(step, step.get("tool"))
                mapping = Mapping((step.get("input_mapping") or {}).items())
                timeout, budget = self.timeout(state), self.step_budget(state)
                plan = (step, state.tool_id, mapping, timeout, budget, state.output)
                plans.append((step["step_id"], plan))
            self._plans = plans
        return {step_id: _StepState(*plan) for step_id, plan in plans}

    def step_budget(self, state: _StepState) -> float:
        """The step's overall deadline, in seconds from its first start (worked out once)."""
        key = (state.step["step_id"], state.tool_id)
        seconds = self._budgets.get(key)
        if seconds is None:
            default = min(2 * self.timeout(state), MAX_STEP_DEADLINE)
            seconds = finite_seconds(state.step.get("deadline"), default, MAX_STEP_DEADLINE)
            self._budgets[key] = seconds
        return seconds

    def max_retries(self, state: _StepState) -> int:
        step = state.step
        tool = self.tools.get(step.get("tool") or "", {})
        retry = step.get("retry_on_failure")
        if retry is None:
            retry = tool.get("retry_on_failure")
        if not retry:
            return 0
        value = step.get("max_retries", DEFAULT_MAX_RETRIES)
        if isinstance(value, bool) or not isinstance(value, int):
            return DEFAULT_MAX_RETRIES
        return min(max(value, 0), MAX_RETRIES)

    def execute(
        self, step, tool_id, values, deadline: float, stats: StepStats, emit, handle: RunHandle
    ) -> Any:
        step_id = step["step_id"]
        if step["type"] == "sub_workflow" and tool_id is None:
            return self._sub_workflow(step, values, deadline, emit, handle)
        if tool_id is None:
            return run_inline_code(step_id, step["code"], values)
        tool = self.tools[tool_id]
        kind = tool["kind"]
        if kind == "llm":
            return self._call_llm(step, tool, values, deadline, stats, emit, handle)
        if kind == "api":
            from runner_template.api_tools import call_api  # the HTTP stack: see _call_llm

            return call_api(tool_id, tool["api_spec"], values, deadline, step_id)
        return run_executable_tool(tool_id, tool["source"], values, step_id)

    def _sub_workflow(self, step, values, deadline: float, emit, handle: RunHandle) -> Any:
        step_id = step["step_id"]
        child = Engine(
            self.bundle,
            endpoint=self.endpoint_override,
            provider=self.provider_override,
            workflow_key=step["workflow"],
        )
        name = child.workflow.get("id", step["workflow"])

        def forward(event: Event) -> None:
            if emit is not None:
                emit({**event, "step": f"{step_id}/{event.get('step')}"})

        try:
            return child.run(
                values, deadline=deadline, on_event=forward if emit else None, handle=handle.child()
            )
        except InputError as error:  # the parent's wiring, not the caller's inputs
            raise ToolError(f"sub-workflow '{name}': {error.message}", step_id) from None
        except RunnerError as error:
            error.message = f"sub-workflow '{name}': {error.message}"
            error.step = f"{step_id}/{error.step}" if error.step else step_id
            raise

    def _endpoint(self, tool: dict[str, Any]) -> str:
        from runner_template.llm import DEFAULT_ENDPOINT

        return self.endpoint_override or tool.get("endpoint") or DEFAULT_ENDPOINT

    def _call_llm(
        self, step, tool, values, deadline: float, stats: StepStats, emit, handle: RunHandle
    ) -> Any:
        # Imported at the first LLM step, not with the engine: the HTTP stack (http.client,
        # socket, urllib.parse, ipaddress, ...) was a third of the program's imports at start,
        # and a workflow of Python steps, --describe and --schema never use it.
        from runner_template.llm import LLMClient, LLMRequest

        template = step.get("prompt_template") or tool.get("prompt_template")
        if template:
            prompt = render(template, values)
        elif len(values) == 1:
            prompt = format_value(next(iter(values.values())))
        else:
            prompt = "\n".join(f"{key}: {format_value(value)}" for key, value in values.items())
        options = {key: tool[key] for key in LLM_OPTION_KEYS if tool.get(key) is not None}
        options.update(tool.get("options") or {})
        system = render(tool["system_prompt"], values) if tool.get("system_prompt") else None
        ask = LLMRequest(tool["model"], prompt, system, options, tool.get("format"))
        model = tool["model"]

        def retried(message: str) -> None:  # the client logs each retry once
            handle.note("llm_retry", model=model)
            log(message)

        client = LLMClient(
            self._endpoint(tool),
            provider=self.provider_override or tool.get("provider") or "ollama",
            api_key_env=tool.get("api_key_env"),
            log=retried,
        )
        on_token = None
        if emit is not None:
            step_id = step["step_id"]

            def on_token(piece: str) -> None:
                if handle.canceled:  # the run is over: stop reading, close the LLM connection
                    raise CanceledError("the run was canceled while the model streamed", step_id)
                emit({"event": "token", "step": step_id, "text": piece})

        try:
            reply = client.generate(ask, deadline, step["step_id"], on_token)
        except RunnerError as error:
            handle.note("llm_call", model=model, outcome=error.error_type)
            raise
        handle.note("llm_call", model=model, outcome="ok")
        if reply.tokens_in is not None or reply.tokens_out is not None:
            handle.note("llm_tokens", model=model, into=reply.tokens_in, out=reply.tokens_out)
            handle.count_tokens(reply.tokens_in, reply.tokens_out)
        stats.llm_server_seconds += reply.server_seconds
        if tool.get("format") is None:
            return reply.text.strip()
        try:
            return json.loads(reply.text)
        except (ValueError, RecursionError) as error:  # ValueError: also a number too long
            raise LLMError(
                f"model {tool['model']!r} was asked for JSON but replied {reply.text[:80]!r}",
                step["step_id"],
            ) from error

    # -- outputs ----------------------------------------------------------------------------

    def collect_outputs(self, inputs, outputs) -> dict[str, Any]:
        """The declared outputs (else the last step's), checked to be writable as JSON."""
        declared = self.workflow.get("outputs") or {}
        if not declared:
            last = self.workflow["steps"][-1]["step_id"]
            result = dict(outputs[last])
        else:
            if self._outputs is None:  # the same for every run: parsed once
                self._outputs = Mapping(
                    ((name, spec["source_reference"]) for name, spec in declared.items()),
                    references=True,
                )
            try:
                result = self._outputs.resolve(inputs, outputs)
            except MappingError as error:
                raise ToolError(f"output '{error.key}': {error}") from error
        try:
            check_tree(result)
        except JSONLimitError as error:
            raise ToolError(
                f"the outputs cannot be written as JSON: {error.where}: {error.message}"
            ) from None
        return result


class _Run:
    """One run of an engine's workflow: its state, advanced under one lock by whichever thread
    has news.

    The caller's thread only watches the clock (attempt, step and run deadlines, backoff pauses,
    cancelation); a worker that finishes an attempt settles it and runs the next ready step
    itself, so a chain of steps costs one hand-over to a worker and one back, not two per step
    (the hand-overs between threads were most of a small run's CPU under ``serve``). A worker
    whose attempt overran finds, when it returns, that the caller settled the attempt already,
    and drops its result.
    """

    def __init__(
        self,
        engine: Engine,
        inputs,
        deadline: float | None,
        emit: EventSink | None,
        handle: RunHandle,
        on_overrun: Callable[[RunnerError], None] | None = None,
    ):
        self.engine = engine
        self.on_overrun = on_overrun
        self.inputs = inputs
        self.deadline = deadline
        self.emit = emit
        self.handle = handle
        self.stats = handle.stats
        self.outputs: dict[str, dict[str, Any]] = {}
        self.wakeups: queue.SimpleQueue  # the caller's loop waits here (see _run_scheduled)
        self.lock = threading.Lock()  # guards every field below and the steps' states
        self.states: dict[str, _StepState] = {}
        self.failure: RunnerError | None = None  # the error that ends the run
        self.over = False  # the caller has returned: results arriving now are dropped
        self.wake_at = math.inf  # when the caller's loop wakes by itself next
        self.running = 0  # attempts running, as _ready last counted them
        self.started = 0.0

    def execute(self) -> dict[str, Any]:
        self.states = self.engine.new_states()
        started = self.started = time.monotonic()
        try:
            if self.on_overrun is not None and self.engine.in_place_only:
                self._run_chain()
            else:
                self._run_scheduled()
        finally:
            with self.lock:
                self.over = True
        if not QUIET:
            log(f"done in {time.monotonic() - started:.3f} s")
        return self.engine.collect_outputs(self.inputs, self.outputs)

    def _check_go_on(self, now: float) -> None:
        """Raise if the run must stop before its next step: canceled, or past its deadline."""
        if self.handle._canceled:
            raise CanceledError(f"the run was canceled ({now - self.started:.1f} s in)")
        if self.deadline is not None and now >= self.deadline:
            raise self._late(now)

    def _run_scheduled(self) -> None:
        """Every step, as the steps' dependencies and the workers allow (see the class)."""
        self.wakeups = queue.SimpleQueue()  # made here: a chain never waits for a report
        self.handle._attach(self.wakeups)
        steps = self.states
        while True:
            with self.lock:
                now = time.monotonic()
                if self.failure is not None:
                    raise self.failure
                if len(self.outputs) == len(steps):
                    return
                self._check_go_on(now)
                for state in self.states.values():
                    if state.status == "running" and now >= state.attempt_deadline:
                        self._settle(state, False, self._overrun(state), now)
                if self.failure is not None:
                    raise self.failure
                jobs = self._ready(now)
                self.wake_at = self._next_wake()
                in_place = (
                    self.on_overrun is not None
                    and THREADS
                    and len(jobs) == 1
                    and self.running == 1
                    and self.engine.runs_in_place(jobs[0][0])
                )
            if in_place:
                self._in_place(*jobs[0])
                continue
            for job in jobs:
                self._launch(job)
            timeout = None
            if self.wake_at != math.inf:
                timeout = max(0.0, self.wake_at - time.monotonic())
            try:
                self.wakeups.get(timeout=timeout)
            except queue.Empty:  # a deadline or the end of a pause: the loop looks
                continue

    def _run_chain(self) -> None:
        """A chain whose steps all run in place (``in_place_only``): each step, in the
        workflow's order (each waits for every one before it), on this thread. The same checks
        between steps as :meth:`_run_scheduled` makes (cancelation, the run's deadline, a
        failure), without its search for ready steps and its next wake-up, which were a
        fifth of such a run's CPU under ``serve``'s ``/invoke``. A step starts without the
        run's lock: no other thread looks at it before the watchdog watches it, and one
        that the watchdog took (an overrun) ends the run. The time a step ended is the next
        one's start."""
        now = self.started
        for state in self.states.values():
            self._check_go_on(now)
            now = self._in_place(state, self._start(state, now))
            if self.failure is not None:
                raise self.failure

    def _late(self, now: float) -> StepTimeoutError:
        return StepTimeoutError(
            f"the run did not finish within its deadline ({now - self.started:.1f} s spent)"
        )

    def _in_place(self, state: _StepState, attempt: int) -> float:
        """Run an attempt on this (the caller's) thread, watched by the watchdog, and settle
        it (see :meth:`Engine.run`); the time it ended is returned."""
        token = _WATCHDOG.watch(state.attempt_deadline, self._overran, state, attempt)
        try:
            ok, value = self._attempt(state, attempt)
        finally:
            _WATCHDOG.unwatch(token)
        now = time.monotonic()
        with self.lock:
            if state.status == "running" and state.attempt == attempt:  # not settled as overrun
                if now >= state.attempt_deadline:
                    ok, value = False, self._overrun(state)  # late: what the watchdog says
                self._settle(state, ok, value, now)
        return now

    def _overran(self, state: _StepState, attempt: int) -> None:
        """The watchdog's call: the attempt running on the caller's thread overran. It is
        settled as the caller's loop would (this step's failure is final), then reported."""
        with self.lock:
            if self.over or state.status != "running" or state.attempt != attempt:
                return  # it ended just in time
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                error: RunnerError = self._late(now)
            else:
                error = self._overrun(state)
            self._settle(state, False, error, now)
            self.failure = self.failure or error
            failure = self.failure
        self.on_overrun(failure)  # type: ignore[misc]

    def _next_wake(self) -> float:
        """The earliest time the caller's loop must look at the run again."""
        wake = math.inf if self.deadline is None else self.deadline
        for state in self.states.values():
            if state.status == "running":
                wake = min(wake, state.attempt_deadline)
            elif state.status == "backoff":
                wake = min(wake, state.not_before)
        return wake

    def _overrun(self, state: _StepState) -> StepTimeoutError:
        step_id = state.step["step_id"]
        if state.attempt_deadline >= state.step_deadline:  # the step's deadline cut the attempt
            budget = self.engine.step_budget(state)
            return StepTimeoutError(
                f"step '{step_id}' did not finish within its deadline of {budget:g} s"
                f" ({state.stats.attempts} attempt(s))",
                step_id,
            )
        return StepTimeoutError(
            f"step '{step_id}' did not finish within {self.engine.timeout(state):g} s", step_id
        )

    def _ready(self, now: float) -> list[tuple[_StepState, int]]:
        """Start every step that may start now (lock held); the attempts to run are returned,
        and :attr:`running` is then the number of attempts running."""
        waits, done = self.engine.waits, self.outputs.keys()
        running = 0
        for state in self.states.values():
            if state.status == "running":
                running += 1
        jobs = []
        for step_id, state in self.states.items():
            status = state.status
            ready = status == "waiting" or (status == "backoff" and now >= state.not_before)
            if ready and running < MAX_PARALLEL and waits[step_id] <= done:
                jobs.append((state, self._start(state, now)))
                running += 1
                if not THREADS:  # one at a time, each to its end before the next starts
                    break
        self.running = running
        return jobs

    def _start(self, state: _StepState, now: float) -> int:
        """Mark the step's next attempt as running at ``now`` (lock held, but for a chain's:
        see :meth:`_run_chain`); its number is returned."""
        step = state.step
        step_id = step["step_id"]
        if state.stats.attempts == 0:
            state.started = now
            state.step_deadline = now + state.budget
        state.attempt += 1
        state.status = "running"
        limit = min(now + state.timeout, state.step_deadline)
        state.attempt_deadline = limit if self.deadline is None else min(limit, self.deadline)
        state.stats.attempts += 1
        state.stats.tool = state.tool_id
        if not QUIET:  # the message costs its formatting even when nobody reads it
            label = state.tool_id or ("sub-workflow" if step["type"] == "sub_workflow" else "code")
            log(f"step {step_id}: start ({label}, attempt {state.attempt})")
        if self.emit is not None:
            self.emit({"event": "step_started", "step": step_id, "attempt": state.attempt})
        return state.attempt

    def _launch(self, job: tuple[_StepState, int]) -> None:
        """Run an attempt on a worker thread, or (without threads) here and now, to its end."""
        if THREADS:
            _WORKERS.submit(lambda: self._chain(*job))
        else:
            self._chain(*job)

    def _attempt(self, state: _StepState, attempt: int) -> tuple[bool, Any]:
        """Run one attempt of a step (no lock held): ``(True, value)`` or ``(False, error)``."""
        step = state.step
        step_id = step["step_id"]
        deadline, tool_id = state.attempt_deadline, state.tool_id
        try:
            engine = self.engine
            values = state.mapping.resolve(self.inputs, self.outputs)  # type: ignore[union-attr]
            result = engine.execute(
                step, tool_id, values, deadline, state.stats, self.emit, self.handle
            )
            return True, result
        except RunnerError as error:
            error.step = error.step or step_id
            return False, error
        except LookupError as error:
            return False, ToolError(str(error), step_id)
        except Exception as error:  # a bug in the engine, reported as such
            return False, RunnerError(repr(error), step_id)

    def _chain(self, state: _StepState, attempt: int) -> None:
        """Run an attempt, settle it, and go on with the next ready step in this same thread
        (others that became ready go to other workers). The caller's loop is woken when the
        run ends, when nothing is left to run here, or when a new attempt's deadline comes
        before its next wake-up."""
        job: tuple[_StepState, int] | None = (state, attempt)
        while job is not None:
            state, attempt = job
            ok, value = self._attempt(state, attempt)
            wake = True
            with self.lock:
                if self.over:
                    return
                try:
                    now = time.monotonic()
                    if not THREADS and now >= state.attempt_deadline:
                        ok, value = False, self._overrun(state)  # what the caller would say
                    if state.status == "running" and state.attempt == attempt:
                        self._settle(state, ok, value, now)
                    jobs = [] if self.failure is not None or not THREADS else self._ready(now)
                except Exception as error:  # a bug in the engine: the run's error
                    self.failure, jobs = RunnerError(repr(error), state.step["step_id"]), []
                finished = self.failure is not None or len(self.outputs) == len(self.states)
                if jobs and not finished:
                    wake = any(st.attempt_deadline < self.wake_at for st, _ in jobs)
            if wake:
                self.wakeups.put(None)
            for other in jobs[1:]:
                self._launch(other)
            job = jobs[0] if jobs else None

    def _settle(self, state: _StepState, ok: bool, value: Any, now: float | None = None) -> None:
        """Record an attempt's outcome (lock held) at ``now`` (default: the time it is
        called): done, a retry, a fallback, or the run's :attr:`failure`."""
        step_id = state.step["step_id"]
        if now is None:
            now = time.monotonic()
        if ok:
            state.status = "done"
            state.stats.wall_seconds = now - state.started
            self.stats[step_id] = state.stats
            self.outputs[step_id] = {state.output: value}
            if self.handle.observer is not None:
                self.handle.observer.step(step_id, "ok", state.stats.wall_seconds)
            if not QUIET:
                log(f"step {step_id}: done in {state.stats.wall_seconds:.3f} s")
            if self.emit is not None:
                self.emit(
                    {
                        "event": "step_finished",
                        "step": step_id,
                        "seconds": round(state.stats.wall_seconds, 6),
                        "attempts": state.stats.attempts,
                    }
                )
            return
        error: RunnerError = value
        time_left = state.step_deadline - now
        if self.deadline is not None:
            time_left = min(time_left, self.deadline - now)
        if state.attempt <= self.engine.max_retries(state):
            pause = min(RETRY_BACKOFF_SECONDS * 2 ** (state.attempt - 1), BACKOFF_CAP_SECONDS)
            if pause < time_left:
                self.handle.note("step_retry", step=step_id)
                log(f"step {step_id}: {error.message}; retrying in {pause:g} s")
                state.status, state.not_before = "backoff", now + pause
                return
        fallback = state.step.get("fallback_tool") or self.engine.tools.get(
            state.tool_id or "", {}
        ).get("fallback_tool")
        if fallback and not state.used_fallback and time_left > 0:
            log(f"step {step_id}: {error.message}; falling back to tool '{fallback}'")
            state.tool_id, state.used_fallback, state.attempt = fallback, True, 0
            state.timeout = self.engine.timeout(state)  # the fallback tool's
            state.status, state.not_before = "backoff", now
            return
        state.status = "done"
        self.stats[step_id] = state.stats
        if self.handle.observer is not None:
            self.handle.observer.step(step_id, error.error_type, now - state.started)
        self.failure = error
