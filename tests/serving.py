"""A workflow service under test: the real program (``--serve``) in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


class ServeProcess:
    """``python -m runner_template --serve`` on loopback, on a free port."""

    def __init__(self, bundle: dict[str, Any], *args: str, env: dict[str, str] | None = None):
        self._folder = tempfile.TemporaryDirectory(prefix="dw-serve-test-")
        path = Path(self._folder.name) / "bundle.json"
        path.write_text(json.dumps(bundle))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner_template",
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

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        for line in self.process.stderr.read().splitlines():
            try:
                self.log.append(json.loads(line))
            except ValueError:
                self.log.append({"text": line})
        self._folder.cleanup()
        return code
