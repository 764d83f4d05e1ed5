# Copyright (c) mmpsearch contributors. All rights reserved.
"""Resume a run from a checkpoint as ``tools/train.py --resume`` does, stop before the first
iteration, and compare what was restored with the checkpoint.

Checks that the model state (the EMA teacher ``teacher.*`` and the prototype queue
``roi_head.loss_reid.*`` included) is bit-identical to the checkpoint's and that the random
generators are the checkpointed ones (``RNGStateHook``): the next draws of a resumed run are
the draws the uninterrupted run made after saving.

Example:
    python tools/analysis_tools/check_resume.py \\
        configs/spnet/spnet-s-qcpt_convnext-atto_quick_synthetic-coco.py \\
        work_dirs/qcpt_quick_killed/epoch_1.pth --groups teacher. roi_head.loss_reid.
"""
import argparse
import os.path as osp
import random
import sys
import tempfile

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmpsearch.utils import register_all_modules, safe_torch_load  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from compare_checkpoints import compare  # noqa: E402


def resume_runner(cfg: Config, checkpoint: str) -> Runner:
    """A Runner in the state ``runner.train()`` reaches right before its loop starts."""
    cfg.resume, cfg.load_from = True, checkpoint
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.param_schedulers = runner.build_param_scheduler(runner.param_schedulers)
    runner._init_model_weights()  # a fresh init first, as train() does
    runner.load_or_resume()
    return runner


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--groups', nargs='*', default=[], help='key prefixes to report')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.work_dir = tmp
        runner = resume_runner(cfg, args.checkpoint)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    ckpt = safe_torch_load(args.checkpoint)
    res = compare(ckpt['state_dict'], state, args.groups)
    for group, r in res.items():
        print(f'{group}: {r["identical"]}/{r["tensors"]} tensors identical to the '
              f'checkpoint, max |diff| {r["max_abs_diff"]:.3g}')
    rng = ckpt['meta'].get('rng_state')
    same_rng = None
    if rng is not None:
        random.setstate(tuple(tuple(v) if isinstance(v, list) else v
                              for v in rng['python']))
        kind, keys, pos, has_gauss, gauss = rng['numpy']
        np.random.set_state((kind, np.asarray(keys).astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(rng['torch'])
        same_rng = draws == (random.random(), float(np.random.rand()), float(torch.rand(1)))
    print(f'random generators restored from the checkpoint: {same_rng}')
    return res, same_rng


if __name__ == '__main__':
    main()
