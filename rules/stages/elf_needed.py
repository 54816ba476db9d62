"""The ``DT_NEEDED`` entries of an ELF shared object, read on the host, for either platform.

The module layer ships a wheel's extension modules (PyYAML's C loader) and must know which
system libraries they load (auditwheel bundles all but the manylinux policy's: libc, libm,
libstdc++, libgcc_s, ...). ``ldd`` would run the foreign loader, under QEMU; reading the
dynamic section takes microseconds. Only what the two supported platforms produce is read:
64-bit little-endian ELF (x86_64, aarch64).
"""

from __future__ import annotations

import struct
from pathlib import Path

DT_NEEDED, DT_STRTAB = 1, 5
PT_LOAD, PT_DYNAMIC = 1, 2


def needed_libraries(path: Path) -> list[str]:
    """Sonames ``path`` loads (empty for what is not a 64-bit little-endian ELF object)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    phoff, phentsize, phnum = (
        struct.unpack_from("<Q", data, 0x20)[0],
        *struct.unpack_from("<HH", data, 0x36),
    )
    loads, dynamic = [], None
    for index in range(phnum):
        kind, _, offset, vaddr, _, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + index * phentsize
        )
        if kind == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif kind == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return []
    entries = [struct.unpack_from("<qQ", data, dynamic[0] + at) for at in range(0, dynamic[1], 16)]
    strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
    if strtab is None:
        return []
    base = next((off + strtab - va for va, off, size in loads if va <= strtab < va + size), None)
    if base is None:
        return []
    names = []
    for tag, value in entries:
        if tag == DT_NEEDED:
            end = data.index(b"\0", base + value)
            names.append(data[base + value : end].decode())
    return names
