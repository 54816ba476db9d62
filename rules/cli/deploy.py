"""``k8s``: Kubernetes manifests for a workflow image."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rules.errors import InputProblem


def cmd_k8s(args: argparse.Namespace) -> int:
    from rules.deploy.batch.inputs import InputsFile
    from rules.deploy.k8s import K8sOptions, batch_manifests, serve_manifests, write_manifests
    from rules.stages.image_names import default_tag
    from rules.stages.pipeline import analyze_file

    if not args.inputs and not args.serve:
        raise InputProblem(
            "say what to deploy: --inputs F.jsonl (an Indexed Job) and/or --serve (a"
            " Deployment and a Service)"
        )
    if not 1 <= args.parallelism <= 10000 or not 1 <= args.replicas <= 1000:
        raise InputProblem("--parallelism must be 1-10000 and --replicas 1-1000")
    given = [flag for flag, on in _SERVE_ONLY.items() if getattr(args, on)]
    if given and not args.serve:
        raise InputProblem(f"{', '.join(given)}: only with --serve")
    token = None
    if args.write_auth_secret:
        if not args.auth_token_env:
            raise InputProblem("--write-auth-secret needs --auth-token-env NAME")
        token = os.environ.get(args.auth_token_env, "").strip()
        if not token:
            raise InputProblem(
                f"--write-auth-secret: the variable {args.auth_token_env} is not set or is empty"
            )
    from rules.docker.registry_push import pushed_reference

    _, analysis, _ = analyze_file(Path(args.workflow), args.tools, args.model)
    tag = args.tag or default_tag(analysis.workflow_id)
    options = K8sOptions(
        image=pushed_reference(tag) or tag,  # the pushed digest, when there is one
        workflow_id=analysis.workflow_id,
        endpoint=args.endpoint,
        parallelism=args.parallelism,
        jobs=args.jobs,
        replicas=args.replicas,
        memory=args.memory,
        cpu=args.cpu,
        auth_token_env=args.auth_token_env,
        auth_token=token,
        playground=args.playground,
    )
    manifests = {}
    if args.inputs:
        manifests.update(batch_manifests(options, InputsFile.scan(Path(args.inputs))))
    if args.serve:
        manifests.update(serve_manifests(options))
    for path in write_manifests(Path(args.output), manifests):
        print(path)
    if args.serve and args.auth_token_env and token is None:
        from rules.deploy.k8s import AUTH_KEY, auth_secret_name

        secret = auth_secret_name(analysis.workflow_id)
        print(
            f"the service's token comes from the Secret {secret} (key {AUTH_KEY}), which is not"
            f" written: kubectl create secret generic {secret}"
            f' --from-literal={AUTH_KEY}="${args.auth_token_env}" (or --write-auth-secret)',
            file=sys.stderr,
        )
    return 0


_SERVE_ONLY = {
    "--auth-token-env": "auth_token_env",
    "--write-auth-secret": "write_auth_secret",
    "--playground": "playground",
}
