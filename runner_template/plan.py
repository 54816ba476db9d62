"""Which steps wait for which: the one ordering rule, shared by the validator and the engine.

A step waits for
* every step its ``input_mapping`` references and every step in its ``depends_on``;
* every step written before it, unless both share a ``parallel_group``.

So steps run in the order written, which keeps side effects in order, and steps that share a
``parallel_group`` run concurrently unless one references the other. A reference to a step that
is written later and not in the same group can never be satisfied; :func:`ordering_problems`
reports it.
"""

from __future__ import annotations

from typing import Any

from runner_template.references import ReferenceSyntaxError, parse_reference


def referenced_steps(step: dict[str, Any]) -> list[str]:
    """Step ids that ``step``'s ``input_mapping`` reads from (malformed references skipped)."""
    found: list[str] = []
    for value in (step.get("input_mapping") or {}).values():
        if not isinstance(value, str):
            continue
        try:
            ref = parse_reference(value)
        except ReferenceSyntaxError:
            continue
        if ref.source == "steps" and ref.name not in found:
            found.append(ref.name)
    return found


def explicit_dependencies(step: dict[str, Any]) -> list[str]:
    """References plus ``depends_on``, without duplicates."""
    deps = referenced_steps(step)
    for name in step.get("depends_on") or []:
        if name not in deps:
            deps.append(name)
    return deps


def _same_group(a: dict[str, Any], b: dict[str, Any]) -> bool:
    group = a.get("parallel_group")
    return group is not None and group == b.get("parallel_group")


def step_dependencies(steps: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Map each step id to the ids it must wait for (explicit and by order)."""
    deps: dict[str, set[str]] = {}
    for index, step in enumerate(steps):
        waits = set(explicit_dependencies(step))
        for earlier in steps[:index]:
            if not _same_group(earlier, step):
                waits.add(earlier["step_id"])
        deps[step["step_id"]] = waits
    return deps


def ordering_problems(steps: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """``(step index, message)`` for each explicit dependency that the order makes impossible."""
    position = {step["step_id"]: index for index, step in enumerate(steps)}
    problems: list[tuple[int, str]] = []
    for index, step in enumerate(steps):
        for dep in explicit_dependencies(step):
            if dep == step["step_id"]:
                problems.append((index, f"step '{dep}' depends on itself"))
                continue
            other = position.get(dep)
            if other is not None and other > index and not _same_group(steps[other], step):
                problems.append(
                    (
                        index,
                        f"step '{step['step_id']}' depends on step '{dep}', which is written after"
                        " it and is not in the same parallel_group: move it before",
                    )
                )
    return problems
