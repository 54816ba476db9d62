"""The ``DT_NEEDED`` entries and the ``PT_INTERP`` of an ELF file, read on the host, for
either platform.

The module layer ships extension modules (the builder's ``_ssl``, PyYAML's C loader) and must
know which system libraries they load (auditwheel bundles all but the manylinux policy's: libc,
libm, libstdc++, libgcc_s, ...). ``ldd`` would run the foreign loader, under QEMU; reading the
dynamic section takes microseconds. Only what the two supported platforms produce is read:
64-bit little-endian ELF (x86_64, aarch64).
"""

from __future__ import annotations

import struct
from pathlib import Path

DT_NEEDED, DT_STRTAB = 1, 5
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3


def _program_headers(data: bytes) -> list[tuple[int, int, int, int]]:
    """(type, file offset, virtual address, file size) of each program header; empty for what
    is not a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or len(data) < 0x40 or data[4] != 2 or data[5] != 1:
        return []
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    headers = []
    for index in range(phnum):
        kind, _, offset, vaddr, _, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + index * phentsize
        )
        headers.append((kind, offset, vaddr, filesz))
    return headers


def interpreter(path: Path) -> str | None:
    """The program loader an executable names (``/lib64/ld-linux-x86-64.so.2``), if any."""
    data = path.read_bytes()
    for kind, offset, _, size in _program_headers(data):
        if kind == PT_INTERP:
            return data[offset : offset + size].split(b"\0", 1)[0].decode()
    return None


def needed_libraries(path: Path) -> list[str]:
    """Sonames ``path`` loads (empty for what is not a 64-bit little-endian ELF object)."""
    data = path.read_bytes()
    headers = _program_headers(data)
    loads = [(vaddr, offset, size) for kind, offset, vaddr, size in headers if kind == PT_LOAD]
    dynamic = next(((off, size) for kind, off, _, size in headers if kind == PT_DYNAMIC), None)
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
