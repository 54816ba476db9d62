"""A workflow service under test: the real program (``--serve``) in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests


class ServeProcess:
    """``python -m runner_template --serve`` on loopback, on a free port."""

    def __init__(
        self,
        bundle: dict[str, Any],
        *args: str,
        env: dict[str, str] | None = None,
        program: tuple[str, ...] = ("-m", "runner_template"),
    ):
        self._folder = tempfile.TemporaryDirectory(prefix="dw-serve-test-")
        path = Path(self._folder.name) / "bundle.json"
        path.write_text(json.dumps(bundle))
        self.process = subprocess.Popen(
            [
                sys.executable,
                *program,
                "--serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *args,
            ],
            env={**os.environ, "WORKFLOW_BUNDLE": str(path), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = json.loads(self.process.stderr.readline())
        self.url = first["listening"]
        self.log: list[dict] = []
        # Read stderr all along: a pipe nobody reads fills up (64 KiB of log lines) and then
        # blocks every write of the service, which would look like a hung server.
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.process.stderr:
            self._lines.append(line.rstrip("\n"))

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        for line in self._lines:
            try:
                self.log.append(json.loads(line))
            except ValueError:
                self.log.append({"text": line})
        self._folder.cleanup()
        return code


# Python code for a step: the signals (SIGHUP, SIGINT, SIGTERM) that the thread running it and
# the main thread block, read from Linux's /proc (runner_template/threads.py). The main thread
# blocks them for the moment it starts a thread (the new thread inherits its mask), so a step
# that runs at once can see them blocked there: the probe reads the main thread's mask again
# for up to 5 s until it is clear. Left blocked for good, the signals show.
MASK_PROBE = """
import os, threading, time

def blocked(task):
    with open(f"/proc/self/task/{task}/status") as status:
        mask = next(int(line.split()[1], 16) for line in status if line.startswith("SigBlk:"))
    return [number for number in (1, 2, 15) if mask >> (number - 1) & 1]

deadline = time.monotonic() + 5
main = blocked(os.getpid())
while main and time.monotonic() < deadline:
    time.sleep(0.01)
    main = blocked(os.getpid())
result = {"step": blocked(threading.get_native_id()), "main": main}
"""


CALC = {
    "format": 2,
    "workflow": {
        "id": "calc",
        "version": "1.0",
        "inputs": {
            "a": {"type": "number", "required": True},
            "b": {"type": "number", "default": 1},
            "op": {"type": "string", "enum": ["add", "sleep", "fail"], "default": "add"},
        },
        "outputs": {"value": {"source_reference": "steps.c.output"}},
        "steps": [
            {
                "step_id": "c",
                "type": "python_tool",
                "code": (
                    "import time\n"
                    "if op == 'sleep':\n    time.sleep(b)\n"
                    "if op == 'fail':\n    raise ValueError('asked to fail')\n"
                    "result = a + b"
                ),
                "input_mapping": {"a": "inputs.a", "b": "inputs.b", "op": "inputs.op"},
            }
        ],
    },
    "tools": {},
}


def llm_bundle():
    return {
        "format": 2,
        "workflow": {
            "id": "asker",
            "inputs": {"q": {"type": "string", "required": True}},
            "outputs": {"answer": {"source_reference": "steps.ask.output"}},
            "steps": [
                {
                    "step_id": "ask",
                    "type": "llm_call",
                    "tool": "llm",
                    "input_mapping": {"q": "inputs.q"},
                }
            ],
        },
        "tools": {"llm": {"kind": "llm", "model": "m", "timeout": 5}},
    }


def post(url, body, **headers):
    """POST ``body`` (bytes as they are, anything else as JSON) as application/json."""
    return requests.post(
        url,
        data=body if isinstance(body, bytes) else json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )


class Receiver:
    """A webhook receiver on loopback that fails the first ``failures`` deliveries."""

    def __init__(self, failures: int) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.attempts += 1
                status = 500 if receiver.attempts <= failures else 200
                if status == 200:
                    receiver.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
