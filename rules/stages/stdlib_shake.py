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


def program_flags(engine_modules: list[str]) -> list[str]:
    """Nuitka flags of the one program every workflow shares (``--compiler nuitka``): every
    group the engine does not import stays out, TLS included, whatever the workflow needs; its
    tools import those modules from the layer."""
    return [*nuitka_flags(engine_modules, https=False), LAYERED_IMPORTS]


def nuitka_flags(
    tool_modules: list[str], https: bool, packages: list[str] | None = None
) -> list[str]:
    """Nuitka flags: the standard library groups to leave out (``tool_modules`` includes what
    the workflow's third-party packages import), and the data files of those packages (such
    as certifi's CA bundle) to keep."""
    flags = [f"--nofollow-import-to={name}" for name in excluded_modules(tool_modules, https)]
    flags += [
        f"--include-package-data={name}" for name in sorted(packages or []) if name.isidentifier()
    ]
    return flags
