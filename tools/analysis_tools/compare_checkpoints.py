# Copyright (c) mmpsearch contributors. All rights reserved.
"""Compare the model states of two checkpoints tensor by tensor (safe loading).

Used to check that a run killed and resumed ends exactly where the uninterrupted run ends
(docs/pretraining.md): the EMA teacher (``teacher.``), the prototype queue
(``roi_head.loss_reid.``) and every other tensor.

Example:
    python tools/analysis_tools/compare_checkpoints.py A/epoch_3.pth B/epoch_3.pth \\
        --groups teacher. roi_head.loss_reid.
"""
import argparse
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import torch  # noqa: E402

from mmpsearch.utils import safe_torch_load  # noqa: E402


def compare(a: dict, b: dict, groups=()):
    """Per group (key prefix; '' = all): tensors compared, bit-identical ones, the largest
    absolute difference, and keys present in one state only."""
    out = {}
    for group in list(groups) + ['']:
        keys = sorted(k for k in a.keys() | b.keys() if k.startswith(group))
        only = [k for k in keys if (k in a) != (k in b)]
        both = [k for k in keys if k in a and k in b]
        same, worst = 0, 0.0
        for k in both:
            x, y = a[k], b[k]
            if x.shape == y.shape and torch.equal(x, y):
                same += 1
            elif x.shape == y.shape:
                worst = max(worst, float((x.double() - y.double()).abs().max()))
            else:
                worst = float('inf')
        out[group or '(all)'] = dict(tensors=len(both), identical=same, max_abs_diff=worst,
                                     only_in_one=only)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('a')
    parser.add_argument('b')
    parser.add_argument('--groups', nargs='*', default=[], help='key prefixes to report')
    args = parser.parse_args(argv)
    a = safe_torch_load(args.a)['state_dict']
    b = safe_torch_load(args.b)['state_dict']
    res = compare(a, b, args.groups)
    for group, r in res.items():
        print(f'{group}: {r["identical"]}/{r["tensors"]} tensors identical, max |diff| '
              f'{r["max_abs_diff"]:.3g}' + (f', only in one: {r["only_in_one"][:5]}'
                                            if r['only_in_one'] else ''))
    return res


if __name__ == '__main__':
    main()
