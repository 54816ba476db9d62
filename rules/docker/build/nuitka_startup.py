"""A Nuitka user plugin (compile.sh, the shared program only): a smaller start-up set.

Nuitka keeps as "early imports" every module a ``python -S`` start imports after importing all
of the codecs, ``locale``, ``inspect`` and ``importlib._bootstrap``
(``nuitka/freezer/ImportDetection.py``, ``_detectEarlyImports``): every codec, since the
locale's encoding could be any. Those go into the binary as uncompressed bytecode, before any
``sys.path`` entry exists, and no ``--nofollow-import-to`` can take them out. The image has no
locale files, so Python always starts in UTF-8 mode: the codecs it needs to start are utf-8,
ascii and latin-1 (with the alias table). This plugin keeps those and what Nuitka itself needs
(``locale``, ``inspect``, importlib's bootstrap); every other codec comes from the program's
stdlib.zip (rules/stages/program_stdlib.py), found when a text names it. Nuitka is pinned
(rules/stages/toolchain.py), and this fails the compile loudly if the function it replaces is
gone.
"""

from nuitka.freezer import ImportDetection
from nuitka.plugins.PluginBase import NuitkaPluginBase

_START_UP = (
    "import encodings.utf_8; import encodings.ascii; import encodings.latin_1;"
    " import encodings.aliases; import locale; import inspect; import importlib._bootstrap"
)

if not callable(getattr(ImportDetection, "_detectEarlyImports", None)) or not callable(
    getattr(ImportDetection, "_detectImports", None)
):
    raise SystemExit("docker-workflow: this Nuitka has no _detectEarlyImports to narrow")


def _start_up_imports():
    return ImportDetection._detectImports(command=_START_UP)


ImportDetection._detectEarlyImports = _start_up_imports


class DockerWorkflowStartUp(NuitkaPluginBase):
    """Registers the file as a plugin; the work is the replacement above."""

    plugin_name = "docker-workflow-start-up"
    plugin_desc = "Only the codecs a UTF-8 start needs as early imports."
