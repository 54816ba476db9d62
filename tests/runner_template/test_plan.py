from runner_template.plan import ordering_problems, step_dependencies


def step(step_id, group=None, refs=(), depends_on=()):
    return {
        "step_id": step_id,
        "parallel_group": group,
        "input_mapping": {f"v{i}": f"steps.{r}.output" for i, r in enumerate(refs)},
        "depends_on": list(depends_on),
    }


def test_written_order_is_kept_outside_groups():
    deps = step_dependencies([step("a"), step("b"), step("c")])
    assert deps == {"a": set(), "b": {"a"}, "c": {"a", "b"}}


def test_steps_in_one_group_do_not_wait_for_each_other():
    deps = step_dependencies([step("a"), step("b", 1), step("c", 1), step("d")])
    assert deps["b"] == {"a"} and deps["c"] == {"a"}
    assert deps["d"] == {"a", "b", "c"}


def test_references_inside_a_group_order_it():
    deps = step_dependencies([step("b", 1, refs=["c"]), step("c", 1)])
    assert deps["b"] == {"c"}
    assert ordering_problems([step("b", 1, refs=["c"]), step("c", 1)]) == []


def test_forward_reference_across_groups_is_a_problem():
    problems = ordering_problems([step("a", refs=["b"]), step("b")])
    assert problems and "written after it" in problems[0][1]


def test_self_dependency_is_a_problem():
    assert "depends on itself" in ordering_problems([step("a", depends_on=["a"])])[0][1]
