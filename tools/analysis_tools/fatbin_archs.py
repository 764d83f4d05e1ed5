# Copyright (c) mmpsearch contributors. All rights reserved.
"""List the GPU code a CUDA extension carries, without the CUDA toolkit's ``cuobjdump``.

A CUDA build embeds its kernels in the ``.nv_fatbin`` section of the shared object: a
sequence of fat binaries (magic ``0xBA55ED50``), each a list of entries, every entry a
cubin (machine code for one SM arch) or PTX (portable code, JIT-compiled by the driver).
Minimal toolkits (e.g. ``cuda-nvcc`` alone) lack ``cuobjdump``; this reads the same
information from the file with the standard library only, so
``tools/analysis_tools/build_cuda_stack.sh`` can check that every requested arch was
compiled.

Example:
    python tools/analysis_tools/fatbin_archs.py .venv/lib/python3.11/site-packages/mmcv/_ext*.so \
        --require 8.0 9.0
prints one line per (kind, arch) with its entry count, e.g. ``cubin sm_80 58``, and exits
with status 1 when a ``--require``d arch has no cubin.
"""
import argparse
import struct
import sys
from collections import Counter
from typing import Dict, Tuple

FATBIN_MAGIC = 0xBA55ED50
ENTRY_KINDS = {1: 'ptx', 2: 'cubin'}


def elf_section(path: str, name: str) -> bytes:
    """The bytes of section ``name`` of a 64-bit little-endian ELF file (b'' if absent)."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] != b'\x7fELF' or data[4] != 2 or data[5] != 1:
        raise ValueError(f'{path}: not a 64-bit little-endian ELF file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3A)

    def header(i):  # (name offset, file offset, size)
        base = shoff + i * shentsize
        name_off, = struct.unpack_from('<I', data, base)
        offset, size = struct.unpack_from('<QQ', data, base + 0x18)
        return name_off, offset, size

    _, str_off, _ = header(shstrndx)
    for i in range(shnum):
        name_off, offset, size = header(i)
        end = data.index(b'\0', str_off + name_off)
        if data[str_off + name_off:end].decode() == name:
            return data[offset:offset + size]
    return b''


def fatbin_entries(blob: bytes) -> Dict[Tuple[str, int], int]:
    """Count the entries of the fat binaries in ``blob`` by (kind, SM arch number).

    Layout (as the CUDA toolkit writes it): a 16-byte header ``<I magic, H version,
    H header size, Q payload size>``, then entries ``<H kind, H flags, I header size,
    Q payload size, ...>`` with the arch (e.g. 90 for sm_90) as a uint32 at byte 28 of
    the entry header. Fat binaries in the section are 8-byte aligned.
    """
    counts: Counter = Counter()
    pos = 0
    while pos + 16 <= len(blob):
        magic, _, header_size, payload = struct.unpack_from('<IHHQ', blob, pos)
        if magic != FATBIN_MAGIC:
            pos += 8
            continue
        entry, end = pos + header_size, pos + header_size + payload
        while entry + 32 <= end:
            kind, _, entry_header, entry_size = struct.unpack_from('<HHIQ', blob, entry)
            arch, = struct.unpack_from('<I', blob, entry + 28)
            counts[(ENTRY_KINDS.get(kind, f'kind{kind}'), arch)] += 1
            entry += entry_header + entry_size
        pos = end
    return dict(counts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='GPU archs compiled into a CUDA extension')
    parser.add_argument('library', help='shared object, e.g. mmcv/_ext*.so')
    parser.add_argument('--require', nargs='+', default=[], metavar='ARCH',
                        help='archs that must have a cubin, as in TORCH_CUDA_ARCH_LIST '
                        '(8.0 9.0; a +PTX suffix is ignored)')
    args = parser.parse_args(argv)
    entries = fatbin_entries(elf_section(args.library, '.nv_fatbin'))
    if not entries:
        print(f'{args.library}: no CUDA fat binary (built without CUDA ops?)', file=sys.stderr)
        return 1
    for (kind, arch), n in sorted(entries.items()):
        print(f'{kind} sm_{arch} {n}')
    missing = [a for a in args.require
               if ('cubin', int(a.replace('+PTX', '').replace('.', ''))) not in entries]
    if missing:
        print(f'{args.library}: no cubin for {", ".join(missing)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
