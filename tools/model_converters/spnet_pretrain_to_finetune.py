# Copyright (c) mmpsearch contributors. All rights reserved.
"""Convert an SPNet pre-training checkpoint into a plain fine-tuning checkpoint
(spnet.md §5: teacher, LwF and loss buffers dropped; bridges dropped after QC
pre-training; ``--load-share`` and ``--replicate-cascade`` as in the supplement's Fig. 8).

The fine-tuning CONFIG gives the target model (its names and shapes; no weights are
loaded from it). The output holds the transferred weights only: start the fine-tuning
with ``load_from=OUT`` (what it lacks keeps the config's init, as with
``init_cfg=dict(type='SPNetPretrained', ...)``, which does the same without a file).

Example:
    python tools/model_converters/spnet_pretrain_to_finetune.py \\
        configs/spnet/spnet-l_convnext-b_30e_prw.py work_dirs/pt_qc/epoch_30.pth \\
        spnet-l_pt-rep.pth --load-share --replicate-cascade
"""
import argparse
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the fine-tuning config (target model)')
    parser.add_argument('checkpoint', help='the pre-training checkpoint')
    parser.add_argument('out', help='output .pth')
    parser.add_argument('--pretrain-path', choices=['qc', 'oc', 'auto'], default='auto',
                        help="how the checkpoint was pre-trained (auto: QC if its OC bridge "
                        'is still at its zero init)')
    parser.add_argument('--load-share', action='store_true',
                        help='shared-head pre-train -> separate-head fine-tune')
    parser.add_argument('--replicate-cascade', action='store_true',
                        help='PT-Rep: copy stage-0 heads into every cascade stage')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmpsearch.models.utils.pretrain_transfer import (convert_pretrained_state,
                                                          load_pretrained_checkpoint)
    from mmpsearch.registry import MODELS
    from mmpsearch.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model_cfg = cfg.model
    model_cfg.pop('init_cfg', None)
    target = MODELS.build(model_cfg).state_dict()  # names and shapes only, no weights read
    state = load_pretrained_checkpoint(args.checkpoint)
    new, report = convert_pretrained_state(state, target, args.pretrain_path,
                                           args.load_share, args.replicate_cascade)
    torch.save(dict(state_dict=new, meta=dict(
        converted_from=osp.basename(args.checkpoint), pretrain_path=args.pretrain_path,
        load_share=args.load_share, replicate_cascade=args.replicate_cascade)), args.out)
    print(report.table())
    print(f'wrote {args.out} ({len(new)} tensors)')
    return report


if __name__ == '__main__':
    main()
