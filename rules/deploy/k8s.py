"""``docker-workflow k8s``: Kubernetes manifests for a workflow image, ready for ``kubectl apply``.

* a batch (``--inputs F.jsonl --parallelism N``): the inputs split into N shards, each in a
  ConfigMap of its own (a ConfigMap holds at most 1 MiB), and an Indexed Job
  (``completionMode: Indexed``) whose pod ``i`` runs the image in batch mode on shard ``i``
  (``JOB_COMPLETION_INDEX``), with ``backoffLimitPerIndex`` so a failing shard is retried on
  its own. Results are the pods' stdout, one JSON line per input:
  ``kubectl logs -l job-name=NAME --tail=-1 | grep '^{"index"'``.
* a service (``--serve``): a Deployment running ``--serve`` with liveness (``/healthz``) and
  readiness (``/readyz``) probes, and a ClusterIP Service in front of it. ``--playground`` is
  passed on. With ``--auth-token-env NAME`` the pods get ``NAME`` from the Secret
  ``wf-ID-auth`` (key ``token``) through ``secretKeyRef``; the Secret itself is written
  (``secret-auth.yaml``, from ``NAME``'s value at ``k8s`` time) only when asked
  (``--write-auth-secret``), else it is the cluster's to hold (``kubectl create secret``), so the
  token is in no file by default. The readiness probe is then ``/healthz`` too: a kubelet's
  probe can carry a header only written into the manifest, and ``/healthz`` is the one route
  open without the token.

Every pod runs non-root (the image's user 65532), with a read-only root file system, no
capabilities, no privilege escalation, the runtime's seccomp profile, no service account token,
a small in-memory ``/tmp``, resource requests and limits (``--memory`` and ``--cpu`` must be
positive Kubernetes quantities), and ``OLLAMA_ENDPOINT`` from ``--endpoint``. An endpoint that
carries a credential (``user:password@`` or a query string) is written to a Secret
(``secret-endpoint.yaml``) that the Job and the Deployment read with ``secretKeyRef``: no
manifest holds the credential in plain text. The manifests are checked against the schemas of
a pinned Kubernetes version in the tests (``kubernetes-validate``, strict).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rules.deploy.batch.inputs import InputsFile, split
from rules.deploy.container import RunLimits
from rules.errors import InputProblem
from rules.fsutil import atomic_write
from runner_template.redaction import redact

CONFIGMAP_LIMIT = 1024 * 1024 - 4096  # 1 MiB, less room for the object's own fields
PORT = 8080
UID = 65532
CONFINED = RunLimits()  # the pods' limits are K8sOptions' memory and cpu (Kubernetes units)


@dataclass
class K8sOptions:
    image: str
    workflow_id: str
    endpoint: str | None = None
    parallelism: int = 2
    jobs: int = 1
    replicas: int = 1
    memory: str = "512Mi"
    cpu: str = "1"
    backoff_per_index: int = 2
    # Serve: the variable the service reads its bearer token from (from the Secret
    # wf-ID-auth), the token itself when secret-auth.yaml is to be written, and --playground.
    auth_token_env: str | None = None
    auth_token: str | None = None
    playground: bool = False

    def __post_init__(self) -> None:
        check_quantity("--memory", self.memory)
        check_quantity("--cpu", self.cpu)
        if self.auth_token_env is not None and not ENV_NAME.fullmatch(self.auth_token_env):
            raise InputProblem(
                f"--auth-token-env {self.auth_token_env!r}: an environment variable's name"
                " (letters, digits and _, not starting with a digit)"
            )
        if self.auth_token is not None and self.auth_token_env is None:
            raise InputProblem("--write-auth-secret needs --auth-token-env NAME")


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
AUTH_KEY = "token"  # the key of the token in the Secret wf-ID-auth


def auth_secret_name(workflow_id: str) -> str:
    """The Secret the service's pods read their bearer token from."""
    return dns_name(workflow_id, "-auth")


