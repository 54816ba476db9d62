"""Pipeline step 1: what a workflow (and its sub-workflows) really needs.

LLM tools, executable and API tools, Ollama models, the Python modules the tools' code imports
(read with ``ast``, never by running it), the pip packages to install
(``rules/stages/requirements.py``), and whether anything talks https (which decides whether
``ssl`` and libcrypto go into the image).

Module names found in code end up in generated Python (``_tool_imports.py``), so each must be a
dotted identifier: ``__import__("os; evil()")`` is an error here, not code later. Imports inside
``try: ... except ImportError`` are optional: the image need not have them.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field

from rules.errors import InvalidInput, Problem, json_path
from rules.files.registry import ResolvedTool, resolve_tools
from rules.files.subworkflows import WorkflowNode
from rules.stages.analysis import Analysis
from rules.stages.requirements import PackageNeeds, pip_package_text, resolve_needs

IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
# Text in these legacy encodings needs the CJK codec modules (1.2 MB), which the image leaves
# out unless a tool's code names one of them or works with codecs itself.
CJK_CODEC_RE = re.compile(
    r"shift.?jis|s.?jis|cp93[2-9]|cp949|cp950|euc.?(jp|jis|kr|cn|tw)|gb.?2312|gbk|gb.?18030|"
    r"big.?5|hz|johab|iso.?2022|ks.?c|uhc|ms.?kanji|jis.?x",
    re.IGNORECASE,
)
CODEC_MODULES = {"codecs", "encodings", "email"}
# A named character in a pattern: re's parser imports unicodedata to look the name up.
NAMED_CHARACTER = "\\N{"


def _valid_module_name(name: str) -> bool:
    parts = name.split(".")
    return all(part.isidentifier() for part in parts) and bool(parts)


def catches_import_errors(node: ast.Try) -> bool:
    for handler in node.handlers:
        if handler.type is None:
            return True
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(t, ast.Name) and t.id in IMPORT_ERRORS for t in types):
            return True
    return False


def _dynamic_import_name(node: ast.Call) -> ast.Constant | None:
    """The constant argument of ``__import__("x")`` or ``importlib.import_module("x")``."""
    func = node.func
    is_dunder = isinstance(func, ast.Name) and func.id == "__import__"
    is_importlib = (
        isinstance(func, ast.Attribute)
        and func.attr == "import_module"
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
    )
    if (is_dunder or is_importlib) and node.args and isinstance(node.args[0], ast.Constant):
        return node.args[0]
    return None


def imported_modules(source: str, label: str, file: str) -> tuple[set[str], set[str]]:
    """``(required, optional)`` top-level modules ``source`` imports (absolute imports only)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise InvalidInput.single(
            file, label, f"invalid Python: {error.msg} (line {error.lineno})"
        ) from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise InvalidInput.single(file, label, f"cannot parse the Python: {error}") from None
    optional_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and catches_import_errors(node):
            for statement in node.body:
                optional_nodes.update(id(inner) for inner in ast.walk(statement))
    required: set[str] = set()
    optional: set[str] = set()
    problems: list[Problem] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call):
            constant = _dynamic_import_name(node)
            if constant is not None:
                if not isinstance(constant.value, str) or not _valid_module_name(constant.value):
                    problems.append(
                        Problem(
                            file,
                            label,
                            f"line {node.lineno}: {constant.value!r} is not a module name",
                        )
                    )
                    continue
                names = [constant.value]
        target = optional if id(node) in optional_nodes else required
        target.update(name.split(".")[0] for name in names)
    if problems:
        raise InvalidInput(problems)
    return required, optional - required


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"``, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [side for side in sides if isinstance(side, ast.Name) and side.id == "__name__"]
    texts = [side for side in sides if isinstance(side, ast.Constant) and side.value == "__main__"]
    return len(names) == 1 and len(texts) == 1


def main_only_nodes(tree: ast.Module, private_functions: bool) -> set[int]:
    """Ids of the nodes of a library module that run only when it is the main program: the
    bodies of its top-level ``if __name__ == "__main__":`` blocks, and with
    ``private_functions`` the private top-level functions (``def _test(): import doctest``)
    that only those blocks, or other such functions, name. A module imported by its name never
    runs them, so what they import is not its import: ``pickle``'s self-test alone brought
    ``doctest``, ``pdb``, ``unittest`` and ``pydoc`` into every layer that reaches ``logging``.

    A function counts as named by any ``Name``, attribute or string equal to its name (a
    ``getattr``, an ``__all__``); one nobody names may be called from C or from another module
    (``_strptime._strptime_datetime``), so it stays; a decorated one stays too. Another module
    may still call a private function by name (``from mod import _helper``), which this module
    cannot show: the standard library does not for any function its main blocks name (checked
    for 3.11), a wheel might, so the function rule is the standard library's only."""
    dead: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_test(node.test):
            for statement in node.body:
                dead.update(id(inner) for inner in ast.walk(statement))
    if not dead or not private_functions:
        return dead
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("_")
        and not node.name.startswith("__")
        and not node.decorator_list
    }
    uses: dict[str, list[int]] = {name: [] for name in functions}
    owner: dict[int, str] = {}
    for name, function in functions.items():
        for inner in ast.walk(function):
            owner[id(inner)] = name
    for inner in ast.walk(tree):
        if isinstance(inner, ast.Name):
            named = inner.id
        elif isinstance(inner, ast.Attribute):
            named = inner.attr
        elif isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            named = inner.value
        else:
            continue
        if named in uses and owner.get(id(inner)) != named:
            uses[named].append(id(inner))
    changed = True
    while changed:
        changed = False
        for name, function in functions.items():
            if id(function) not in dead and uses[name] and all(u in dead for u in uses[name]):
                dead.update(id(inner) for inner in ast.walk(function))
                changed = True
    return dead


