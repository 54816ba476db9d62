"""Serve mode under load, side by side: ``POST /invoke`` of the calculator, requests/s, p50, p99.

Servers, all measured in the same run with the same load (wrk, ``--connections`` keep-alive
connections, two threads, ``--seconds`` each, after a warm-up):

* ``serve --local``: the runner's own service (``python -m runner_template --serve``);
* with ``--image`` (builds: minutes): the compiled image (``docker-workflow serve``, Nuitka),
  and the same service in an image of plain CPython (``--compiler none``), both ``docker run``
  with the port published on 127.0.0.1 as users run them, and loaded at the container's own
  address on Docker's bridge: through the published port every byte also goes through Docker's
  userland proxy (``docker-proxy``), whose CPU on this machine's two cores is taken from the
  service (:func:`container_address`);
* uvicorn + Starlette calling the same :class:`~runner_template.engine.Engine` (what a user
  would write instead; a bench-only dependency, the ``bench`` extra), one worker;
* a bare standard-library ``ThreadingHTTPServer`` with ``TCP_NODELAY`` answering a constant:
  the ceiling of a Python thread-per-connection server on this machine.

With ``--llm``, a second table: time to the first token of the summarizer (one LLM step, the
dev LLM server) through ``/stream`` and through the OpenAI face's stream, against calling the LLM
server's own streaming ``/api/generate`` directly (median of ``--llm-runs``).

The servers run one after another, all of them ``--rounds`` times (default 2): the machine is
shared, so figures are compared within a round, as ratios to the bare server of that round
(the ``x bare`` column). ``--baseline DIR`` adds a ``serve --local`` row running the
``runner_template`` found in DIR (``git archive COMMIT runner_template | tar -x -C DIR``),
named by ``--baseline-label``: a change's before and after in the same run.

The tables are printed and written into docs/RUNNER.md between its bench markers. wrk comes from
Debian (scripts/setup_serve_tools.sh). Run:
``.venv/bin/python bench/serve.py [--connections 8] [--seconds 10] [--rounds 2] [--image]
[--llm] [--baseline DIR]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, run_quiet

WORKFLOW = ROOT / "workflows" / "calculator.json"
BODY = json.dumps({"a": 6, "b": 7, "operation": "multiply"})
DOC = ROOT / "docs" / "RUNNER.md"
BEGIN, END = "<!-- bench/serve.py: begin -->", "<!-- bench/serve.py: end -->"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(port: int, path: str = "/healthz", host: str = "127.0.0.1") -> None:
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


# -- the servers ------------------------------------------------------------------------------


def anchor_app(bundle_path: str):
    """uvicorn + Starlette calling the same Engine (the sync run in Starlette's thread pool)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from runner_template import engine as engine_module
    from runner_template.engine import Engine
    from runner_template.errors import RunnerError

    engine_module.QUIET = True
    engine = Engine(json.loads(Path(bundle_path).read_text()))

    async def invoke(request: Request) -> JSONResponse:
        inputs = await request.json()
        try:
            outputs = await run_in_threadpool(engine.run, inputs)
        except RunnerError as error:
            return JSONResponse(error.to_json(), status_code=500)
        return JSONResponse({"outputs": outputs})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/invoke", invoke, methods=["POST"]), Route("/healthz", healthz)]
    )


