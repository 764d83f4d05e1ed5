# Copyright (c) mmpsearch contributors. All rights reserved.
"""Which torchvision the stack uses: the stand-in of ``mmpsearch/utils/compat.py`` exactly
when no working torchvision is installed (the CPU stack, torch 2.13), the real one
otherwise (the CUDA stack of ``tools/setup_env.sh --cuda``: torch 2.14.1 + torchvision
0.29.1, which also run on the CPU)."""
import importlib.metadata
import sys

import torch

from mmpsearch.utils import compat


def _installed_torchvision():
    try:
        return importlib.metadata.version('torchvision')
    except importlib.metadata.PackageNotFoundError:
        return None


def _real_torchvision_works():
    """An installed torchvision that imports with this torch (a CUDA build on a CPU torch
    fails at import: 'operator torchvision::nms does not exist')."""
    return _installed_torchvision() is not None and not compat.TORCHVISION_STUBBED


def test_stand_in_only_without_a_working_torchvision():
    tv = sys.modules['torchvision']
    if _installed_torchvision() is None:
        assert compat.TORCHVISION_STUBBED and tv.__mmpsearch_stub__
        return
    if _real_torchvision_works():
        assert not getattr(tv, '__mmpsearch_stub__', False)
        assert tv.__version__.split('+')[0] == _installed_torchvision().split('+')[0]
    else:  # installed but broken on this torch: the stand-in took over
        assert tv.__mmpsearch_stub__


def test_mmpretrain_box_ops_agree_with_the_stand_in():
    """mmpretrain's box helpers come from whichever torchvision is in use; the stand-in's
    IoU equals the real one (checked where the real one runs)."""
    from mmpretrain.models.utils import box_utils
    a = torch.tensor([[0., 0., 2., 2.], [1., 1., 4., 5.]])
    b = torch.tensor([[1., 1., 3., 3.], [0., 0., 2., 2.], [5., 5., 6., 6.]])
    ours = compat._box_iou(a, b)
    torch.testing.assert_close(ours[0], torch.tensor([1 / 7, 1., 0.]))
    assert box_utils.boxes is sys.modules['torchvision.ops.boxes']
    torch.testing.assert_close(box_utils.box_iou(a, b), ours)
    if _real_torchvision_works():
        assert box_utils.boxes.__file__.endswith('torchvision/ops/boxes.py')
        from torchvision.ops import nms
        # The compiled ops load too (the CPU kernels of the CUDA build).
        assert nms(a, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
