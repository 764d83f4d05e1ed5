# Copyright (c) mmpsearch contributors. All rights reserved.
import importlib
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from mmpsearch.utils import compat
from mmpsearch.utils.compat import UnsafeCheckpointError, safe_torch_load

_MARKER_ENV = 'MMPSEARCH_PAYLOAD_RAN'


class _Payload:
    """A pickle payload: unpickling it would run ``os.system``."""

    def __reduce__(self):
        return (os.system, (f'touch {os.environ.get(_MARKER_ENV, "/nonexistent/x")}',))


def test_mmengine_checkpoint_round_trip(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint
    buf = HistoryBuffer()
    buf.update(1.5)
    ckpt = dict(state_dict={'w': torch.ones(2)},
                message_hub=dict(log_scalars={'loss': buf}),
                meta=dict(seed=np.int64(3), arr=np.arange(4, dtype=np.uint32),
                          f=np.float64(0.5), s=slice(0, 2)))
    path = tmp_path / 'ok.pth'
    torch.save(ckpt, path)
    loaded = _load_checkpoint(str(path), map_location='cpu')  # mmengine's own loader
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['message_hub']['log_scalars']['loss'].current() == 1.5
    np.testing.assert_array_equal(loaded['meta']['arr'], np.arange(4))


def test_payload_checkpoint_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / 'ran'
    monkeypatch.setenv(_MARKER_ENV, str(marker))
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        safe_torch_load(str(path))
    from mmengine.runner.checkpoint import _load_checkpoint
    with pytest.raises(UnsafeCheckpointError, match='Refusing to load'):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists(), 'the payload ran'
    # safe loading was not switched off globally
    assert os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD') in (None, '', '0')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_torchvision_stub_used_when_import_fails():
    tv = sys.modules['torchvision']
    if not compat.TORCHVISION_STUBBED:
        pytest.skip('a real torchvision is importable here; see the fallback test')
    assert getattr(tv, '__mmpsearch_stub__', False)
    from torchvision.ops.boxes import box_area, box_iou
    a = torch.tensor([[0., 0., 2., 2.]])
    b = torch.tensor([[1., 1., 3., 3.], [0., 0., 2., 2.]])
    assert torch.allclose(box_iou(a, b), torch.tensor([[1 / 7, 1.]]))
    assert box_area(b).tolist() == [4., 4.]
    import mmpretrain.models  # noqa: F401  the import the stand-in exists for


def test_real_torchvision_wins(monkeypatch):
    """A working torchvision is kept: the stand-in installs nothing."""
    fake = types.ModuleType('torchvision')
    fake.__version__ = '9.9.9'
    saved = {k: v for k, v in sys.modules.items() if k.startswith('torchvision')}
    for k in saved:
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.setitem(sys.modules, 'torchvision', fake)
    assert compat.install_torchvision_stub() is False
    assert sys.modules['torchvision'] is fake


def test_broken_torchvision_replaced(tmp_path, monkeypatch):
    """A torchvision that fails on import (a CUDA build on CPU torch) gets the stand-in."""
    pkg = tmp_path / 'torchvision'
    pkg.mkdir()
    (pkg / '__init__.py').write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    code = ('import sys; sys.path.insert(0, %r); import mmpsearch; '
            'from mmpsearch.utils import compat; import torchvision; '
            'assert compat.TORCHVISION_STUBBED and torchvision.__mmpsearch_stub__; '
            'import mmpretrain.models; print("ok")' % str(tmp_path))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('ok')