def bare_server(port: int) -> None:
    """A ThreadingHTTPServer with TCP_NODELAY answering a constant, in one write."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    reply = b'{"outputs": {"result": 42, "sentence": "6 multiply 7 = 42"}}'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args) -> None:
            pass

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(reply)).encode()
                + b"\r\n\r\n"
                + reply
            )

        do_GET = do_POST = _answer

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def bundle_of_calculator() -> Path:
    from rules.graph.build import prepare

    return prepare(WORKFLOW).bundle_path


def start_local(bundle: Path, port: int, tree: Path = ROOT) -> subprocess.Popen:
    """``serve --local``: the runner of ``tree`` (this checkout, or ``--baseline``'s)."""
    command = [sys.executable, "-m", "runner_template", "--serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "-j", "16"]
    env = {**os.environ, "WORKFLOW_BUNDLE": str(bundle)}
    return subprocess.Popen(command, env=env, cwd=tree, stderr=subprocess.DEVNULL)


def start_self(mode: str, port: int, bundle: Path) -> subprocess.Popen:
    command = [sys.executable, __file__, f"--{mode}", str(port), "--bundle", str(bundle)]
    return subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)


def start_image(port: int, compiler: str = "nuitka") -> str:
    """The calculator's image (built by the real pipeline if needed), ``docker run`` with its
    port published on 127.0.0.1, as ``docker-workflow serve --detach`` does; its container id."""
    tag = "bench-serve:latest" if compiler == "nuitka" else f"bench-serve-{compiler}:latest"
    cli = [sys.executable, str(ROOT / "docker_workflow.py"), "serve", str(WORKFLOW)]
    options = ["-p", str(port), "--detach", "-j", "16", "-t", tag, "--compiler", compiler]
    return run_quiet([*cli, *options], cwd=ROOT).stdout.strip().splitlines()[-1]


def container_address(container: str) -> tuple[str, int]:
    """The container's own address and port on the bridge network: wrk there measures the
    image, not Docker's userland proxy, which carries every byte sent to a port published on
    127.0.0.1 and, on two cores, took CPU from the service it measured."""
    [info] = json.loads(run_quiet(["docker", "inspect", container]).stdout)
    [address] = [n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values()]
    [exposed] = info["NetworkSettings"]["Ports"]
    return address, int(exposed.split("/")[0])


# -- the load ---------------------------------------------------------------------------------


def wrk(
    port: int,
    connections: int,
    seconds: float,
    errors_seen: list[str] | None = None,
    slowest: list[float] | None = None,
    host: str = "127.0.0.1",
) -> tuple[float, float, float, int]:
    """requests/s, p50 ms, p99 ms and failures (non-2xx answers and socket errors), from wrk's
    own report; wrk's lines about failures are added to ``errors_seen``, and its slowest reply
    (ms) to ``slowest``, when given (a reply slower than wrk's 2 s timeout is a socket error of
    kind ``timeout``)."""
    script = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{BODY}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    text = run_quiet([*command, f"http://{host}:{port}/invoke"]).stdout

    def ms(label: str) -> float:
        number, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", text).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    failures = int(bad.group(1)) if bad else 0
    if errors:
        failures += sum(int(n) for n in re.findall(r"\d+", errors.group(0)))
    if errors_seen is not None and failures:
        errors_seen += [m.group(0) for m in (bad, errors) if m]
    if slowest is not None:
        slowest.append(ms(r"Latency\s+[\d.]+(?:us|ms|s)\s+[\d.]+(?:us|ms|s)"))
    return rate, ms("50%"), ms("99%"), failures


SUMMARIZER = ROOT / "workflows" / "simple_summarizer.json"
TEXT = "Bees make honey. They live in hives, dance to share directions, and pollinate crops."


def first_byte_of(url: str, body: dict, wanted: bytes) -> float:
    """Seconds from sending ``body`` until a streamed line matching ``wanted`` arrives.

    The stream is read to its end, so the (single) model is idle when the next sample starts.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    started = time.perf_counter()
    conn.request(
        "POST", parts.path, body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    response = conn.getresponse()
    elapsed = None
    while line := response.readline():
        if elapsed is None and re.search(wanted, line):
            elapsed = time.perf_counter() - started
    conn.close()
    if elapsed is None:
        raise SystemExit(f"{url}: the stream ended before {wanted!r}")
    return elapsed


def same_request_as_the_workflow(bundle: Path) -> dict:
    """The streaming /api/generate body the summarizer's step sends (prompt, system, options)."""
    from runner_template.llm import LLMClient, LLMRequest
    from runner_template.templates import render

    data = json.loads(bundle.read_text())
    step = data["workflow"]["steps"][0]
    tool = data["tools"][step["tool"]]
    values = {"text": TEXT, "max_length": 100}
    ask = LLMRequest(
        tool["model"],
        render(step["prompt_template"], values),
        tool.get("system_prompt"),
        {"temperature": tool["temperature"]},
    )
    return LLMClient("http://unused")._payload(ask, stream=True)


def llm_rows(runs: int) -> list[list[str]]:
    """Time to first token: directly, through /stream, through the OpenAI face."""
    import statistics

    from helpers import LLMServer

    from rules.graph.build import prepare

    server = LLMServer("127.0.0.1")
    port = free_port()
    bundle = prepare(SUMMARIZER).bundle_path
    os.environ["OLLAMA_ENDPOINT"] = server.url
    service = start_local(bundle, port)
    try:
        wait_up(port)
        base = f"http://127.0.0.1:{port}"
        ask = same_request_as_the_workflow(bundle)
        cases = [
            (
                "the LLM server directly (`/api/generate`)",
                server.url + "/api/generate",
                ask,
                b'"response"',
            ),
            ("through `POST /stream`", base + "/stream", {"text": TEXT}, rb"event: token"),
            (
                "through `POST /v1/chat/completions`, stream",
                base + "/v1/chat/completions",
                {"messages": [{"role": "user", "content": TEXT}], "stream": True},
                rb'"content": "[^"]',  # the first chunk with text (the first has the role)
            ),
        ]
        samples: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for _name, url, body, wanted in cases:
            first_byte_of(url, body, wanted)  # warm-up
        for _ in range(runs):  # the paths in turn, so a busy moment of the machine hits all
            for name, url, body, wanted in cases:
                samples[name].append(first_byte_of(url, body, wanted))
        return [
            [name, f"{statistics.median(times) * 1000:.1f} ms"] for name, times in samples.items()
        ]
    finally:
        service.terminate()
        service.wait(timeout=30)
        server.stop()


def write_doc(table: str, begin: str = BEGIN, end_mark: str = END) -> None:
    """``table`` into docs/RUNNER.md between a bench's markers."""
    text = DOC.read_text()
    start, end = text.index(begin) + len(begin), text.index(end_mark)
    DOC.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--image", action="store_true", help="also the compiled image (a build)")
    parser.add_argument("--llm", action="store_true", help="also time to first token (dev LLM)")
    parser.add_argument("--llm-runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2, help="every server this many times")
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="also serve --local from this checkout"
    )
    parser.add_argument("--baseline-label", help="the --baseline row's name (default DIR's)")
    parser.add_argument("--anchor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bundle", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.anchor:
        import uvicorn

        uvicorn.run(anchor_app(args.bundle), host="127.0.0.1", port=args.anchor, log_level="error")
        return
    if args.bare:
        bare_server(args.bare)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("bench/serve.py needs wrk: scripts/setup_serve_tools.sh installs it")
    os.environ.setdefault("DOCKER_WORKFLOW_CACHE", tempfile.mkdtemp(prefix="bench-serve-"))
    bundle = bundle_of_calculator()
    servers: list[tuple[str, object]] = [
        ("`serve --local`", lambda port: start_local(bundle, port)),
        (
            "uvicorn + Starlette calling the same `Engine`",
            lambda p: start_self("anchor", p, bundle),
        ),
        (
            "bare ThreadingHTTPServer + TCP_NODELAY, a constant",
            lambda p: start_self("bare", p, bundle),
        ),
    ]
    if args.image:
        servers.insert(1, ("compiled image (`docker-workflow serve`)", start_image))
        servers.insert(
            2,
            (
                "image of plain CPython (`--compiler none`)",
                lambda p: start_image(p, compiler="none"),
            ),
        )
    if args.baseline:
        tree = args.baseline.resolve()
        if not (tree / "runner_template").is_dir():
            raise SystemExit(f"--baseline {tree}: no runner_template folder there")
        label = f"`serve --local`, {args.baseline_label or tree.name}"
        servers.insert(1, (label, lambda p: start_local(bundle, p, tree)))
    rows = []
    for round_number in range(1, args.rounds + 1):
        measured = []
        for name, start in servers:
            port = free_port()
            handle = start(port)  # type: ignore[operator]
            try:
                wait_up(port)
                host = "127.0.0.1"
                if isinstance(handle, str):  # a container: straight to it (container_address)
                    host, port = container_address(handle)
                wrk(port, args.connections, 2, host=host)  # warm-up
                measured.append((name, *wrk(port, args.connections, args.seconds, host=host)))
            finally:
                if isinstance(handle, str):
                    run_quiet(["docker", "rm", "-f", handle])
                else:
                    handle.terminate()
                    handle.wait(timeout=30)
        bare = measured[-1][1]
        for name, rate, p50, p99, failures in measured:
            rows.append(
                [
                    str(round_number),
                    name,
                    f"{rate:,.0f}",
                    f"{rate / bare:.2f}",
                    f"{p50:.1f} ms",
                    f"{p99:.1f} ms",
                    str(failures),
                ]
            )
    columns = ["round", "server", "requests/s", "x bare", "p50", "p99", "errors"]
    title = (
        f"POST /invoke, calculator, wrk {args.connections} keep-alive connections,"
        f" {args.seconds:g} s, {os.cpu_count()} CPUs"
    )
    print_table(title, columns, rows)
    lines = [
        f"{title} (bench/serve.py, {time.strftime('%Y-%m-%d')}):",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    if args.llm:
        first = llm_rows(args.llm_runs)
        llm_title = f"time to first token, summarizer, dev LLM, median of {args.llm_runs}"
        print_table(llm_title, ["path", "first token"], first)
        lines += [
            "",
            f"{llm_title}:",
            "",
            "| path | first token |",
            "|---|---|",
            *("| " + " | ".join(row) + " |" for row in first),
        ]
    write_doc("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
