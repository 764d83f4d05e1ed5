# Copyright (c) mmpsearch contributors. All rights reserved.
"""Multi-process correctness (issue 6, item 3): two gloo ranks with half a batch each end
with the LUT, queue and ProtoNorm running statistics of one process that saw the whole
batch, and with the same input gradients."""
import os
import socket
import sys

import torch
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dist_sync_worker  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_equal_one_process(tmp_path):
    batches = dist_sync_worker.make_batches()
    ref = dist_sync_worker.run_steps(batches)
    mp.spawn(dist_sync_worker.worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
             join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f'rank{rank}.pth')
        for key in ('lut', 'queue', 'ptr', 'running_mean', 'running_var'):
            torch.testing.assert_close(got[key], ref[key], atol=1e-6, rtol=1e-5, msg=key)
        assert ref['lut'].abs().sum() > 0 and ref['queue'].abs().sum() > 0
        rows = slice(0, 7) if rank == 0 else slice(7, None)
        for g_rank, g_ref in zip(got['grads'], ref['grads']):
            torch.testing.assert_close(g_rank, g_ref[rows], atol=1e-5, rtol=1e-4)
