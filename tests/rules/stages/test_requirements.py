"""Requirement strings of tools and of ``dependencies.pip_packages``, checked before any lock."""

from __future__ import annotations

import pytest

from rules.errors import InvalidInput
from rules.stages.requirements import parse_requirement, pip_package_text


def test_a_pinned_requirement_reads():
    requirement = parse_requirement("requests[socks]==2.32.3", "wf.json", "$.tools.t")
    assert requirement.name == "requests" and str(requirement.specifier) == "==2.32.3"
    assert requirement.extras == {"socks"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("requests===", "is not a pip requirement"),
        ("pkg @ https://example.invalid/pkg.whl", "names a URL"),
    ],
)
def test_bad_requirements_name_the_file_and_place(text, message):
    with pytest.raises(InvalidInput) as caught:
        parse_requirement(text, "wf.json", "$.tools.t.requirements[0]")
    assert message in str(caught.value) and "wf.json" in str(caught.value)
    assert "$.tools.t.requirements[0]" in str(caught.value)


@pytest.mark.parametrize(
    ("item", "text"),
    [
        ("yaml>=6", "yaml>=6"),
        ({"name": "requests", "version": "2.31.0"}, "requests==2.31.0"),
        ({"name": "requests", "version": ">=2"}, "requests>=2"),
        ({"name": "requests"}, "requests"),
    ],
)
def test_pip_packages_entries_become_requirement_strings(item, text):
    assert pip_package_text(item) == text
