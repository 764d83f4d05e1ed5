# Copyright (c) mmpsearch contributors. All rights reserved.
"""tools/analysis_tools/pretrain_gain.py: the configs it writes and the table it prints
(the comparison itself takes CPU-hours; docs/pretraining.md)."""
import importlib.util
import os.path as osp

from mmengine.config import Config

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load():
    path = osp.join(_REPO, 'tools', 'analysis_tools', 'pretrain_gain.py')
    spec = importlib.util.spec_from_file_location('pretrain_gain', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_writes_loadable_configs(tmp_path, capsys):
    gain = _load()
    gain.main(['--dry-run', '--work-dir', str(tmp_path), '--seeds', '0', '1',
               '--ft-epochs', '3', '--pt-epochs', '2', '--pt-images', '16',
               '--prw-root', str(tmp_path / 'prw'), '--coco-root', str(tmp_path / 'coco')])
    printed = capsys.readouterr().out
    assert printed.count('tools/train.py') == 2 + 3 * 2  # 2 pre-trainings, 3 inits x 2 seeds
    pt = Config.fromfile(str(tmp_path / 'configs' / 'pretrain_qc.py'))
    ft = Config.fromfile(str(tmp_path / 'configs' / 'finetune_random_seed0.py'))
    # the pre-training learns the anchor shapes the fine-tuning uses
    assert pt.model.bbox_head.anchor_generator.ratios == ft.model.bbox_head.anchor_generator.ratios
    assert pt.model.bbox_head.anchor_generator.sizes == ft.model.bbox_head.anchor_generator.sizes
    assert pt.train_dataloader.dataset.indices == 16 and pt.train_cfg.max_epochs == 2
    assert pt.model.train_cfg.path == 'qc'
    assert Config.fromfile(str(tmp_path / 'configs' / 'pretrain_oc.py')).model.train_cfg.path == 'oc'
    # same fine-tuning budget and schedule for every initialisation
    for init in ('random', 'qc', 'oc'):
        cfg = Config.fromfile(str(tmp_path / 'configs' / f'finetune_{init}_seed1.py'))
        assert cfg.train_cfg.max_epochs == 3 and cfg.randomness.seed == 1
        assert cfg.param_scheduler[1].end == 3
        assert cfg.train_dataloader.dataset.data_root == str(tmp_path / 'prw')
        if init == 'random':
            assert cfg.model.get('init_cfg') is None
        else:
            assert cfg.model.init_cfg.type == 'SPNetPretrained'
            assert cfg.model.init_cfg.pretrain_path == init
            assert cfg.model.init_cfg.checkpoint.startswith(str(tmp_path / f'pretrain_{init}'))


def test_table_means_and_spread():
    gain = _load()

    def rec(m):
        return {'mAP': m, 'top1': m + 0.2, 'reid_standard/mAP': m + 0.1, 'det/AP': 0.5}

    results = {f'finetune_{init}_seed{s}': dict(init=init, seed=s, before=rec(0.0),
                                                 after=rec(base + 0.02 * s))
               for init, base in (('random', 0.40), ('qc', 0.45)) for s in (0, 1, 2)}
    args = gain.parse_args(['--pretrain', 'qc'])
    table = gain.format_table(results, ['random', 'qc'], args)
    assert '| random init | 42.00 ± 2.00 | 62.00 ± 2.00 | 52.00 ± 2.00 | 50.00 ± 0.00 |' in table
    assert '| QC pre-training | 47.00 ± 2.00 |' in table
