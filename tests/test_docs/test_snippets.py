# Copyright (c) mmpsearch contributors. All rights reserved.
"""Every fenced code block of README.md and docs/*.md is a tested example.

Each block carries a language tag that says how it is checked:

* ``python`` with ``_base_``: a config snippet; it is loaded over its base (the base is
  looked up under ``configs/`` by name) and its model is built.
* ``python`` made only of ``name = dict(type=...)`` assignments: a config fragment; each
  assignment is built with the registry its name implies (``model``, ``*_evaluator``).
* other ``python``: a script, run in a folder holding the files it names (``results.pkl``).
* ``bash``/``shell``: command lines; every repository path they name exists, and every
  ``--option`` given to a tool is one the tool (or the script it runs) defines.
* ``text``: illustrative (directory trees, diagrams, outlines of code); not run.

A block without a tag fails: say what it is.
"""
import ast
import glob
import os
import os.path as osp
import re
import shlex

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOCS = ['README.md'] + sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'docs',
                                                                              '*.md')))
TAGS = ('python', 'bash', 'shell', 'text')
_FENCE = re.compile(r'^(\s*)```(.*)$')


def code_blocks(path):
    """[(line number, tag, code)] of the fenced blocks of a Markdown file."""
    blocks, open_at, tag, lines = [], None, None, []
    with open(osp.join(ROOT, path), encoding='utf-8') as f:
        for num, line in enumerate(f, 1):
            m = _FENCE.match(line.rstrip('\n'))
            if m and open_at is None:
                open_at, tag, lines = num, m.group(2).strip(), []
            elif m:
                blocks.append((open_at, tag, '\n'.join(lines) + '\n'))
                open_at = None
            elif open_at is not None:
                lines.append(line.rstrip('\n'))
    assert open_at is None, f'{path}:{open_at}: unclosed code block'
    return blocks


ALL_BLOCKS = [(path, *b) for path in DOCS for b in code_blocks(path)]


def _ids(blocks):
    return [f'{path}:{line}' for path, line, *_ in blocks]


def test_docs_have_blocks_and_tags():
    assert len(ALL_BLOCKS) >= 10
    untagged = [f'{p}:{n} "{t}"' for p, n, t, _ in ALL_BLOCKS if t not in TAGS]
    assert not untagged, ('code blocks need one of the tags ' + ', '.join(TAGS) +
                          f' (`text` for illustrative ones): {untagged}')


# ------------------------------------------------------------------------ python
PYTHON = [b for b in ALL_BLOCKS if b[2] == 'python']


def _find_config(name):
    hits = glob.glob(osp.join(ROOT, 'configs', '**', osp.basename(name)), recursive=True)
    assert len(hits) == 1, f'base config {name}: found {hits}'
    return hits[0]


def _is_fragment(tree):
    return all(isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
               and getattr(n.value.func, 'id', None) == 'dict' for n in tree.body)


def _build(name, cfg):
    from mmpsearch.registry import METRICS, MODELS
    with DefaultScope.overwrite_default_scope('mmpsearch'):
        if name == 'model':
            return MODELS.build(cfg)
        if name.endswith('_evaluator'):
            return METRICS.build(cfg)
    raise AssertionError(f'no registry known for a config fragment named {name!r}')


def _dump_file(folder):
    from mmpsearch.evaluation import make_dump, write_dump
    from mmpsearch.evaluation.toy_data import random_case
    case = random_case(np.random.default_rng(0), 'PRW', num_images=6, num_queries=2)
    write_dump(osp.join(folder, 'results.pkl'),
               make_dump(case.records(), case.search_protocol, 0.05))


