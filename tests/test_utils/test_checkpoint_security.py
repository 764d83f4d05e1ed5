# Copyright (c) mmpsearch contributors. All rights reserved.
"""Loading a checkpoint never runs code from it (mmpsearch/utils/safe_checkpoint.py).

Every hostile file here is a real Runner checkpoint (weights, optimiser, message hub,
metadata) with one payload spliced into its pickle (``_ckpt_payloads``). Each payload is
first shown to be live (an unrestricted ``torch.load`` runs it and writes its marker
file); then every load path must refuse the file with an error naming it, and the marker
must not exist. Benign checkpoints of both model families still load and resume.
"""
import copy
import importlib.util
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmpsearch.registry import DATASETS, MODELS
from mmpsearch.utils import (CheckpointReadError, UnsafeCheckpointError,
                             safe_torch_load)

def _import_payloads():
    # by path: a `tests` package installed in site-packages would shadow this tree's
    spec = importlib.util.spec_from_file_location(
        'mmpsearch_ckpt_payloads', osp.join(osp.dirname(osp.abspath(__file__)),
                                            '_ckpt_payloads.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _import_payloads()
_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_SPNET = osp.join(_REPO, 'configs', 'spnet', 'spnet-s_convnext-atto_quickstart_synthetic-prw.py')
_OIMNETPP = osp.join(_REPO, 'configs', 'oimnetpp', 'oimnetpp_r50-c4_quick_synthetic-prw.py')


# -- a tiny Runner checkpoint ------------------------------------------------------------
@MODELS.register_module(force=True)
class _CkptSecurityModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor', **kwargs):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.linear(x)
        if mode == 'loss':
            return dict(loss=(out - 1).pow(2).mean())
        return out


@DATASETS.register_module(force=True)
class _CkptSecurityDataset(BaseDataset):

    def load_data_list(self):
        return [dict(inputs=torch.tensor([float(i), 1.0])) for i in range(8)]


def _tiny_cfg(work_dir, max_iters=2, **extra):
    cfg = dict(
        model=dict(type='_CkptSecurityModel'),
        work_dir=str(work_dir),
        default_scope='mmpsearch',
        train_dataloader=dict(
            dataset=dict(type='_CkptSecurityDataset', serialize_data=False),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2, num_workers=0, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=4)],
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=max_iters,
                                           by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')
    cfg.update(extra)
    return cfg


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    work = tmp_path_factory.mktemp('tiny_run')
    Runner.from_cfg(_tiny_cfg(work, experiment_name='tiny_train')).train()
    path = work / 'iter_2.pth'
    assert path.is_file()
    return path


def _trusted_load(path):
    """Our own benign file, read by plain pickle (for reference values only)."""
    return torch.load(path, map_location='cpu', weights_only=False)


# -- hostile files -------------------------------------------------------------------------
_SITES = ('message_hub', 'meta', 'state_dict')


def _inject(ckpt, site, payload):
    ckpt = copy.copy(ckpt)
    if site == 'message_hub':
        hub = dict(ckpt['message_hub'])
        scalars = dict(hub['log_scalars'])
        scalars[sorted(scalars)[0]] = payload  # replaces a real HistoryBuffer
        hub['log_scalars'] = scalars
        ckpt['message_hub'] = hub
    elif site == 'meta':
        ckpt['meta'] = dict(ckpt['meta'], dataset_meta=dict(classes=('person', ),
                                                             palette=payload))
    else:
        state = type(ckpt['state_dict'])(ckpt['state_dict'])
        state['linear.extra'] = payload
        ckpt['state_dict'] = state
    return ckpt


def _make_payload(kind, marker):
    if kind == 'reduce_os_system':
        return P.ReduceSystem(marker)
    if kind == 'getattr_exec_setstate':
        return P.history_buffer_setstate_exec(marker)
    raise KeyError(kind)


_MARKER_PAYLOADS = ('reduce_os_system', 'getattr_exec_setstate')


@pytest.fixture
def hostile(tiny_ckpt, tmp_path):
    """Factory: (payload kind, site) → (hostile checkpoint path, marker path)."""
    base = _trusted_load(tiny_ckpt)

    def make(kind, site):
        marker = tmp_path / f'ran_{kind}_{site}'
        path = tmp_path / f'hostile_{kind}_{site}.pth'
        P.save_with_payloads(_inject(base, site, _make_payload(kind, marker)), path)
        return path, marker

    return make


@pytest.mark.parametrize('site', _SITES)
@pytest.mark.parametrize('kind', _MARKER_PAYLOADS)
def test_payload_is_live(hostile, kind, site):
    """The hostile files are real: weights intact, and unrestricted unpickling runs them."""
    path, marker = hostile(kind, site)
    assert not marker.exists()
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    assert marker.exists(), 'the payload did not run under plain pickle: the test proves nothing'
    assert ckpt['state_dict']['linear.weight'].shape == (1, 2)
    assert ckpt['meta']['iter'] == 2


def _load_safe(path, model=None):
    return safe_torch_load(str(path))


def _load_mmengine(path, model=None):
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(str(path), map_location='cpu')


def _load_checkpoint_loader(path, model=None):
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


def _load_into_model(path, model=None):
    from mmengine.runner import load_checkpoint
    return load_checkpoint(_CkptSecurityModel(), str(path), map_location='cpu')


_LOADERS = dict(safe_torch_load=_load_safe, mmengine_load_checkpoint=_load_mmengine,
                checkpoint_loader=_load_checkpoint_loader, load_into_model=_load_into_model)


@pytest.mark.parametrize('loader', sorted(_LOADERS))
@pytest.mark.parametrize('site', _SITES)
@pytest.mark.parametrize('kind', _MARKER_PAYLOADS)
def test_payload_refused(hostile, kind, site, loader):
    path, marker = hostile(kind, site)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(str(path))):
        _LOADERS[loader](path)
    assert not marker.exists(), 'the payload ran'


@pytest.mark.parametrize('site', _SITES)
@pytest.mark.parametrize('kind', _MARKER_PAYLOADS)
def test_bare_torch_load_refuses_after_import(hostile, kind, site):
    """``import mmpsearch`` allow-lists nothing process-wide: plain torch refuses."""
    import mmpsearch  # noqa: F401
    path, marker = hostile(kind, site)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location='cpu')
    assert not marker.exists(), 'the payload ran'
    assert os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD') in (None, '', '0')


