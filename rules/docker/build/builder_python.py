"""Print the facts about a builder's Python that only its interpreter knows, as JSON.

Runs inside the builder, once per (builder image, platform): ``python3 builder_python.py``
(for a foreign platform under QEMU: one interpreter start, nothing else). Everything else, the
copy of the standard library, the extension modules' libraries and the CA bundle, is read on
the host from a created container (``rules/stages/builder_python.py``).
"""

import _imp
import sys

# Modules every interpreter has loaded before any import (frozen: importlib's bootstrap,
# zipimport, ...): taken before this script imports anything itself.
PRELOADED = sorted(name for name in sys.modules if _imp.is_frozen(name))

import json  # noqa: E402
import os  # noqa: E402
import sysconfig  # noqa: E402

print(
    json.dumps(
        {
            "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "stdlib": sysconfig.get_paths()["stdlib"],
            "builtin": sorted(sys.builtin_module_names),
            "preloaded": PRELOADED,
            "multiarch": sysconfig.get_config_var("MULTIARCH") or "",
            "executable": os.path.realpath(sys.executable),
            "cache_tag": sys.implementation.cache_tag,
        },
        sort_keys=True,
    )
)
