"""The package lock: real pip, resolving from a local folder of small real wheels (no network)."""

import json

import pytest
from helpers import minimal_workflow, run_cli, write_json
from wheels import make_wheel, offline_index

from rules.errors import InvalidInput
from rules.stages.lock import (
    lock_wheels,
    make_lock,
    package_facts,
    requirements_txt,
    wheel_platform_tags,
)
from rules.stages.pipeline import analyze_file

BOTH = ["linux/amd64", "linux/arm64"]


@pytest.fixture
def index(tmp_path, monkeypatch):
    folder = tmp_path / "index"
    make_wheel(
        folder,
        "tinyhttp",
        "2.0",
        modules={
            "tinyhttp/__init__.py": "import ssl, json\nfrom tinyhttp import util\n",
            "tinyhttp/util.py": "import hashlib\n",
            "tinyhttp/cacert.pem": "----",
        },
        requires=["tinydep>=1"],
    )
    make_wheel(folder, "tinydep", "1.5")
    make_wheel(folder, "onlyamd", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(folder, "onlyamd", "1.0", tag="cp311-cp311-manylinux_2_28_x86_64")
    for key, value in offline_index(folder).items():
        monkeypatch.setenv(key, value)
    return folder


def workflow(tmp_path, code, requirements=None, pip_packages=None):
    tool = {"type": "python", "source_code": code}
    if requirements is not None:
        tool["requirements"] = requirements
    data = minimal_workflow(
        steps=[{"step_id": "a", "type": "python_tool", "tool": "t"}],
        outputs={},
        tools={"t": tool},
        dependencies={"pip_packages": pip_packages or []},
    )
    return write_json(tmp_path / "wf.json", data)


def test_lock_pins_every_wheel_for_both_platforms(tmp_path, index):
    path = workflow(tmp_path, "import tinyhttp\n", requirements=["tinyhttp==2.0"])
    _, analysis, _ = analyze_file(path)
    lock = make_lock(analysis.packages, BOTH, str(path))
    for platform in BOTH:
        wheels = {w["name"]: w for w in lock_wheels(lock, platform)}
        assert set(wheels) == {"tinyhttp", "tinydep"}
        assert wheels["tinyhttp"]["version"] == "2.0" and len(wheels["tinyhttp"]["sha256"]) == 64
        assert wheels["tinyhttp"]["stdlib_imports"] == ["hashlib", "json", "ssl"]
    data, stdlib = package_facts(lock)
    assert data == ["tinyhttp"] and "ssl" in stdlib
    text = requirements_txt(lock_wheels(lock, "linux/amd64"))
    assert "tinyhttp==2.0 --hash=sha256:" in text and "tinydep==1.5 --hash=sha256:" in text


def test_the_same_requirements_resolve_once(tmp_path, index, monkeypatch):
    path = workflow(tmp_path, "import tinyhttp\n", requirements=["tinyhttp==2.0"])
    _, analysis, _ = analyze_file(path)
    first = make_lock(analysis.packages, BOTH, str(path))
    monkeypatch.setattr("rules.stages.lock._pip_download", lambda *a: pytest.fail("resolved twice"))
    assert make_lock(analysis.packages, BOTH, str(path)) == first


def test_a_package_without_an_arm64_wheel_names_package_and_platform(tmp_path, index):
    path = workflow(tmp_path, "import onlyamd\n", requirements=["onlyamd"])
    _, analysis, _ = analyze_file(path)
    make_lock(analysis.packages, ["linux/amd64"], str(path))  # fine where it has a wheel
    with pytest.raises(InvalidInput) as caught:
        make_lock(analysis.packages, BOTH, str(path))
    (problem,) = caught.value.problems
    assert problem.path == "$.tools.t.requirements"
    assert "package 'onlyamd' has no wheel for linux/arm64" in problem.message


def test_a_requirement_that_does_not_exist(tmp_path, index):
    path = workflow(
        tmp_path, "print(1)\n", pip_packages=[{"name": "no-such-thing", "version": "1.0"}]
    )
    _, analysis, _ = analyze_file(path)
    with pytest.raises(InvalidInput, match=r"requirement 'no-such-thing==1\.0' matches no wheel"):
        make_lock(analysis.packages, ["linux/amd64"], str(path))


def test_an_import_no_locked_wheel_provides(tmp_path, index):
    path = workflow(tmp_path, "import mystery\n", requirements=["tinydep"])
    _, analysis, _ = analyze_file(path)
    assert analysis.packages["unexplained"] == ["mystery"]
    with pytest.raises(InvalidInput, match="imports 'mystery', which none of the locked packages"):
        make_lock(analysis.packages, ["linux/amd64"], str(path))


def test_manylinux_tags_cover_older_policies():
    tags = wheel_platform_tags("arm64")
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux2014_aarch64" in tags
    assert "manylinux1_x86_64" in wheel_platform_tags("amd64")


def test_cli_errors_are_one_line_exit_2_and_leave_nothing_behind(tmp_path, index):
    path = workflow(tmp_path, "import onlyamd\n", requirements=["onlyamd"])
    env = offline_index(index)
    proc = run_cli("run", "--local", str(path), '{"text": "x"}', env=env)
    assert proc.returncode in (0, 5)  # amd64 host: the lock works (the tool itself may fail)
    bad = workflow(tmp_path, "print(1)\n", requirements=["no-such-thing==9"])
    proc = run_cli("run", "--local", str(bad), '{"text": "x"}', env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "no-such-thing==9" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_local_installs_the_locked_packages_privately(tmp_path, index):
    code = "import json, tinyhttp.util\nprint(json.dumps({'ok': tinyhttp.util.__name__}))\n"
    path = workflow(tmp_path, code, requirements=["tinyhttp==2.0"])
    proc = run_cli("run", "--local", str(path), '{"text": "x"}', env=offline_index(index))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"output": {"ok": "tinyhttp.util"}}
