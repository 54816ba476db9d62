"""Tree-shaking of the standard library inside the compiled program.

Nuitka's standalone mode includes most of the standard library, as bytecode, whether or not
anything imports it, plus the extension modules and shared libraries those parts load
(``_hashlib`` brings libcrypto, 4.7 MB; ``_lzma`` liblzma; ``_decimal``). The engine needs none
of them, so they are left out with ``--nofollow-import-to``, group by group, unless a tool of
the workflow, or a third-party package it uses, imports a module of that group. ``ssl`` (and
with it libssl and libcrypto) stays out unless an endpoint is https or a package needs it.

Two things stay whatever we say: the ``encodings`` package with the CJK codecs (Nuitka: "required
for CPython library startup", about 1 MB) and libexpat (Debian's static libpython has pyexpat
built in).
"""

from __future__ import annotations

# Group name -> the modules that go (or stay) together.
EXCLUDABLE: dict[str, tuple[str, ...]] = {
    "hashlib": ("hashlib", "_hashlib", "hmac", "secrets"),
    "xml": ("xml", "pyexpat", "xmlrpc", "plistlib"),
    "compression": ("bz2", "_bz2", "lzma", "_lzma", "zipfile", "tarfile", "gzip"),
    "decimal": ("decimal", "_decimal", "_pydecimal", "fractions", "statistics"),
    "databases": ("sqlite3", "_sqlite3", "dbm", "_dbm", "_gdbm", "shelve"),
    "ui": ("tkinter", "_tkinter", "turtle", "curses", "_curses", "_curses_panel", "readline"),
    "dev_tools": (
        "unittest",
        "doctest",
        "pydoc",
        "pydoc_data",
        "pdb",
        "lib2to3",
        "idlelib",
        "ensurepip",
        "venv",
        "distutils",
        "cProfile",
        "profile",
        "pstats",
        "trace",
    ),
    "concurrency": ("asyncio", "multiprocessing", "concurrent", "_multiprocessing"),
    "mail_and_net": (
        "smtplib",
        "imaplib",
        "poplib",
        "ftplib",
        "nntplib",
        "telnetlib",
        "mailbox",
        "xdrlib",
        "cgi",
        "cgitb",
        "wsgiref",
    ),
    "ctypes": ("ctypes", "_ctypes"),
    "audio": ("audioop", "wave", "aifc", "sunau", "chunk", "sndhdr", "ossaudiodev"),
}
TLS = ("ssl", "_ssl")

# Left out of the shared program only (its tools get them from the layer when they import
# them): modules Nuitka adds as "the non-excluded parts of the standard library" that the engine
# cannot reach. The engine's import closure, followed through every import of each module
# (inside functions too) but not into the groups above, which the program leaves out anyway,
# has none of them (tests/rules/stages/test_build_rules.py walks it). A module reached only
# through a left-out group never loads without that group, and when a tool imports the group the
# layer's closure brings both. Nothing reaches them by a computed name either: what is looked up
# that way stays (the codecs, ``encodings.*`` and ``stringprep`` for idna; ``sysconfig`` with
# its ``_sysconfigdata_*``), and so do ``importlib.util`` and ``pkgutil``, which import
# machinery may use.
ENGINE_UNUSED: tuple[str, ...] = (
    "__hello__",  # CPython's own frozen-import test fixtures
    "__phello__",
    "_pyio",  # the pure-Python io, for io's tests; io is _io
    "sre_compile",  # 3.11's deprecated aliases of re._compiler, re._constants, re._parser
    "sre_constants",
    "sre_parse",
    "imp",  # deprecated; nothing of the engine imports it
    "importlib.simple",  # resource-reader bases for third-party loaders
    "importlib.resources.simple",
    "html.parser",  # the engine uses html.escape only
    "_markupbase",  # html.parser's base
    "_compression",  # the compression group's base (bz2, lzma, gzip)
    "contextvars",  # for asyncio and decimal, both left out
    "numbers",  # for decimal, fractions and statistics, left out
    "cmd",  # interactive tools (pdb, code, the REPL's completion)
    "code",
    "codeop",
    "rlcompleter",
    "webbrowser",
    "netrc",  # for ftplib and urllib.request, which the engine does not import
    "nturl2path",  # urllib.request on Windows
    "colorsys",  # stand-alone utilities nothing of the engine imports
    "configparser",
    "crypt",
    "difflib",
    "filecmp",
    "fileinput",
    "glob",
    "graphlib",
    "imghdr",
    "mailcap",
    "modulefinder",
    "pickletools",
    "pipes",
    "pyclbr",
    "sched",
    "shlex",
    "symtable",
    "timeit",
    "tomllib",
    "uu",
)


def excluded_modules(tool_modules: list[str], https: bool) -> list[str]:
    """Modules to leave out of the binary, given the tools' imports and the TLS need."""
    wanted = set(tool_modules)
    out: list[str] = []
    for members in EXCLUDABLE.values():
        if not wanted & set(members):
            out.extend(members)
    if not https and not wanted & set(TLS):
        out.extend(TLS)
    return sorted(out)


# The standalone program stops a module left out with --nofollow-import-to from loading at
# all ("actively excluded"); with this flag such an import falls back to the normal path
# finders, which find the workflow's module layer beside the program
# (rules/stages/modules_layer.py).
LAYERED_IMPORTS = "--no-deployment-flag=excluded-module-usage"


# json's C speedups. Nuitka's package configuration marks ``_json`` "no-auto-follow" from
# json.decoder, json.encoder and json.scanner, so without this the program's json ran in pure
# Python: the compiled image spent about 400 µs of CPU per calculator request against about
# 270 µs with it, as much as plain CPython (docs/RUNNER.md). The service parses and writes JSON
# on every request.
JSON_SPEEDUPS = "--include-module=_json"

# The engine itself as bytecode in the program (the entry point stays compiled). Measured in one
# run (docs/IMAGES.md): the same CPU per served request as the engine compiled to C, 0.9 MB less
# program (amd64), and Nuitka no longer optimizes and generates C for its 34 modules on every
# compile, which is the part of a compile that its cache does not cover and that runs under QEMU
# for arm64. ``TUNING=compiled-engine`` (bench/images.py) compiles it again to measure it.
ENGINE_AS_BYTECODE = "--noinclude-custom-mode=runner_template:bytecode"


def program_flags(engine_modules: list[str]) -> list[str]:
    """Nuitka flags of the one program every workflow shares (``--compiler nuitka``): every
    group the engine does not import stays out, TLS included, whatever the workflow needs, and so
    do the modules of ``ENGINE_UNUSED``; its tools import those modules from the layer. The
    engine goes in as bytecode (``ENGINE_AS_BYTECODE``)."""
    unused = [f"--nofollow-import-to={name}" for name in sorted(ENGINE_UNUSED)]
    flags = nuitka_flags(engine_modules, https=False)
    return [*flags, *unused, LAYERED_IMPORTS, ENGINE_AS_BYTECODE]


def nuitka_flags(
    tool_modules: list[str], https: bool, packages: list[str] | None = None
) -> list[str]:
    """Nuitka flags: the standard library groups to leave out (``tool_modules`` includes what
    the workflow's third-party packages import), and the data files of those packages (such
    as certifi's CA bundle) to keep."""
    flags = [f"--nofollow-import-to={name}" for name in excluded_modules(tool_modules, https)]
    flags.append(JSON_SPEEDUPS)
    flags += [
        f"--include-package-data={name}" for name in sorted(packages or []) if name.isidentifier()
    ]
    return flags
