# Copyright (c) mmpsearch contributors. All rights reserved.
"""Worker of the two-process (gloo, CPU) prototype-queue test in ``test_prototype_queue.py``
(a module of its own so that ``torch.multiprocessing.spawn`` can pickle it by name)."""
import os

import torch
import torch.distributed as torch_dist


def make_batches(num_iters=3, n=10, dim=4, seed=0):
    """Whole batches of one process: student, teacher embeddings and identities."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for it in range(num_iters):
        student = torch.randn(n, dim, generator=g)
        teacher = torch.randn(n, dim, generator=g)
        # identity 7 on both halves (rows 0-6 go to rank 0): one prototype from both ranks;
        # identity 3 comes back in every batch (re-enqueued)
        labels = torch.randint(10 * it, 10 * it + 6, (n, ), generator=g)
        labels[[1, 8]] = 7
        labels[4] = 3
        out.append((student, teacher, labels))
    return out


def run_steps(batches, rows=None, queue_size=8):
    from mmpsearch.models.losses import PrototypeQueueLoss
    loss = PrototypeQueueLoss(queue_size=queue_size, feat_dim=batches[0][0].shape[1])
    values = []
    for student, teacher, labels in batches:
        sel = slice(None) if rows is None else rows
        values.append(loss(student[sel], labels[sel], teacher_embeddings=teacher[sel]))
    return dict(queue=loss.queue, ids=loss.queue_ids, ptr=loss.queue_ptr,
                values=torch.stack(values))


def worker(rank, world_size, port, out_dir):
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        rows = slice(0, 7) if rank == 0 else slice(7, None)  # uneven halves
        torch.save(run_steps(make_batches(), rows), os.path.join(out_dir, f'rank{rank}.pth'))
        torch_dist.barrier()  # no rank tears the gloo pair down while the other uses it
    finally:
        torch_dist.destroy_process_group()
