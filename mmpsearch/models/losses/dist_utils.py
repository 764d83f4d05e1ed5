# Copyright (c) mmpsearch contributors. All rights reserved.
"""Cross-rank helpers for the memory-based re-id losses and ProtoNorm.

OIMNet++ as released is single-GPU only (spec oimnetpp.md §4, "hardware"): its lookup table,
circular queue and ProtoNorm statistics are per process. Under data parallelism every rank
sees a different part of the batch, so each memory update must see the samples of all ranks
(in rank order) to leave the same state on every rank as one process seeing the whole batch.
These helpers do that with :mod:`mmengine.dist` and are no-ops when not distributed.
"""
from typing import List, Sequence

import torch
from mmengine import dist
from torch import Tensor


def gather_rows(tensors: Sequence[Tensor]) -> List[Tensor]:
    """All-gather tensors whose first dimension differs across ranks.

    The rows of every rank are concatenated in rank order, so the result equals the batch a
    single process would have seen with the per-rank batches stacked. No gradient flows
    through the result (the gathered copies are used for memory updates only).

    Args:
        tensors (Sequence[Tensor]): Tensors of shape (N_r, ...) that share N_r on this rank
            (e.g. embeddings (N_r, D), labels (N_r,), flags (N_r,)). The trailing shapes and
            dtypes must be the same on every rank.

    Returns:
        list[Tensor]: Per input, a tensor of shape (sum_r N_r, ...) on the input's device.
        Without a distributed group the inputs are returned (detached) unchanged.
    """
    tensors = [t.detach() for t in tensors]
    if dist.get_world_size() == 1:
        return list(tensors)
    num = tensors[0].new_tensor([tensors[0].shape[0]], dtype=torch.long)
    sizes = [int(s.item()) for s in dist.all_gather(num)]
    max_size = max(sizes)
    if max_size == 0:  # nothing anywhere; skip collectives on empty tensors
        return list(tensors)
    out = []
    for t in tensors:
        if t.shape[0] != sizes[dist.get_rank()]:
            raise ValueError('gather_rows: all tensors must share their first dimension, '
                             f'got {[tuple(x.shape) for x in tensors]}')
        # torch.distributed.all_gather needs equal shapes: pad to the largest rank, trim after.
        padded = t.new_zeros((max_size, ) + tuple(t.shape[1:]))
        padded[:t.shape[0]] = t
        parts = dist.all_gather(padded)
        out.append(torch.cat([p[:n] for p, n in zip(parts, sizes)], dim=0))
    return out


def differentiable_all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum a tensor over ranks with a gradient (SyncBN-style statistics).

    The backward of a sum-all-reduce is again a sum-all-reduce of the incoming gradients,
    which is what :func:`torch.distributed.nn.functional.all_reduce` implements. Without a
    distributed group this is the identity.

    Args:
        tensor (Tensor): Any shape; the same shape on every rank.

    Returns:
        Tensor: The element-wise sum over ranks, same shape.
    """
    if dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_reduce
    return all_reduce(tensor)
