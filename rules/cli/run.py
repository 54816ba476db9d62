"""``run``, ``batch`` and ``serve``: the commands that run a workflow, in containers or locally."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rules.cli.build import build_image
from rules.cli.convert import native_platform, output_dir, read_inputs_arg, run_limits, run_platform
from rules.deploy.container import parse_env
from rules.errors import InputProblem


def cmd_run(args: argparse.Namespace) -> int:
    from rules.cli.doctor import hint_on_exit

    inputs_text = read_inputs_arg(args.inputs, args.input_file)
    if args.local:
        return hint_on_exit(_run_local(args, inputs_text))
    return hint_on_exit(_run_in_docker(args, inputs_text))


def _run_local(args: argparse.Namespace, inputs_text: str) -> int:
    from rules.deploy.local import run_local
    from rules.graph.build import prepare

    platform = native_platform()
    limits = run_limits(args)
    prepared = prepare(Path(args.workflow), args.tools, args.model, [platform], output_dir(args))
    return run_local(prepared, platform, args.endpoint, limits.env, inputs_text, args.stream)


def _run_in_docker(args: argparse.Namespace, inputs_text: str) -> int:
    from rules.docker.containers import run_container

    platform = run_platform(args)
    limits = run_limits(args)
    tag = build_image(args, [platform], force=args.build)

    def passthrough(data: bytes) -> None:  # --stream: events as they come
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    command = ["--input-file", "-", *(["--stream"] if args.stream else [])]
    result = run_container(
        tag,
        inputs_text.encode("utf-8"),
        host_args=limits.docker_run_args(),
        environment=limits.environment(args.endpoint),
        command=command,
        platform=platform,
        network=args.network,
        stream_stdout=passthrough if args.stream else None,
    )
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    return result.exit_code


def cmd_batch(args: argparse.Namespace) -> int:
    from rules.deploy.batch.inputs import InputsFile
    from rules.deploy.batch.run import run_batch
    from rules.deploy.batch.settings import BatchSettings

    if not 1 <= args.jobs <= 1024:
        raise InputProblem("-j/--jobs must be between 1 and 1024")
    if not 1 <= args.replicas <= 1000:
        raise InputProblem("--replicas must be between 1 and 1000")
    inputs = InputsFile.scan(Path(args.inputs))
    limits = run_limits(args)
    platform = run_platform(args)
    tag = build_image(args, [platform])
    settings = BatchSettings(
        jobs=args.jobs,
        engine=args.engine,
        replicas=args.replicas,
        max_concurrent=args.max_concurrent,
        endpoint=args.endpoint,
        network=args.network,
        retry_failed=args.retry_failed,
        shard_retries=args.shard_retries,
    )
    return run_batch(tag, inputs, Path(args.output), settings, limits)


def cmd_serve(args: argparse.Namespace) -> int:
    from rules.deploy.serve import serve_container

    if not 0 < args.port < 65536:
        raise InputProblem("-p/--port must be between 1 and 65535")
    if not 1 <= args.jobs <= 1024:
        raise InputProblem("-j/--jobs must be between 1 and 1024")
    limits = run_limits(args)
    service_args = ["-j", str(args.jobs)]
    if args.auth_token_env:  # the service reads its token from the variable, at run time
        name = args.auth_token_env
        if not os.environ.get(name, "").strip():
            raise InputProblem(f"--auth-token-env {name}: the variable is not set or is empty")
        limits.env.update(parse_env([name]))
        service_args += ["--auth-token-env", name]
    if args.playground:
        service_args.append("--playground")
    if args.local:
        from rules.deploy.local import serve_local
        from rules.graph.build import prepare

        platform = native_platform()
        prepared = prepare(
            Path(args.workflow), args.tools, args.model, [platform], output_dir(args)
        )
        return serve_local(
            prepared,
            platform,
            args.endpoint,
            limits.env,
            port=args.port,
            bind=args.bind,
            service_args=service_args,
            announce=_say,
        )
    platform = run_platform(args)
    tag = build_image(args, [platform])
    return serve_container(
        tag,
        port=args.port,
        bind=args.bind,
        service_args=service_args,
        endpoint=args.endpoint,
        network=args.network,
        limits=limits,
        detach=args.detach,
        announce=_say,
    )


def _say(line: str) -> None:
    """A result line on stdout, at once (a service's URL is read while it runs)."""
    print(line, flush=True)
