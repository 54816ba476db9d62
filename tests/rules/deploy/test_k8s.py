"""Kubernetes manifests: checked offline against a pinned Kubernetes version's schemas (strict)."""

import base64
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


@pytest.mark.parametrize(
    "endpoint", ["http://user:p%23ss#/?w@ollama.llm:11434", "https://llm.example/?key=s3cret-key"]
)
def test_an_endpoint_with_a_credential_is_a_secret_referenced_by_the_pods(
    tmp_path, inputs, endpoint
):
    out = tmp_path / "k8s"
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(out), "--inputs", str(inputs),
        "--serve", "--endpoint", endpoint,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = validate_folder(out)
    for path in out.iterdir():
        text = path.read_text()
        assert "p%23ss" not in text and "s3cret" not in text, path.name
    secret = found["secret-endpoint.yaml"]
    assert secret["kind"] == "Secret"
    assert base64.b64decode(secret["data"]["OLLAMA_ENDPOINT"]).decode() == endpoint
    reference = {
        "name": "OLLAMA_ENDPOINT",
        "valueFrom": {
            "secretKeyRef": {"name": secret["metadata"]["name"], "key": "OLLAMA_ENDPOINT"}
        },
    }
    job = found["job.yaml"]["spec"]["template"]["spec"]["containers"][0]
    deployment = found["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert job["env"] == [reference] and deployment["env"] == [reference]


@pytest.mark.parametrize(
    ("option", "value"),
    [("--memory", "banana"), ("--cpu", "-5"), ("--cpu", "0"), ("--memory", "1Xi"), ("--cpu", "")],
)
def test_limits_that_are_not_kubernetes_quantities_are_refused(tmp_path, option, value):
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(tmp_path / "o"), "--serve",
        f"{option}={value}",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"{option}: {value!r} is not a positive Kubernetes quantity" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_good_quantities_pass(tmp_path):
    out = tmp_path / "o"
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(out), "--serve",
        "--memory", "1.5Gi", "--cpu", "500m",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    limits = validate_folder(out)["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert limits["resources"]["limits"] == {"cpu": "500m", "memory": "1.5Gi"}


def test_k8s_inputs_with_a_huge_integer_name_the_input_in_one_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1, "b": 2}\n{"a": ' + "9" * 5000 + ', "b": 2}\n')
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(tmp_path / "o"),
        "--inputs", str(path),
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}: input 1: " in proc.stderr and "5000 digits" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def serve_container(found):
    return found["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]


def test_serve_with_a_token_reads_it_from_a_secret_the_manifests_do_not_hold(tmp_path):
    out = tmp_path / "k8s"
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(out), "--serve",
        "--auth-token-env", "WF_TOKEN", "--playground",
        env={"WF_TOKEN": "t0ken-in-the-environment"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = validate_folder(out)
    assert sorted(found) == ["deployment.yaml", "service.yaml"]  # no Secret written
    for path in out.iterdir():
        assert "t0ken" not in path.read_text(), path.name
    container = serve_container(found)
    args = container["args"]
    assert args[args.index("--auth-token-env") + 1] == "WF_TOKEN" and "--playground" in args
    assert container["env"] == [
        {
            "name": "WF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "wf-calculator-auth", "key": "token"}},
        }
    ]
    # Probes carry no token: both on /healthz, the one route open without it.
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "kubectl create secret generic wf-calculator-auth" in proc.stderr


def test_write_auth_secret_writes_the_token_from_the_environment(tmp_path):
    out = tmp_path / "k8s"
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(out), "--serve",
        "--auth-token-env", "WF_TOKEN", "--write-auth-secret",
        "--endpoint", "http://ollama.llm:11434",
        env={"WF_TOKEN": "t0ken-in-the-environment\n"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = validate_folder(out)
    secret = found["secret-auth.yaml"]
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "wf-calculator-auth"
    assert base64.b64decode(secret["data"]["token"]).decode() == "t0ken-in-the-environment"
    for path in out.iterdir():
        assert "t0ken" not in path.read_text(), path.name  # base64 in the Secret only
    env = serve_container(found)["env"]
    assert env[0] == {"name": "OLLAMA_ENDPOINT", "value": "http://ollama.llm:11434"}
    assert env[1]["valueFrom"]["secretKeyRef"]["name"] == "wf-calculator-auth"


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--write-auth-secret"], {}, "--write-auth-secret needs --auth-token-env NAME"),
        (
            ["--auth-token-env", "WF_UNSET_TOKEN", "--write-auth-secret"],
            {},
            "--write-auth-secret: the variable WF_UNSET_TOKEN is not set or is empty",
        ),
        (["--auth-token-env", "1-bad"], {}, "--auth-token-env '1-bad': an environment variable"),
    ],
)
def test_bad_auth_options_are_one_line_errors(tmp_path, extra, env, message):
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(tmp_path / "o"), "--serve", *extra,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_serve_options_without_serve_are_refused(tmp_path, inputs):
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(tmp_path / "o"),
        "--inputs", str(inputs), "--playground",
    )  # fmt: skip
    assert proc.returncode == 2 and "--playground: only with --serve" in proc.stderr


def test_the_program_serves_with_the_token_as_the_pod_would(tmp_path):
    """The Deployment's command, run here with the Secret's value in NAME: the probes' route
    answers without a token, every other route needs it."""
    import subprocess
    import sys

    import requests

    from rules.graph.build import prepare

    out = tmp_path / "k8s"
    token = "t0ken-from-the-secret"
    proc = run_cli(
        "k8s", str(WORKFLOWS / "calculator.json"), "-o", str(out), "--serve",
        "--auth-token-env", "WF_TOKEN", "--write-auth-secret", env={"WF_TOKEN": token},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = validate_folder(out)
    container = serve_container(found)
    secret = base64.b64decode(found["secret-auth.yaml"]["data"]["token"]).decode()
    args = container["args"]
    args[args.index("--port") + 1] = "0"
    bundle = prepare(WORKFLOWS / "calculator.json").bundle_path
    served = subprocess.Popen(
        [sys.executable, "-m", "runner_template", *args, "--host", "127.0.0.1"],
        env={"WORKFLOW_BUNDLE": str(bundle), container["env"][0]["name"]: secret},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = json.loads(served.stderr.readline())["listening"]
        probe = container["readinessProbe"]["httpGet"]["path"]
        assert requests.get(url + probe, timeout=10).status_code == 200
        body = {"a": 6, "b": 7, "operation": "multiply"}
        assert requests.post(url + "/invoke", json=body, timeout=10).status_code == 401
        reply = requests.post(
            url + "/invoke", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert reply.status_code == 200 and reply.json()["outputs"]["result"] == 42
    finally:
        served.terminate()
        served.wait(timeout=30)
