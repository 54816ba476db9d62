"""One description of a locked-down container, rendered alike for a local run, a Swarm service
and a Kubernetes pod (``batch --engine swarm`` once dropped --memory, --cpus, --pids-limit, -e
and --provider)."""

from __future__ import annotations

import pytest

from rules.cli.convert import run_limits
from rules.cli.parser import build_parser
from rules.deploy.container import RunLimits, memory_bytes, parse_env
from rules.deploy.k8s import K8sOptions, serve_manifests
from rules.errors import InputProblem

SWARM_BATCH = ["batch", "wf.json", "in.jsonl", "-o", "out.jsonl", "--engine", "swarm"]
LIMITS = ["--memory", "256m", "--cpus", "0.5", "--pids-limit", "64", "-e", "EXTRA=1"]


def test_swarm_tasks_get_every_container_option_of_the_command_line(monkeypatch):
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    monkeypatch.delenv("LLM_PROVIDER", raising=False)
    args = build_parser().parse_args([*SWARM_BATCH, *LIMITS, "--provider", "openai"])
    rendered = run_limits(args).swarm_args("http://llm:11434")
    assert rendered["resources"] == {
        "Limits": {"MemoryBytes": 256 * 1024 * 1024, "Pids": 64, "NanoCPUs": 500_000_000}
    }
    assert sorted(rendered["env"]) == [
        "EXTRA=1",
        "LLM_PROVIDER=openai",
        "OLLAMA_ENDPOINT=http://llm:11434",
    ]
    assert rendered["read_only"] is True and rendered["cap_drop"] == ["ALL"]


def test_a_local_container_and_a_swarm_task_are_confined_alike():
    limits = RunLimits(memory="1g", cpus=2.0, pids=32, env={"A": "b"})
    local, swarm = limits.docker_run_args(), limits.swarm_args(None)
    assert memory_bytes(local["mem_limit"]) == swarm["resources"]["Limits"]["MemoryBytes"]
    assert local["pids_limit"] == swarm["resources"]["Limits"]["Pids"] == 32
    assert local["nano_cpus"] == swarm["resources"]["Limits"]["NanoCPUs"]
    assert local["read_only"] == swarm["read_only"] is True
    assert local["cap_drop"] == swarm["cap_drop"] == ["ALL"]
    assert "size=64m" in local["tmpfs"]["/tmp"] and swarm["tmp_bytes"] == 64 * 1024 * 1024
    assert "A=b" in swarm["env"] and limits.environment(None)["A"] == "b"


def test_a_pod_is_confined_by_the_same_description():
    deployment = serve_manifests(K8sOptions(image="i:1", workflow_id="w"))["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["securityContext"] == RunLimits().k8s_security_context()
    assert RunLimits().k8s_tmp_volume() in pod["volumes"]


@pytest.mark.parametrize(("text", "size"), [("512m", 512 << 20), ("1g", 1 << 30), ("4096", 4096)])
def test_memory_sizes_read_as_docker_reads_them(text, size):
    assert memory_bytes(text) == size


@pytest.mark.parametrize("text", ["", "0", "12x", "-1m", "1.5g"])
def test_a_bad_memory_size_is_an_input_error(text):
    with pytest.raises(InputProblem, match="--memory"):
        memory_bytes(text)


def test_a_docker_error_quoting_the_environment_prints_no_credential(monkeypatch, capsys):
    """A Swarm service spec or a container's environment in a Docker error (the daemon quotes
    what it refused) goes through the one redaction when printed."""
    from rules.console import print_message
    from rules.docker.engine import docker_error

    monkeypatch.setenv("OLLAMA_API_KEY", "sk-forwarded-key-1")
    limits = RunLimits(env={"API_TOKEN": "tok-from-dash-e"})
    spec = limits.swarm_args("http://user:pa#ss/w@llm.example:11434")
    daemon_says = RuntimeError(f"Error response from daemon: invalid spec: env {spec['env']}")
    for line in str(docker_error("running the batch on the swarm", daemon_says)).splitlines():
        print_message("error", "red", line)
    printed = capsys.readouterr().err
    assert "running the batch on the swarm failed" in printed and "***" in printed
    for secret in ("sk-forwarded-key-1", "tok-from-dash-e", "pa#ss"):
        assert secret not in printed
    assert "llm.example:11434" in printed


def test_a_bad_env_option_does_not_echo_its_value():
    with pytest.raises(InputProblem) as caught:
        RunLimits(env=parse_env(["1BAD=hunter2-value"]))
    assert "hunter2" not in str(caught.value) and "'1BAD'" in str(caught.value)