# A Kubernetes resource quantity: a decimal number and a binary (Ki..Ei), decimal (n..E) or
# exponent suffix (k8s.io/apimachinery's resource.Quantity). Signs are left out: a limit is > 0.
_QUANTITY = re.compile(
    r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


def check_quantity(option: str, value: str) -> None:
    """Refuse what Kubernetes would refuse at ``kubectl apply`` time (or quietly read as 0)."""
    number = re.match(r"[0-9.]*", value).group(0)
    if not _QUANTITY.fullmatch(value) or not re.search(r"[1-9]", number):
        raise InputProblem(
            f"{option}: {value!r} is not a positive Kubernetes quantity (like 512Mi, 1Gi, 500m, 2)"
        )


ENDPOINT_KEY = "OLLAMA_ENDPOINT"


def endpoint_is_secret(endpoint: str) -> bool:
    """Whether ``endpoint`` carries a credential: user information (what the one redaction
    hides) or a query string (``?key=...``)."""
    return redact(endpoint) != endpoint or "?" in endpoint


def _endpoint_env(options: K8sOptions) -> dict[str, Any]:
    if endpoint_is_secret(options.endpoint or ""):
        secret = {"name": dns_name(options.workflow_id, "-endpoint"), "key": ENDPOINT_KEY}
        return {"name": ENDPOINT_KEY, "valueFrom": {"secretKeyRef": secret}}
    return {"name": ENDPOINT_KEY, "value": options.endpoint}


def _endpoint_secret(options: K8sOptions) -> dict[str, dict[str, Any]]:
    """``secret-endpoint.yaml`` when the endpoint carries a credential, else nothing."""
    if not options.endpoint or not endpoint_is_secret(options.endpoint):
        return {}
    name = dns_name(options.workflow_id, "-endpoint")
    return {
        "secret-endpoint.yaml": _secret(options, name, "endpoint", ENDPOINT_KEY, options.endpoint)
    }


def _secret(options: K8sOptions, name: str, component: str, key: str, value: str) -> dict:
    """An Opaque Secret holding ``value`` under ``key``, labelled like the workflow's other
    manifests."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": _labels(options, component)},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode("utf-8")).decode("ascii")},
    }


def dns_name(text: str, suffix: str = "") -> str:
    """A Kubernetes object name (DNS-1123 label) from a workflow id."""
    base = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "workflow"
    return f"wf-{base}"[: 63 - len(suffix)].rstrip("-") + suffix


def _labels(options: K8sOptions, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": dns_name(options.workflow_id),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "docker-workflow",
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container(options: K8sOptions, args: list[str], mounts: list[dict]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "workflow",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": options.cpu, "memory": options.memory},
        },
        "securityContext": CONFINED.k8s_security_context(),
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if options.endpoint:
        container["env"] = [_endpoint_env(options)]
    return container


TMP_VOLUME = CONFINED.k8s_tmp_volume()


def batch_manifests(options: K8sOptions, inputs: InputsFile) -> dict[str, dict[str, Any]]:
    """File name -> manifest: one ConfigMap per shard and the Indexed Job."""
    if inputs.bad:
        index, problem = next(iter(sorted(inputs.bad.items())))
        raise InputProblem(f"{inputs.path}: input {index}: {problem}")
    if not inputs.lines:
        raise InputProblem(f"{inputs.path}: no inputs")
    shards = split([line.index for line in inputs.lines], options.parallelism)
    job_name = dns_name(options.workflow_id, "-batch")
    manifests: dict[str, dict[str, Any]] = _endpoint_secret(options)
    sources = []
    for number, indices in enumerate(shards):
        text = b"".join(inputs.indexed(indices)).decode("utf-8")
        if len(text.encode()) > CONFIGMAP_LIMIT:
            raise InputProblem(
                f"{inputs.path}: shard {number} holds {len(text.encode())} bytes, more than a"
                " ConfigMap takes (1 MiB): raise --parallelism to make smaller shards"
            )
        name = dns_name(options.workflow_id, f"-inputs-{number}")
        manifests[f"configmap-inputs-{number}.yaml"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": _labels(options, "batch")},
            "data": {f"shard-{number}.jsonl": text},
        }
        sources.append({"configMap": {"name": name}})
    args = [
        "--batch",
        "--indexed",
        "-j",
        str(options.jobs),
        "--input-file",
        "/inputs/shard-{shard}.jsonl",
        "--shard-env",
        "JOB_COMPLETION_INDEX",
    ]
    mounts = [{"name": "inputs", "mountPath": "/inputs", "readOnly": True}]
    manifests["job.yaml"] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name, "labels": _labels(options, "batch")},
        "spec": {
            "completionMode": "Indexed",
            "completions": len(shards),
            "parallelism": min(options.parallelism, len(shards)),
            "backoffLimitPerIndex": options.backoff_per_index,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": _labels(options, "batch")},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    "containers": [_container(options, args, mounts)],
                    "volumes": [
                        {"name": "inputs", "projected": {"sources": sources}},
                        TMP_VOLUME,
                    ],
                },
            },
        },
    }
    return manifests


def _auth_secret(options: K8sOptions) -> dict[str, dict[str, Any]]:
    """``secret-auth.yaml`` when the token was given to be written, else nothing."""
    if options.auth_token is None:
        return {}
    name = auth_secret_name(options.workflow_id)
    return {"secret-auth.yaml": _secret(options, name, "auth", AUTH_KEY, options.auth_token)}


def serve_manifests(options: K8sOptions) -> dict[str, dict[str, Any]]:
    """File name -> manifest: the Deployment and its Service (and the token's Secret when it
    is to be written)."""
    name = dns_name(options.workflow_id)
    labels = _labels(options, "service")
    args = ["--serve", "--port", str(PORT), "-j", str(max(options.jobs, 1))]
    if options.auth_token_env:
        args += ["--auth-token-env", options.auth_token_env]
    if options.playground:
        args.append("--playground")
    container = _container(options, args, [])
    if options.auth_token_env:
        secret = {"name": auth_secret_name(options.workflow_id), "key": AUTH_KEY}
        token_env = {"name": options.auth_token_env, "valueFrom": {"secretKeyRef": secret}}
        container["env"] = [*container.get("env", []), token_env]
    container["ports"] = [{"name": "http", "containerPort": PORT}]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container["livenessProbe"] = {**probe, "initialDelaySeconds": 2}
    ready_path = "/healthz" if options.auth_token_env else "/readyz"  # see the docstring
    container["readinessProbe"] = {
        "httpGet": {"path": ready_path, "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    return {
        **_endpoint_secret(options),
        **_auth_secret(options),
        "deployment.yaml": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": options.replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": _pod_security(),
                        "terminationGracePeriodSeconds": 30,
                        "containers": [container],
                        "volumes": [TMP_VOLUME],
                    },
                },
            },
        },
        "service.yaml": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    }


def write_manifests(out_dir: Path, manifests: dict[str, dict[str, Any]]) -> list[Path]:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputProblem(f"{out_dir}: is a file; -o takes a folder")
    written = []
    for name, manifest in manifests.items():
        text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)
        atomic_write(out_dir / name, text.encode("utf-8"))
        written.append(out_dir / name)
    return written