def dotted_imports(
    source: str, module: str = "", is_package: bool = False, stdlib: bool = False
) -> tuple[set[str], set[str]]:
    """``(required, optional)`` dotted names ``source`` may import: ``import a.b`` gives
    ``a.b``, ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule), relative
    imports are resolved against ``module`` (a tool's code has none). Optional: inside
    ``try``/``except ImportError``. Unparsable code imports nothing (the analysis reports it).

    For a library module (``module`` given: the standard library's, a wheel's, the engine's),
    what runs only as the main program is left out (``main_only_nodes``; ``stdlib``: the
    module is the standard library's). A tool's code has no ``module``: the engine may run it
    as ``__main__``, so all of it counts."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set(), set()
    skipped = main_only_nodes(tree, stdlib) if module else set()
    optional_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and catches_import_errors(node):
            for statement in node.body:
                optional_nodes.update(id(inner) for inner in ast.walk(statement))
    package = module if is_package else module.rpartition(".")[0]
    required: set[str] = set()
    optional: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                if keep <= 0:
                    continue
                base = ".".join([*parts[:keep], *([base] if base else [])])
            names = [base, *(f"{base}.{a.name}" for a in node.names if a.name != "*")]
        elif isinstance(node, ast.Call) and (constant := _dynamic_import_name(node)) is not None:
            names = [constant.value] if isinstance(constant.value, str) else []
        else:
            continue
        if id(node) in skipped:
            continue
        target = optional if id(node) in optional_nodes else required
        target.update(name for name in names if name and _valid_module_name(name))
    return required, optional - required


@dataclass
class _Found:
    """What the walk over the workflow tree collects."""

    tools: dict[str, ResolvedTool] = field(default_factory=dict)  # label -> tool
    required: set[str] = field(default_factory=set)
    optional: set[str] = field(default_factory=set)
    imports: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    declared: list[tuple[str, str, str]] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)
    sub_workflows: list[str] = field(default_factory=list)
    embedded: set[str] = field(default_factory=set)
    available: set[str] = field(default_factory=set)
    cjk_codecs: bool = False
    module_users: dict[str, set[str]] = field(default_factory=dict)  # dotted import -> users
    optional_imports: set[str] = field(default_factory=set)
    required_imports: set[str] = field(default_factory=set)
    unicodedata_users: set[str] = field(default_factory=set)


def _scan_code(found: _Found, source: str, file: str, where: str, user: str) -> None:
    required, optional = imported_modules(source, where, file)
    found.required |= required
    found.optional |= optional
    dotted, maybe = dotted_imports(source)
    for name in dotted | maybe:
        found.module_users.setdefault(name, set()).add(user)
    found.optional_imports |= maybe
    found.required_imports |= dotted
    # Any Python code may need unicodedata, and no import scan can rule it out: the idna codec
    # by name ("bücher".encode("idna") imports nothing), a \N{...} escape compiled in the
    # container, a regex it builds from data, a socket call with a str host name.
    found.unicodedata_users.add(user)
    if (required | optional) & CODEC_MODULES or CJK_CODEC_RE.search(source):
        found.cjk_codecs = True
    for module in required - set(sys.stdlib_module_names):
        found.imports.setdefault(module, []).append((file, where))


def analyze_tree(
    tree: WorkflowNode, model: str | None = None
) -> tuple[Analysis, dict[int, dict[str, ResolvedTool]]]:
    """Analyze a loaded workflow tree; return the report and each node's resolved tools
    (keyed by ``id(node)``, for the shake step)."""
    found = _Found()
    tools_by_node: dict[int, dict[str, ResolvedTool]] = {}
    problems: list[Problem] = []
    for depth, node in enumerate(tree.walk()):
        workflow = node.workflow
        file = str(workflow.path)
        try:
            tools = resolve_tools(workflow, node.registry, model)
        except InvalidInput as error:
            problems.extend(error.problems)
            continue
        tools_by_node[id(node)] = tools
        prefix = "" if depth == 0 else f"{workflow.id}/"
        if depth > 0:
            found.sub_workflows.append(workflow.id)
        found.embedded |= {prefix + t for t in workflow.data.get("tools") or {}}
        found.unicodedata_users |= _named_character_patterns(workflow.data, prefix)
        if depth == 0 and not workflow.portable:
            found.available |= node.registry.ids()
        try:
            for tool in tools.values():
                found.tools[prefix + tool.id] = tool
                where = json_path((*workflow.where, "tools", tool.id))
                tool_file = file if tool.origin == "embedded" else tool.origin
                for text in tool.requirements:
                    found.declared.append((text, tool_file, where + ".requirements"))
                if tool.kind == "executable":
                    _scan_code(
                        found,
                        tool.definition["source"],
                        tool_file,
                        where,
                        f"tool {prefix}{tool.id}",
                    )
            for index, step in enumerate(workflow.steps):
                if "code" in step:
                    found.inline.append(prefix + step["step_id"])
                    where = json_path((*workflow.where, "steps", index, "code"))
                    user = f"step {prefix}{step['step_id']}"
                    _scan_code(found, step["code"], file, where, user)
            deps = (workflow.data.get("dependencies") or {}).get("pip_packages") or []
            for index, item in enumerate(deps):
                where = json_path((*workflow.where, "dependencies", "pip_packages", index))
                found.declared.append((pip_package_text(item), file, where))
        except InvalidInput as error:
            problems.extend(error.problems)
    if problems:
        raise InvalidInput(problems)
    needs: PackageNeeds = resolve_needs(found.declared, found.imports)
    return _report(tree, found, needs), tools_by_node


def _named_character_patterns(data: dict, prefix: str) -> set[str]:
    """``input NAME`` for each declared input whose ``pattern`` names a character
    (``\\N{...}``): the engine's pattern check parses it with ``re``'s parser, which imports
    ``unicodedata`` for it (a doubled backslash before the ``N`` is counted too: harmless)."""
    inputs = data.get("inputs")
    if not isinstance(inputs, dict):
        return set()
    return {
        f"input {prefix}{name}"
        for name, spec in inputs.items()
        if isinstance(spec, dict)
        and isinstance(spec.get("pattern"), str)
        and NAMED_CHARACTER in spec["pattern"]
    }


def environment_variables(tools: dict[str, ResolvedTool]) -> list[str]:
    """The environment variables ``tools`` read at run time, as the engine reads them: every
    ``${VAR}`` in an API tool's URL or header values (``runner_template.http_client.expand_env``;
    bodies are not expanded), and each LLM tool's key variable (``api_key_env``, by default
    ``OLLAMA_API_KEY``). Python code may read more (``os.environ``), which no scan can know."""
    # The engine's own pattern (private there, imported so there is one definition of it).
    from runner_template.http_client import ENV_REFERENCE
    from runner_template.llm import DEFAULT_KEY_ENV

    names: set[str] = set()
    for tool in tools.values():
        if tool.kind == "llm":
            names.add(tool.definition.get("api_key_env") or DEFAULT_KEY_ENV)
        elif tool.kind == "api":
            spec = tool.definition["api_spec"]
            texts = [str(spec.get("url", ""))]
            texts += [str(value) for value in (spec.get("headers") or {}).values()]
            for text in texts:
                names.update(ENV_REFERENCE.findall(text))
    return sorted(names)


def _report(tree: WorkflowNode, found: _Found, needs: PackageNeeds) -> Analysis:
    tools = found.tools
    endpoints = {t.definition["endpoint"] for t in tools.values() if t.definition.get("endpoint")}
    endpoints |= {t.definition["api_spec"]["url"] for t in tools.values() if t.kind == "api"}
    stdlib = set(sys.stdlib_module_names)
    root = tree.workflow
    return Analysis(
        workflow_id=root.id,
        version=root.data.get("version"),
        portable=root.portable,
        llm_tools=sorted(label for label, t in tools.items() if t.kind == "llm"),
        executable_tools=sorted(label for label, t in tools.items() if t.kind == "executable"),
        api_tools=sorted(label for label, t in tools.items() if t.kind == "api"),
        models=sorted({t.definition["model"] for t in tools.values() if t.kind == "llm"}),
        python_modules=sorted(found.required),
        optional_modules=sorted(found.optional - found.required),
        third_party_modules=sorted(found.required - stdlib),
        pip_packages=needs.requirements,
        packages=needs.to_json(),
        endpoints=sorted(endpoints),
        https=any(e.lower().startswith("https://") for e in endpoints),
        tools_available=len(found.embedded | found.available),
        tools_used=len(tools),
        inline_code_steps=found.inline,
        tool_origins={label: t.origin for label, t in tools.items()},
        sub_workflows=found.sub_workflows,
        files=[str(p) for p in tree.files()],
        cjk_codecs=found.cjk_codecs or bool(found.required - stdlib),
        environment=environment_variables(tools),
        module_users={name: sorted(users) for name, users in sorted(found.module_users.items())},
        optional_imports=sorted(found.optional_imports - found.required_imports),
        unicodedata_users=sorted(found.unicodedata_users),
    )
