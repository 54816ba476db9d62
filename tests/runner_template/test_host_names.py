"""Host names without the ``idna`` codec, as in the LLM-only image.

The shared program leaves ``unicodedata`` to the module layer (rules/stages/program_builtins.py),
and ``encodings.idna`` imports it (through ``stringprep``). These run the real engine in its own
process with the three modules unimportable, as they are in an image whose layer does not bring
them: an LLM call by host name, serve mode's bind and a request through it work; a host name
that is not ASCII is one line. (tests/docker/test_images.py runs the real LLM-only image.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from fakes import FakeOllama, ok
from serving import CALC, ServeProcess, llm_bundle, post

from runner_template.http_client import BadURL, ascii_host

WITHOUT_IDNA = textwrap.dedent(
    """
    import runpy, sys

    class WithoutIdna:
        def find_spec(self, name, path=None, target=None):
            if name in ("unicodedata", "stringprep", "encodings.idna"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, WithoutIdna())
    runpy.run_module("runner_template", run_name="__main__", alter_sys=True)
    """
)
PROGRAM = ("-c", WITHOUT_IDNA)


def test_the_engine_calls_a_host_by_name_and_serves_without_the_idna_codec():
    fake = FakeOllama(lambda n, body: ok("an answer"))
    try:
        endpoint = fake.url.replace("127.0.0.1", "localhost")  # resolved by name
        served = ServeProcess(llm_bundle(), env={"OLLAMA_ENDPOINT": endpoint}, program=PROGRAM)
        try:
            reply = post(served.url + "/invoke", {"q": "hi"})
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"outputs": {"answer": "an answer"}}
        finally:
            assert served.stop() == 0
    finally:
        fake.close()
    assert len(fake.requests) == 1


def test_a_callback_host_that_is_not_ascii_is_a_400_without_the_idna_codec():
    """urlsplit checks a host name that is not ASCII with unicodedata: without it the import
    failed inside the callback check, and a client's callback_url was a 500."""
    served = ServeProcess(CALC, program=PROGRAM)
    try:
        body = {"inputs": {"a": 1}, "callback_url": "http://b\u00fccher.example/cb"}
        reply = post(served.url + "/hooks/run", body)
        assert reply.status_code == 400, reply.text
        message = reply.json()["error"]["message"]
        assert "the host name is not ASCII, and this image has no IDNA support" in message
        reply = post(served.url + "/hooks/run", {**body, "callback_url": "http://x:99999/cb"})
        assert reply.status_code == 400 and "is not a valid URL" in reply.text
    finally:
        assert served.stop() == 0


def run_once(endpoint: str, tmp_path) -> subprocess.CompletedProcess:
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(llm_bundle()))
    return subprocess.run(
        [sys.executable, *PROGRAM, '{"q": "hi"}', "--endpoint", endpoint],
        env={**os.environ, "WORKFLOW_BUNDLE": str(bundle)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_host_name_that_is_not_ascii_is_one_line_without_the_idna_codec(tmp_path):
    proc = run_once("http://b\u00fccher.invalid:8080", tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert "the host name is not ASCII, and this image has no IDNA support" in error["message"]
    assert "\n" not in error["message"]


def test_a_host_name_that_is_not_ascii_goes_as_its_idna_form_where_the_codec_is():
    url = "http://b\u00fccher.example/"
    assert ascii_host("b\u00fccher.example", url) == "xn--bcher-kva.example"
    assert ascii_host("localhost", url) == "localhost"
    try:
        ascii_host("b\u00fccher..example", url)  # an empty label
    except BadURL as error:
        assert "not a valid internationalized name" in error.message
    else:
        raise AssertionError("an empty label was taken")
