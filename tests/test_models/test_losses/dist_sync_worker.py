# Copyright (c) mmpsearch contributors. All rights reserved.
"""Worker of the two-process (gloo, CPU) test in ``test_oim_protonorm_dist.py``.

Kept out of the test module so that ``torch.multiprocessing.spawn`` can pickle it by name
(pytest imports test modules with ``--import-mode=importlib``, which children cannot).
"""
import os

import torch
import torch.distributed as torch_dist


def make_batches(num_iters=2, n=13, dim=6, num_ids=5, seed=0):
    """The whole batches of a single process: embeddings-to-be, labels, known, IoUs, fg."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(num_iters):
        feats = torch.randn(n, 16, generator=g) * 2 + 1
        labels = torch.randint(0, num_ids, (n, ), generator=g)
        labels[:4] = 2  # a repeated identity split across the two ranks
        fg = torch.rand(n, generator=g) > 0.25
        known = fg & (torch.rand(n, generator=g) > 0.3)
        labels[~known] = -1
        ious = 0.5 + 0.5 * torch.rand(n, generator=g)
        weights = torch.randn(n, dim, generator=g)
        out.append((feats, labels, known, ious, fg, weights))
    return out


def run_steps(batches, rows=None):
    """Run ProtoNorm + LOIM on ``batches`` (restricted to ``rows`` if given).

    Returns the final states and the input gradient of every step.
    """
    from mmpsearch.models.losses import LOIMLoss
    from mmpsearch.models.necks import ProtoNorm1d, prototype_keys
    torch.manual_seed(0)
    proj = torch.nn.Linear(16, 6, bias=False)
    pn = ProtoNorm1d(6)
    loss = LOIMLoss(num_person_ids=5, queue_size=4, feat_dim=6)
    grads = []
    for feats, labels, known, ious, fg, weights in batches:
        sel = slice(None) if rows is None else rows
        feats = feats[sel].clone().requires_grad_(True)
        keys = prototype_keys(labels[sel], known[sel], fg[sel])
        emb = torch.nn.functional.normalize(pn(proj(feats), keys), dim=1)
        # A row-separable objective, so the sum over ranks equals the single-process one.
        (emb * weights[sel]).sum().backward()
        m = fg[sel]
        loss(emb[m].detach(), labels[sel][m], known[sel][m], ious[sel][m])
        grads.append(feats.grad)
    return dict(lut=loss.lut, queue=loss.queue, ptr=loss.queue_ptr, running_mean=pn.running_mean,
                running_var=pn.running_var, grads=grads)


def worker(rank, world_size, port, out_dir):
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        batches = make_batches()
        # Uneven halves (7 + 6 rows) exercise the padded all-gather.
        rows = slice(0, 7) if rank == 0 else slice(7, None)
        torch.save(run_steps(batches, rows), os.path.join(out_dir, f'rank{rank}.pth'))
        # No rank may tear its gloo pair down while the other still uses it: without this
        # barrier the faster rank's exit aborts the slower one now and then
        # ("terminate called without an active exception").
        torch_dist.barrier()
    finally:
        torch_dist.destroy_process_group()