def test_no_attribute_reaching_callable_is_allow_listed():
    import builtins
    import mmpsearch  # noqa: F401
    safe = torch.serialization.get_safe_globals()
    flat = [g[0] if isinstance(g, tuple) else g for g in safe]
    for danger in (getattr, builtins.getattr, eval, exec, setattr, __import__, HistoryBuffer):
        assert danger not in flat, f'{danger} is allow-listed process-wide'


@pytest.mark.parametrize('mode', ['load_from', 'resume'])
@pytest.mark.parametrize('site', ['message_hub', 'state_dict'])
def test_runner_refuses(hostile, tmp_path, mode, site):
    path, marker = hostile('getattr_exec_setstate', site)
    cfg = _tiny_cfg(tmp_path / 'run', max_iters=3, load_from=str(path),
                    resume=(mode == 'resume'), experiment_name=f'refuse_{mode}_{site}')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(str(path))):
        runner.load_or_resume()
    assert not marker.exists(), 'the payload ran'


_BAD_ONLY = dict(
    getattr_chain=P.getattr_chain,
    setstate_allowed_callable=P.history_buffer_setstate_allowed_callable,
    statistics_pollution=P.history_buffer_statistics_pollution)


@pytest.mark.parametrize('loader', ['safe_torch_load', 'mmengine_load_checkpoint'])
@pytest.mark.parametrize('kind', sorted(_BAD_ONLY))
def test_tampering_refused(tiny_ckpt, tmp_path, kind, loader):
    """Payloads that run nothing by themselves but reach attributes or inject state."""
    before = dict(HistoryBuffer._statistics_methods)
    path = tmp_path / f'{kind}.pth'
    site = 'meta' if kind == 'getattr_chain' else 'message_hub'
    P.save_with_payloads(_inject(_trusted_load(tiny_ckpt), site, _BAD_ONLY[kind]()), path)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(str(path))):
        _LOADERS[loader](path)
    assert HistoryBuffer._statistics_methods == before


# -- benign checkpoints -------------------------------------------------------------------
def _assert_hub_equal(got, want):
    assert set(got['log_scalars']) == set(want['log_scalars'])
    for key, buf in want['log_scalars'].items():
        new = got['log_scalars'][key]
        assert type(new) is HistoryBuffer
        assert new.max_length == buf.max_length
        for a, b in zip(new.data, buf.data):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
        assert new.current() == buf.current() and new.mean(10) == buf.mean(10)
    for key, value in want['resumed_keys'].items():
        assert got['resumed_keys'][key] == value
    assert set(want['runtime_info']) <= set(got['runtime_info'])


