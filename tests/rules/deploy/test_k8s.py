"""Kubernetes manifests: checked offline against a pinned Kubernetes version's schemas (strict)."""

import json

import kubernetes_validate
import pytest
import yaml
from helpers import WORKFLOWS, run_cli

KUBERNETES = "1.33.0"


def validate_folder(folder):
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
        found[path.name] = manifest
    return found


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"a": i, "b": 2}) + "\n" for i in range(10)))
    return path


def test_batch_job_and_service_validate_strictly(tmp_path, inputs):
    out = tmp_path / "k8s"
    proc = run_cli(
        "k8s",
        str(WORKFLOWS / "calculator.json"),
        "-o",
        str(out),
        "--inputs",
        str(inputs),
        "--parallelism",
        "3",
        "--serve",
        "-t",
        "reg.example/calc:1",
        "--endpoint",
        "http://ollama.llm:11434",
    )
    assert proc.returncode == 0, proc.stderr
    found = validate_folder(out)
    assert sorted(found) == [
        "configmap-inputs-0.yaml",
        "configmap-inputs-1.yaml",
        "configmap-inputs-2.yaml",
        "deployment.yaml",
        "job.yaml",
        "service.yaml",
    ]
    job = found["job.yaml"]["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == 3
    assert job["backoffLimitPerIndex"] == 2 and job["template"]["spec"]["restartPolicy"] == "Never"
    pod = job["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"]
    assert container["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert container["env"] == [{"name": "OLLAMA_ENDPOINT", "value": "http://ollama.llm:11434"}]
    assert (
        "JOB_COMPLETION_INDEX" in container["args"] and container["image"] == "reg.example/calc:1"
    )
    shards = [found[f"configmap-inputs-{i}.yaml"]["data"][f"shard-{i}.jsonl"] for i in range(3)]
    indices = [json.loads(line)["index"] for text in shards for line in text.splitlines()]
    assert indices == list(range(10))
    deployment = found["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert deployment["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert found["service.yaml"]["spec"]["ports"][0]["targetPort"] == "http"


def test_the_program_reads_its_shard_as_the_job_would(tmp_path, inputs):
    """Each pod's command, run here: shard i by JOB_COMPLETION_INDEX, results on stdout."""
    import subprocess
    import sys

    from rules.graph.build import prepare

    out = tmp_path / "k8s"
    assert (
        run_cli(
            "k8s",
            str(WORKFLOWS / "calculator.json"),
            "-o",
            str(out),
            "--inputs",
            str(inputs),
            "--parallelism",
            "2",
        ).returncode
        == 0
    )
    found = validate_folder(out)
    args = found["job.yaml"]["spec"]["template"]["spec"]["containers"][0]["args"]
    mounted = tmp_path / "inputs"
    mounted.mkdir()
    for i in range(2):
        for name, text in found[f"configmap-inputs-{i}.yaml"]["data"].items():
            (mounted / name).write_text(text)
    args = [a.replace("/inputs/", f"{mounted}/") for a in args]
    bundle = prepare(WORKFLOWS / "calculator.json").bundle_path
    results = []
    for index in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "runner_template", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"WORKFLOW_BUNDLE": str(bundle), "JOB_COMPLETION_INDEX": str(index)},
        )
        assert proc.returncode == 0, proc.stderr
        results += [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(r["index"] for r in results) == list(range(10))
    assert all(r["outputs"]["result"] == r["index"] + 2 for r in results)


def test_inputs_too_big_for_a_configmap_say_what_to_do(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(
        "".join(json.dumps({"a": 1, "b": 2, "pad": "x" * 400_000}) + "\n" for _ in range(6))
    )
    proc = run_cli(
        "k8s",
        str(WORKFLOWS / "calculator.json"),
        "-o",
        str(tmp_path / "o"),
        "--inputs",
        str(path),
        "--parallelism",
        "2",
    )
    assert proc.returncode == 2 and "raise --parallelism" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_nothing_to_deploy_is_an_input_error(tmp_path):
    proc = run_cli("k8s", str(WORKFLOWS / "calculator.json"), "-o", str(tmp_path))
    assert proc.returncode == 2 and "--inputs" in proc.stderr
