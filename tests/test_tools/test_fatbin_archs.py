# Copyright (c) mmpsearch contributors. All rights reserved.
"""tools/analysis_tools/fatbin_archs.py: GPU archs of a CUDA extension without cuobjdump,
checked on a hand-made ELF file whose fat binary has the CUDA toolkit's layout."""
import os.path as osp
import struct
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'fatbin_archs.py')


def _entry(kind, arch, payload=b'\0' * 24):
    header = struct.pack('<HHIQ', kind, 0x0101, 64, len(payload))
    header += struct.pack('<IIHHI', 0, 0, 1, 7, arch)  # ..., minor/major version, arch
    return header.ljust(64, b'\0') + payload


def _fatbin(entries):
    body = b''.join(entries)
    return struct.pack('<IHHQ', 0xBA55ED50, 1, 16, len(body)) + body


def _elf(path, sections):
    """A minimal ELF64 LE file with the given {name: bytes} sections."""
    names = b'\0.shstrtab\0' + b''.join(n.encode() + b'\0' for n in sections)
    blobs = [names] + list(sections.values())
    name_offs = [1] + [names.index(n.encode() + b'\0') for n in sections]
    data, offsets = b'', []
    for b in blobs:
        offsets.append(64 + len(data))
        data += b + b'\0' * (-len(b) % 8)
    shoff = 64 + len(data)
    shdrs = b'\0' * 64  # section 0: null
    for name_off, off, b in zip(name_offs, offsets, blobs):
        shdrs += struct.pack('<IIQQQQIIQQ', name_off, 1, 0, 0, off, len(b), 0, 0, 8, 0)
    ident = b'\x7fELF' + bytes([2, 1, 1]) + b'\0' * 9
    header = ident + struct.pack('<HHIQQQIHHHHHH', 3, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                                 len(blobs) + 1, 1)
    with open(path, 'wb') as f:
        f.write(header + data + shdrs)


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def cuda_ext(tmp_path):
    blob = (_fatbin([_entry(2, 80), _entry(2, 90)]) + _fatbin([_entry(2, 80), _entry(1, 90)]))
    path = str(tmp_path / '_ext.so')
    _elf(path, {'.text': b'\x90' * 40, '.nv_fatbin': blob})
    return path


def test_lists_cubins_and_ptx_per_arch(cuda_ext):
    res = _run(cuda_ext, '--require', '8.0', '9.0+PTX')
    assert res.returncode == 0, res.stderr
    assert res.stdout.split('\n')[:3] == ['cubin sm_80 2', 'cubin sm_90 1', 'ptx sm_90 1']


def test_missing_arch_fails(cuda_ext):
    res = _run(cuda_ext, '--require', '8.0', '8.6')
    assert res.returncode == 1 and 'no cubin for 8.6' in res.stderr


def test_library_without_cuda_code(tmp_path):
    path = str(tmp_path / 'cpu_ext.so')
    _elf(path, {'.text': b'\x90' * 16})
    res = _run(path)
    assert res.returncode == 1 and 'no CUDA fat binary' in res.stderr
    not_elf = tmp_path / 'x.so'
    not_elf.write_bytes(b'MZ' + b'\0' * 100)
    res = _run(str(not_elf))
    assert res.returncode != 0 and 'not a 64-bit little-endian ELF file' in res.stderr
