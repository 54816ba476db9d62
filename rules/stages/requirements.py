"""Which pip packages a workflow needs, from what it says and from what its code imports.

The union of: every tool's ``requirements``, the workflow's ``dependencies.pip_packages``
(``{name, version}`` objects or requirement strings), and a package for each third-party module
the tools' code imports. An import is explained when a requirement names its distribution
(``yaml`` is explained by ``PyYAML``); an import that nothing names gets its distribution from
:data:`KNOWN_DISTRIBUTIONS` (unpinned: the lock pins it). An import that neither explains is an
error, unless some requirement's modules are unknown until its wheel is seen; those are checked
against the wheels' top-level modules when the lock is made (``rules/stages/lock.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from rules.errors import InvalidInput, Problem

# Import name -> the distribution that provides it, for common packages. The identity mapping
# (``requests`` -> ``requests``) needs no entry to be explained by a requirement, but an entry
# lets an unnamed import be added automatically.
KNOWN_DISTRIBUTIONS = {
    "requests": "requests",
    "urllib3": "urllib3",
    "certifi": "certifi",
    "idna": "idna",
    "charset_normalizer": "charset-normalizer",
    "chardet": "chardet",
    "httpx": "httpx",
    "yaml": "PyYAML",
    "bs4": "beautifulsoup4",
    "lxml": "lxml",
    "html5lib": "html5lib",
    "markdown": "Markdown",
    "markdown_it": "markdown-it-py",
    "mistune": "mistune",
    "bleach": "bleach",
    "jinja2": "Jinja2",
    "dateutil": "python-dateutil",
    "pytz": "pytz",
    "tzdata": "tzdata",
    "arrow": "arrow",
    "dateparser": "dateparser",
    "numpy": "numpy",
    "pandas": "pandas",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "PIL": "Pillow",
    "cv2": "opencv-python-headless",
    "pydantic": "pydantic",
    "attr": "attrs",
    "attrs": "attrs",
    "jsonschema": "jsonschema",
    "dotenv": "python-dotenv",
    "toml": "toml",
    "tomli": "tomli",
    "orjson": "orjson",
    "ujson": "ujson",
    "simplejson": "simplejson",
    "msgpack": "msgpack",
    "regex": "regex",
    "six": "six",
    "tabulate": "tabulate",
    "slugify": "python-slugify",
    "unidecode": "Unidecode",
    "emoji": "emoji",
    "langdetect": "langdetect",
    "xmltodict": "xmltodict",
    "feedparser": "feedparser",
    "html2text": "html2text",
    "markdownify": "markdownify",
    "docx": "python-docx",
    "openpyxl": "openpyxl",
    "fitz": "PyMuPDF",
    "jwt": "PyJWT",
    "Crypto": "pycryptodome",
    "nacl": "PyNaCl",
    "redis": "redis",
    "pymongo": "pymongo",
    "psycopg2": "psycopg2-binary",
    "pymysql": "PyMySQL",
    "boto3": "boto3",
    "tqdm": "tqdm",
    "click": "click",
    "rich": "rich",
    "networkx": "networkx",
    "sympy": "sympy",
    "validators": "validators",
    "phonenumbers": "phonenumbers",
    "tiktoken": "tiktoken",
}


def parse_requirement(text: str, file: str, where: str) -> Requirement:
    """A pip requirement string, checked; direct URLs are refused (the lock needs an index)."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        raise InvalidInput.single(
            file, where, f"{text!r} is not a pip requirement: {error}"
        ) from None
    if requirement.url:
        raise InvalidInput.single(
            file,
            where,
            f"{text!r} names a URL: requirements must come from the package index, pinned"
            " by version (e.g. 'requests==2.32.3')",
        )
    return requirement


def pip_package_text(item: object) -> str:
    """``dependencies.pip_packages`` entries: strings, or ``{name, version}`` objects (a bare
    version such as ``2.31.0`` means ``==2.31.0``)."""
    if isinstance(item, str):
        return item
    assert isinstance(item, dict)
    version = str(item.get("version") or "").strip()
    if version and version[0].isdigit():
        version = "==" + version
    return f"{item['name']}{version}"


@dataclass
class PackageNeeds:
    """The packages a workflow needs, and the imports they must provide."""

    requirements: list[str] = field(default_factory=list)
    imports: dict[str, list[list[str]]] = field(default_factory=dict)  # module -> [file, path]s
    unexplained: list[str] = field(default_factory=list)  # to check against the lock's wheels
    origins: dict[str, list[str]] = field(default_factory=dict)  # package -> [file, path]

    def to_json(self) -> dict:
        return {
            "requirements": self.requirements,
            "imports": self.imports,
            "unexplained": self.unexplained,
            "origins": self.origins,
        }


def resolve_needs(
    declared: list[tuple[str, str, str]], imports: dict[str, list[tuple[str, str]]]
) -> PackageNeeds:
    """``declared``: (requirement text, file, JSON path); ``imports``: third-party module ->
    (file, JSON path) of the code importing it. Raises :class:`InvalidInput` for bad
    requirements and for imports nothing can explain."""
    problems: list[Problem] = []
    requirements: dict[str, str] = {}
    named: set[str] = set()
    origins: dict[str, list[str]] = {}
    for text, file, where in declared:
        try:
            requirement = parse_requirement(text, file, where)
        except InvalidInput as error:
            problems.extend(error.problems)
            continue
        requirements[str(requirement)] = str(requirement)
        named.add(canonicalize_name(requirement.name))
        origins.setdefault(canonicalize_name(requirement.name), [file, where])
    needs = PackageNeeds(
        imports={m: [[f, w] for f, w in users] for m, users in sorted(imports.items())},
        origins=origins,
    )
    unknown_requirements = named - {canonicalize_name(d) for d in KNOWN_DISTRIBUTIONS.values()}
    for module, users in sorted(imports.items()):
        distribution = KNOWN_DISTRIBUTIONS.get(module, module)
        if canonicalize_name(distribution) in named:
            continue
        if module in KNOWN_DISTRIBUTIONS:
            requirements.setdefault(distribution, distribution)
            named.add(canonicalize_name(distribution))
            origins.setdefault(canonicalize_name(distribution), list(users[0]))
        elif unknown_requirements:
            needs.unexplained.append(module)
        else:
            file, where = users[0]
            problems.append(
                Problem(
                    file,
                    where,
                    f"imports '{module}', which is not in the standard library and which no"
                    " requirement names: add the package that provides it to the tool's"
                    " 'requirements' (or to dependencies.pip_packages)",
                )
            )
    if problems:
        raise InvalidInput(problems)
    needs.requirements = sorted(requirements.values(), key=str.lower)
    return needs
