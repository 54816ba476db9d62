"""``k8s``: Kubernetes manifests for a workflow image."""

from __future__ import annotations

import argparse
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
    )
    manifests = {}
    if args.inputs:
        manifests.update(batch_manifests(options, InputsFile.scan(Path(args.inputs))))
    if args.serve:
        manifests.update(serve_manifests(options))
    for path in write_manifests(Path(args.output), manifests):
        print(path)
    return 0