@pytest.mark.parametrize('loader', sorted(_LOADERS))
def test_real_checkpoint_loads(tiny_ckpt, loader):
    ckpt = _LOADERS[loader](tiny_ckpt)
    want = _trusted_load(tiny_ckpt)
    if loader == 'load_into_model':
        _assert_hub_equal(ckpt['message_hub'], want['message_hub'])
        return
    assert ckpt.keys() == want.keys()
    for k, v in want['state_dict'].items():
        assert torch.equal(ckpt['state_dict'][k], v)
    _assert_hub_equal(ckpt['message_hub'], want['message_hub'])
    assert ckpt['meta'] == want['meta']
    assert ckpt['optimizer']['param_groups'] == want['optimizer']['param_groups']
    assert ckpt['param_schedulers'] == want['param_schedulers']


def test_numpy_values_round_trip(tmp_path):
    """numpy arrays/scalars/dtypes and slices as mmengine checkpoints carry them,
    including numpy 1.x names, load; the statistics table of HistoryBuffer is untouched."""
    buf = HistoryBuffer()
    buf.update(1.5)
    buf.update(2, count=3)
    ckpt = dict(state_dict={'w': torch.ones(2)},
                message_hub=dict(log_scalars={'loss': buf}),
                meta=dict(seed=np.int64(3), arr=np.arange(4, dtype=np.uint32),
                          f=np.float64(0.5), b=np.bool_(True), s=slice(0, 2),
                          mat=np.eye(2, dtype=np.float32), dt=np.dtype('int16'),
                          old=P.numpy1_scalar_ops(0.25)))
    path = tmp_path / 'ok.pth'
    P.save_with_payloads(ckpt, path)
    loaded = safe_torch_load(str(path))
    meta = loaded['meta']
    assert type(meta['seed']) is np.int64 and meta['seed'] == 3
    assert type(meta['arr']) is np.ndarray and meta['arr'].dtype == np.uint32
    np.testing.assert_array_equal(meta['arr'], np.arange(4))
    np.testing.assert_array_equal(meta['mat'], np.eye(2))
    assert meta['f'] == 0.5 and meta['b'] and meta['s'] == slice(0, 2)
    assert meta['dt'] == np.dtype('int16')
    assert type(meta['old']) is np.float64 and meta['old'] == 0.25
    got = loaded['message_hub']['log_scalars']['loss']
    assert type(got) is HistoryBuffer and got.current() == 2 and got.data[1].tolist() == [1, 3]
    assert got.statistics('mean') == buf.mean()


def test_object_arrays_refused(tmp_path):
    path = tmp_path / 'objarr.pth'
    torch.save({'state_dict': {}, 'meta': {'a': np.array([1, 'x'], dtype=object)}}, path)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(str(path))):
        safe_torch_load(str(path))


def test_truncated_checkpoint_names_the_file(tiny_ckpt, tmp_path):
    data = tiny_ckpt.read_bytes()
    for cut in (len(data) // 2, 100, 0):
        path = tmp_path / f'cut_{cut}.pth'
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointReadError, match=re.escape(str(path))):
            safe_torch_load(str(path))
        from mmengine.runner.checkpoint import _load_checkpoint
        with pytest.raises(CheckpointReadError, match=re.escape(str(path))):
            _load_checkpoint(str(path), map_location='cpu')
    # and a non-checkpoint file
    path = tmp_path / 'notes.pth'
    path.write_text('not a checkpoint')
    with pytest.raises(CheckpointReadError, match=re.escape(str(path))):
        safe_torch_load(str(path))


# -- real model families -----------------------------------------------------------------
def _tiny_world(root):
    from mmpsearch.datasets._synthetic_writers import write_prw
    from mmpsearch.datasets.synthetic import SyntheticConfig, generate_world
    cfg = SyntheticConfig(image_size=(192, 144), num_cameras=2, num_train_frames=6,
                          num_test_frames=6, num_train_ids=4, num_test_ids=3, long_tail=1.0)
    write_prw(generate_world(cfg, seed=0), str(root))
    return str(root)


@pytest.fixture(scope='module')
def tiny_prw(tmp_path_factory):
    return _tiny_world(tmp_path_factory.mktemp('prw'))


