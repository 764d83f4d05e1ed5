# Copyright (c) mmpsearch contributors. All rights reserved.
"""The GPU set-up that README.md and docs/get_started.md ("GPU machine") document is what
tools/setup_env.sh implements: every documented flag and variable exists in the script and
in its ``--help``, with the documented defaults. (The CUDA build itself is not run in the
test suite: tools/analysis_tools/build_cuda_stack.sh is the slow check.)"""
import os.path as osp
import re
import subprocess

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'setup_env.sh')


def _read(*parts):
    with open(osp.join(REPO, *parts), encoding='utf-8') as f:
        return f.read()


def _gpu_section():
    text = _read('docs', 'get_started.md')
    match = re.search(r'^## \d+\. GPU machine\n(.*?)(?=^## )', text, re.S | re.M)
    assert match, 'docs/get_started.md has no "GPU machine" section'
    return match.group(1)


def _documented_names(text):
    """Flags (``--cuda``) and upper-case variables (``TORCH_CUDA_ARCH_LIST``) written in
    code spans or code blocks."""
    code = ' '.join(re.findall(r'`([^`\n]+)`', text) +
                    re.findall(r'```bash\n(.*?)```', text, re.S))
    flags = set(re.findall(r'(?<![\w-])--[a-z][a-z-]+', code))
    names = set(re.findall(r'\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\bCPATH\b', code))
    return flags, names


def test_documented_flags_and_variables_exist_in_the_script():
    script = _read('tools', 'setup_env.sh')
    flags, names = _documented_names(_gpu_section())
    assert {'--cuda'} <= flags
    assert {'TORCH_CUDA', 'TORCH_CUDA_ARCH_LIST', 'CUDA_HOME', 'MMCV_BUILD_LOG',
            'FORCE_CUDA', 'MAX_JOBS', 'TORCH_CUDA_VERSION', 'TORCHVISION_CUDA_VERSION'} <= names
    # Flags the GPU section shows for other tools (pip, cuobjdump) are not set-up flags.
    flags -= {'--list-elf', '--dryrun'}
    for flag in flags:
        assert re.search(rf'^\s+{re.escape(flag)}\)', script, re.M), f'{flag} is not parsed'
    for name in names:
        assert re.search(rf'\b{name}\b', script), f'{name} is documented but not used'


def test_documented_defaults_match_the_script():
    script = _read('tools', 'setup_env.sh')
    section = _gpu_section()
    assert 'DEFAULT_CUDA_ARCH_LIST="8.0;9.0"' in script and '"8.0;9.0"' in section
    assert 'TORCH_CUDA_VERSION=${TORCH_CUDA_VERSION:-2.14.1}' in script
    assert 'TORCHVISION_CUDA_VERSION=${TORCHVISION_CUDA_VERSION:-0.29.1}' in script
    assert 'torch==2.14.1' in section and 'torchvision==0.29.1' in section
    assert '"CFLAGS=-O3 -g0 -DNDEBUG" "CXXFLAGS=-O3 -g0 -DNDEBUG"' in script
    assert '-O3 -g0 -DNDEBUG' in section
    # The CPU default is unchanged: torch 2.13.0 unless asked otherwise.
    assert 'TORCH_VERSION=${TORCH_VERSION:-2.13.0}' in script
    readme = _read('README.md')
    assert 'tools/setup_env.sh --cuda' in readme and '"8.0;9.0"' in readme


def test_help_lists_the_gpu_options():
    out = subprocess.run(['bash', SCRIPT, '--help'], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for word in ('--cuda', 'TORCH_CUDA=1', 'TORCH_CUDA_ARCH_LIST', 'CUDA_HOME',
                 'MMCV_BUILD_LOG', '8.0;9.0', 'C++20'):
        assert word in out.stdout, word
    assert 'set -euo' not in out.stdout  # the comment header only
    bad = subprocess.run(['bash', SCRIPT, '--gpu'], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown argument '--gpu'" in bad.stderr