@pytest.mark.parametrize('path,line,tag,code', PYTHON, ids=_ids(PYTHON))
def test_python_block(path, line, tag, code, tmp_path, monkeypatch):
    tree = ast.parse(code, filename=f'{path}:{line}')
    where = f'{path}:{line}'
    if '_base_' in code:
        base = re.search(r"_base_\s*=\s*'([^']+)'", code)
        assert base, f'{where}: one _base_ path in quotes expected'
        snippet = code.replace(base.group(0), f'_base_ = {_find_config(base.group(1))!r}')
        (tmp_path / 'snippet.py').write_text(snippet)
        cfg = Config.fromfile(str(tmp_path / 'snippet.py'))
        _build('model', cfg.model)
    elif _is_fragment(tree):
        for node in tree.body:
            name = node.targets[0].id
            value = eval(compile(ast.Expression(node.value), where, 'eval'), {'dict': dict})
            _build(name, value)
    else:
        if 'results.pkl' in code:
            _dump_file(str(tmp_path))
        monkeypatch.chdir(tmp_path)
        exec(compile(tree, where, 'exec'), {'__name__': '__snippet__'})


# ------------------------------------------------------------------------ shell
SHELL = [b for b in ALL_BLOCKS if b[2] in ('bash', 'shell')]
_REPO_DIRS = ('tools/', 'configs/', 'docs/', 'tests/')
# options of mim itself (the rest go to tools/train.py, tools/test.py)
_MIM_OPTIONS = {'--checkpoint', '--gpus', '--launcher', '--srun-args', '--partition'}
_PLAIN_COMMANDS = {'git', 'cd', 'source'}


def _commands(code):
    joined = re.sub(r'\\\n\s*', ' ', code)
    for raw in joined.splitlines():
        line = raw.split(' #')[0].strip()
        if line and not line.startswith('#'):
            yield line


def _options(script):
    """``--options`` a tool accepts: those in its source, and in the Python tools a shell
    script runs."""
    with open(script) as f:
        src = f.read()
    opts = set(re.findall(r"""['"](--[\w-]+)['"]""", src))
    if script.endswith('.sh'):
        opts |= set(re.findall(r'^\s*(--[\w-]+)\)', src, re.M))  # case patterns
        for name in set(re.findall(r'([\w]+)\.py', src)):
            tool = osp.join(ROOT, 'tools', name + '.py')
            if osp.isfile(tool):
                opts |= _options(tool)
    return opts


def _check_command(line, where):
    tokens = [t.strip('[]') for t in shlex.split(line)]
    while tokens and re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*=.*', tokens[0]):
        tokens = tokens[1:]  # environment assignments before the command (VAR=value cmd)
    for tok in tokens:
        if tok.startswith(_REPO_DIRS):
            assert osp.exists(osp.join(ROOT, tok)), f'{where}: `{line}` names {tok}, ' \
                'which does not exist'
    head = tokens[0]
    if head in _PLAIN_COMMANDS:
        return
    if head == 'mim':
        assert tokens[1] in ('train', 'test') and tokens[2] == 'mmpsearch', f'{where}: {line}'
        _find_config(tokens[3])
        accepted = _options(osp.join(ROOT, 'tools', tokens[1] + '.py')) | _MIM_OPTIONS
        options = tokens[4:]
    elif head in ('python', 'bash'):
        script = tokens[1]
        assert script.startswith('tools/'), f'{where}: `{line}` runs {script}, not a tool'
        accepted = _options(osp.join(ROOT, script))
        options = tokens[2:]
    else:
        raise AssertionError(f'{where}: `{line}`: unknown command {head!r} (tag the block '
                             '`text` if it is not meant to be run)')
    unknown = [o for o in options if o.startswith('--') and o.split('=')[0] not in accepted]
    assert not unknown, f'{where}: `{line}`: {unknown} not options of {tokens[1]}'


@pytest.mark.parametrize('path,line,tag,code', SHELL, ids=_ids(SHELL))
def test_shell_block(path, line, tag, code):
    commands = list(_commands(code))
    assert commands, f'{path}:{line}: empty block'
    for cmd in commands:
        _check_command(cmd, f'{path}:{line}')


def test_checker_catches_mistakes():
    with pytest.raises(AssertionError, match='not options'):
        _check_command('python tools/train.py CONFIG --nope', 'x')
    with pytest.raises(AssertionError, match='does not exist'):
        _check_command('python tools/no_such_tool.py', 'x')
    _check_command('bash tools/dist_train.sh CONFIG 2 --work-dir w --amp', 'x')