def family_cfg(config, data_root, work_dir, max_iters=2):
    """A shipped config at toy size: 2 small images per batch, few RoIs, iteration-based,
    no evaluation (the model and its checkpointed state are the shipped ones)."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        for step in cfg[loader].dataset.pipeline:
            if step['type'] == 'WindowResize':
                step.update(short_side=96, long_side=128)
    cfg.train_dataloader.batch_size = 2
    if 'frozen_parameters' in cfg.model:  # OIMNet R50-C4: keep the 2-core CPU run short
        cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=32)
        cfg.model.train_cfg.rcnn.sampler.num = 8
        # the ResNet trunk stays fixed and plain SGD keeps no per-parameter state: the
        # checkpoint shrinks from 400 MB to the weights (the heads, LUT, queue and
        # ProtoNorm statistics still train and are saved)
        cfg.model.frozen_parameters = ['backbone.', 'roi_head.shared_head.']
        cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-4))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
    # no validation (an iteration-based loop would validate after its last iteration)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                                end=10)]
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    return cfg


@pytest.fixture(scope='module')
def spnet_run(tmp_path_factory, tiny_prw):
    """A real SPNet (quickstart config) checkpoint after 2 iterations, and its config file."""
    work = tmp_path_factory.mktemp('spnet_run')
    cfg = family_cfg(_SPNET, tiny_prw, work)
    cfg_file = work / 'spnet_tiny.py'
    cfg.dump(str(cfg_file))
    Runner.from_cfg(copy.deepcopy(cfg)).train()
    return work / 'iter_2.pth', cfg_file


def _resume_and_check(cfg, ckpt_path, work):
    saved = _trusted_load(ckpt_path)
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work)
    cfg.train_cfg.max_iters = 3
    cfg.resume, cfg.load_from = True, str(ckpt_path)
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.load_or_resume()
    assert runner.iter == 2
    _assert_hub_equal(runner.message_hub.state_dict(), saved['message_hub'])
    for k, v in saved['state_dict'].items():
        assert torch.equal(runner.model.state_dict()[k], v), k
    runner.train()  # continues from iteration 2
    assert runner.iter == 3


def test_spnet_checkpoint_loads_and_resumes(spnet_run, tmp_path):
    ckpt_path, cfg_file = spnet_run
    loaded = safe_torch_load(str(ckpt_path))
    assert loaded['meta']['iter'] == 2
    _resume_and_check(Config.fromfile(str(cfg_file)), ckpt_path, tmp_path)


def test_oimnetpp_checkpoint_loads_and_resumes(tiny_prw, tmp_path):
    cfg = family_cfg(_OIMNETPP, tiny_prw, tmp_path / 'train')
    Runner.from_cfg(copy.deepcopy(cfg)).train()
    ckpt_path = tmp_path / 'train' / 'iter_2.pth'
    loaded = safe_torch_load(str(ckpt_path))
    assert loaded['meta']['iter'] == 2
    _resume_and_check(cfg, ckpt_path, tmp_path / 'resume')


# -- entry points in a fresh interpreter ---------------------------------------------------
def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=_REPO)
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    return subprocess.Popen([sys.executable] + args, cwd=str(cwd), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_entry_points_refuse_hostile_checkpoint(spnet_run, tmp_path):
    ckpt_path, cfg_file = spnet_run
    marker = tmp_path / 'ran'
    path = tmp_path / 'hostile.pth'
    P.save_with_payloads(_inject(_trusted_load(ckpt_path), 'message_hub',
                                 P.history_buffer_setstate_exec(marker)), path)
    tools = osp.join(_REPO, 'tools')
    runs = {
        'test.py': [osp.join(tools, 'test.py'), str(cfg_file), str(path),
                    '--work-dir', str(tmp_path / 't')],
        'train.py --resume': [osp.join(tools, 'train.py'), str(cfg_file), '--resume', str(path),
                              '--work-dir', str(tmp_path / 'r')],
        'search_demo.py': [osp.join(tools, 'search_demo.py'), str(cfg_file), str(path),
                           '--query', 'q.jpg', '--bbox', '1', '1', '20', '40',
                           '--gallery', str(tmp_path), '--device', 'cpu'],
        'torch.load after import': ['-c', 'import mmpsearch, torch; torch.load(%r)' % str(path)],
    }
    procs = {name: _run(args, tmp_path) for name, args in runs.items()}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode != 0, f'{name} accepted the hostile checkpoint:\n{out[-3000:]}'
        assert 'UnpicklingError' in out or 'Refusing to load' in out, f'{name}:\n{out[-3000:]}'
        if name != 'torch.load after import':
            assert f'Refusing to load {path}' in out, f'{name}:\n{out[-3000:]}'
    assert not marker.exists(), 'the payload ran'


def test_train_tool_resumes_real_checkpoint(spnet_run, tmp_path):
    ckpt_path, cfg_file = spnet_run
    proc = _run([osp.join(_REPO, 'tools', 'train.py'), str(cfg_file), '--resume', str(ckpt_path),
                 '--work-dir', str(tmp_path), '--cfg-options', 'train_cfg.max_iters=3',
                 'default_hooks.checkpoint.interval=1'], tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    resumed = safe_torch_load(str(tmp_path / 'iter_3.pth'))
    assert resumed['meta']['iter'] == 3
    assert not (tmp_path / 'iter_1.pth').exists()  # it started at iteration 2
