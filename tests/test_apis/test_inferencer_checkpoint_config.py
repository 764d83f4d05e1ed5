# Copyright (c) mmpsearch contributors. All rights reserved.
"""``PersonSearchInferencer(None, ckpt)`` reads the config stored in the checkpoint
without executing it (docs/design.md, "Loading artefacts")."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmpsearch.utils.literal_config import UnsafeConfigError, parse_literal_config

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_CONFIG = osp.join(_REPO, 'configs', 'spnet', 'spnet-s_convnext-atto_quickstart_synthetic-prw.py')


def _code_configs(marker):
    touch = f'open({str(marker)!r}, "w").write("ran")'
    return {
        'statement': f"model = dict(type='SPNet')\n{touch}\n",
        'import': f"import os\nos.system('touch {marker}')\nmodel = dict(type='SPNet')\n",
        'call_in_value': f"model = dict(type='SPNet', x=({touch}))\n",
        'dunder_import': f"model = dict(type=__import__('os').system('touch {marker}'))\n",
        'lambda': f"model = dict(type='SPNet', f=(lambda: 0))\n",
        'attribute': "model = dict(type=''.join.__self__)\n",
        'comprehension': f"model = dict(type='SPNet', v=[{touch} for _ in '1'])\n",
        'dict_call_with_args': f"model = dict([('type', {touch})])\n",
        'unpack': "model = dict(**x)\n",
        'augmented': "model = dict(type='SPNet')\nmodel += 1\n",
        'tuple_target': "a, b = 1, 2\n",
    }


def _write_ckpt(path, cfg_text, state_dict=None):
    torch.save(dict(state_dict=state_dict or {},
                    meta=dict(cfg=cfg_text, iter=1),
                    message_hub=dict(log_scalars={}, resumed_keys={},
                                     runtime_info=dict(cfg=cfg_text))), path)


def test_parser_reads_a_real_config_like_mmengine():
    cfg = Config.fromfile(_CONFIG)
    text = cfg.pretty_text
    got = parse_literal_config(text, 'quickstart')
    want = Config.fromstring(text, file_format='.py')._cfg_dict.to_dict()
    assert got == want


@pytest.mark.parametrize('kind', sorted(_code_configs('x')))
def test_parser_refuses_code(tmp_path, kind):
    marker = tmp_path / 'ran'
    with pytest.raises(UnsafeConfigError, match='stored.pth'):
        parse_literal_config(_code_configs(marker)[kind], 'stored.pth')
    assert not marker.exists()


def test_inferencer_never_executes_the_stored_config(tmp_path):
    """In a fresh interpreter, as a user runs it (mmengine's own path executes both)."""
    marker = tmp_path / 'ran'
    paths = []
    for kind in ('statement', 'dunder_import'):
        paths.append(tmp_path / f'hostile_cfg_{kind}.pth')
        _write_ckpt(paths[-1], _code_configs(marker)[kind])
    code = ('import sys\n'
            'from mmpsearch.apis import PersonSearchInferencer\n'
            'from mmpsearch.utils.literal_config import UnsafeConfigError\n'
            'for path in sys.argv[1:]:\n'
            '    try:\n'
            '        PersonSearchInferencer(None, path, device="cpu")\n'
            '    except UnsafeConfigError as err:\n'
            '        print("refused:", err)\n')
    env = dict(os.environ, PYTHONPATH=_REPO)
    out = subprocess.run([sys.executable, '-c', code] + [str(p) for p in paths],
                         capture_output=True, text=True, env=env, timeout=600, cwd=str(tmp_path))
    assert not marker.exists(), 'the stored config was executed'
    assert out.returncode == 0, out.stderr[-3000:]
    for path in paths:
        assert f'refused: {path}: the stored config is not a plain literal config' in out.stdout


def test_inferencer_builds_from_stored_literal_config(tmp_path):
    """A Runner checkpoint's stored config (mmengine ``pretty_text``) is a literal config:
    the model is rebuilt from it and the weights load."""
    from mmpsearch.apis import PersonSearchInferencer
    from mmpsearch.registry import MODELS
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(_CONFIG)
    torch.manual_seed(0)
    # the API tests run without a default scope (tests/test_apis/conftest.py): the test's
    # own reference model is built in mmpsearch's scope, the inferencer enters it itself
    with DefaultScope.overwrite_default_scope('mmpsearch'):
        model = MODELS.build(cfg.model)
    path = tmp_path / 'stored_cfg.pth'
    _write_ckpt(path, cfg.pretty_text, model.state_dict())
    inferencer = PersonSearchInferencer(None, str(path), device='cpu', show_progress=False)
    assert type(inferencer.model) is type(model)
    for k, v in model.state_dict().items():
        assert torch.equal(inferencer.model.state_dict()[k], v), k


def test_inferencer_without_any_config(tmp_path):
    from mmpsearch.apis import PersonSearchInferencer
    path = tmp_path / 'bare.pth'
    torch.save(dict(state_dict={}), path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        PersonSearchInferencer(None, str(path), device='cpu')
