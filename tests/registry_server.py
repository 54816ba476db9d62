"""A real Docker registry for the tests: Debian's ``docker-registry`` (the CNCF distribution
registry) on loopback, plain HTTP or TLS with a CA made here and htpasswd auth.

The engine trusts it the way it would trust any registry: 127.0.0.0/8 is an insecure registry
by default (plain HTTP), and for TLS the test CA goes into ``/etc/docker/certs.d/HOST:PORT/``,
which dockerd reads on every request (builds here use buildx's ``docker`` driver, whose
BuildKit pushes through the engine, so nothing else needs the CA). scripts/setup_registry.sh
installs the programs.
"""

from __future__ import annotations

import base64
import ctypes
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

CERTS_D = Path("/etc/docker/certs.d")
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent's thread ends


def _die_with_parent() -> None:
    """Runs in the registry's process before ``exec``: it gets SIGTERM when the test process
    that started it ends, however it ends. A killed test run (SIGKILL, a CI timeout) runs no
    fixture teardown and used to leave its registries serving on loopback for good."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


class Registry:
    """One running registry; ``host`` is ``127.0.0.1:PORT``."""

    def __init__(
        self,
        folder: Path,
        *,
        tls: bool = False,
        users: dict[str, str] | None = None,
        storage: Path | None = None,
        read_only: bool = False,
        address: str = "127.0.0.1",
    ) -> None:
        for program in ("docker-registry", "htpasswd", "openssl"):
            if shutil.which(program) is None:
                raise RuntimeError(f"{program} is missing: run scripts/setup_registry.sh")
        self.folder = folder
        self.address = address  # another (the docker bridge's gateway) for nodes in containers
        self.port = free_port()
        self.host = f"{address}:{self.port}"
        self.ca: Path | None = None
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage or folder / 'data'}",
            "  delete:",
            "    enabled: true",
            *(["  maintenance:", "    readonly:", "      enabled: true"] if read_only else []),
            "http:",
            f"  addr: {self.host}",
        ]
        if tls:
            self.ca = self._make_certificates()
            lines += [
                "  tls:",
                f"    certificate: {folder / 'server.crt'}",
                f"    key: {folder / 'server.key'}",
            ]
        if users:
            password_file = folder / "htpasswd"
            password_file.write_text("")
            for user, password in users.items():
                _run("htpasswd", "-Bb", str(password_file), user, password)
            lines += ["auth:", "  htpasswd:", "    realm: test", f"    path: {password_file}"]
        (folder / "config.yml").write_text("\n".join(lines) + "\n")
        if self.ca is not None:
            self.certs_dir = CERTS_D / self.host
            self.certs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.ca, self.certs_dir / "ca.crt")
        self.log = (folder / "registry.log").open("wb")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(folder / "config.yml")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # the test process starts it from its main thread
        )
        self._wait_ready()

    def _make_certificates(self) -> Path:
        f = self.folder
        _run(
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=docker-workflow test CA",
            "-keyout", str(f / "ca.key"), "-out", str(f / "ca.crt"),
        )  # fmt: skip
        _run(
            "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={self.address}",
            "-keyout", str(f / "server.key"), "-out", str(f / "server.csr"),
        )  # fmt: skip
        (f / "san.ext").write_text(f"subjectAltName=IP:{self.address}\n")
        _run(
            "openssl", "x509", "-req", "-in", str(f / "server.csr"), "-days", "2",
            "-CA", str(f / "ca.crt"), "-CAkey", str(f / "ca.key"), "-CAcreateserial",
            "-extfile", str(f / "san.ext"), "-out", str(f / "server.crt"),
        )  # fmt: skip
        return f / "ca.crt"

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.host}"

    def _wait_ready(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_text()}")
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=context)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"docker-registry did not answer on {self.host}: {self.log_text()}")

    def manifest(self, name: str, digest: str, user: str = "", password: str = "") -> dict:
        """The manifest (or index) ``digest`` of repository ``name``, by the registry's own API
        (buildx's imagetools does not read the engine's certs.d)."""
        request = urllib.request.Request(
            f"{self.url}/v2/{name}/manifests/{digest}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())

    def log_text(self) -> str:
        self.log.flush()
        return (self.folder / "registry.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        if self.ca is not None:
            shutil.rmtree(self.certs_dir, ignore_errors=True)
