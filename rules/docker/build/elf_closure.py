"""Copy the shared libraries that the ELF files under a tree need into that tree.

Runs inside the builder after compiling: ``elf_closure.py ROOT [MORE_DIRS...]``. For each ELF
file under ``ROOT`` and ``MORE_DIRS`` (the program, its extension modules, an interpreter; for a
onefile program, the unpacked distribution it carries), ``ldd`` names the libraries it loads;
each is copied to the same absolute path under ``ROOT``, so a ``FROM scratch`` image made from
``ROOT`` runs the program with nothing else. Libraries shipped inside those trees are left alone.
"""

import os
import re
import shutil
import subprocess
import sys

LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)")


def is_elf(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def needed(path):
    result = subprocess.run(["ldd", path], capture_output=True, text=True, check=False)
    if result.returncode != 0:  # static binaries and non-objects
        return []
    return [m.group(1) for line in result.stdout.splitlines() if (m := LDD_LINE.match(line))]


def main(root, more):
    elves = []
    trees = [root, *more]
    for tree in trees:
        for folder, _, files in os.walk(tree):
            for name in files:
                path = os.path.join(folder, name)
                if not os.path.islink(path) and is_elf(path):
                    elves.append(path)
    copied = 0
    for elf in elves:
        for library in needed(elf):
            if any(os.path.realpath(library).startswith(t + "/") for t in trees):
                continue  # shipped inside a tree already (found through $ORIGIN)
            target = root + library
            if os.path.exists(target):
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.realpath(library), target)
            copied += 1
    copied += _copy_unwinder(root)
    print(f"elf_closure: {len(elves)} ELF files, {copied} libraries copied", file=sys.stderr)


def _copy_unwinder(root):
    """glibc loads libgcc_s.so.1 with dlopen (so ldd never names it) when a thread ends through
    pthread_exit or is cancelled, and aborts the program when it is missing: ship it beside
    the libc the program links against. Returns how many files were copied (0 or 1)."""
    for folder, _, files in os.walk(root):
        if "libc.so.6" not in files:
            continue
        system_dir = folder[len(root) :] or "/"
        source = os.path.join(system_dir, "libgcc_s.so.1")
        target = os.path.join(folder, "libgcc_s.so.1")
        if os.path.exists(source) and not os.path.exists(target):
            shutil.copy2(os.path.realpath(source), target)
            return 1
    return 0


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), [d.rstrip("/") for d in sys.argv[2:]])
