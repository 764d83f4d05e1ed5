# Copyright (c) mmpsearch contributors. All rights reserved.
"""Measure test-time throughput of a config (images/s) at a fixed input size.

Each image is a random 900×1500 (H×W, the test resolution of CUHK-SYSU/PRW after the
``wrs`` resize) uint8 image with one query box, so a pass computes detections, their
re-id embeddings and a query embedding, like the test loop. Data loading is excluded;
the data preprocessor (normalisation, padding, host→device copy) is included.

Example:
    python tools/analysis_tools/benchmark_infer.py configs/spnet/spnet-s_convnext-t_30e_prw.py
    python tools/analysis_tools/benchmark_infer.py CONFIG --device cpu --size 320 480 --iters 2
"""
import argparse
import os.path as osp
import statistics
import sys
import time

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401
import torch  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from mmpsearch.registry import MODELS  # noqa: E402
from mmpsearch.utils import register_all_modules  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark inference throughput')
    parser.add_argument('config')
    parser.add_argument('--size', type=int, nargs=2, default=[900, 1500], metavar=('H', 'W'))
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true', help='autocast to fp16 on CUDA')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def make_batch(batch_size, height, width, seed=0):
    """Random images with one query box each, as the test dataloader would give them."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8))
        s = DetDataSample(metainfo=dict(img_id=f'bench_{i}.jpg', img_shape=(height, width),
                                        ori_shape=(height, width), scale_factor=(1.0, 1.0),
                                        pad_shape=(height, width), cam_id=-1))
        box = torch.tensor([[width * 0.4, height * 0.2, width * 0.5, height * 0.7]])
        s.gt_instances = InstanceData(bboxes=box, labels=torch.zeros(1, dtype=torch.long),
                                      person_ids=torch.ones(1, dtype=torch.long),
                                      person_labels=torch.zeros(1, dtype=torch.long),
                                      known=torch.ones(1, dtype=torch.bool))
        s.query_instances = InstanceData(bboxes=box.clone(),
                                         person_ids=torch.ones(1, dtype=torch.long),
                                         query_idx=torch.tensor([i]))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def run_benchmark(model, batch, iters, warmup, device, amp=False):
    """Time ``model.test_step`` on one batch.

    Returns:
        dict: ``images_per_s``, ``median_s`` (per batch), ``peak_mem_gb``.
    """
    model.eval()
    times = []
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), torch.autocast(device_type='cuda', dtype=torch.float16,
                                         enabled=amp and device.startswith('cuda')):
        for i in range(warmup + iters):
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.test_step(batch)
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    n = len(batch['inputs'])
    return dict(images_per_s=n * len(times) / sum(times), median_s=statistics.median(times),
                peak_mem_gb=(torch.cuda.max_memory_allocated() / 2**30
                             if device.startswith('cuda') else float('nan')))


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model).to(args.device)
    batch = make_batch(args.batch_size, *args.size)
    res = run_benchmark(model, batch, args.iters, args.warmup, args.device, args.amp)
    dev = torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'
    print(f'config: {args.config}\ndevice: {dev}\ninput: {args.size[0]}x{args.size[1]}, '
          f'batch {args.batch_size}, timed iters {args.iters} (after {args.warmup} warm-up)')
    print(f'images/s: {res["images_per_s"]:.2f}\nmedian per batch: {res["median_s"]:.3f} s\n'
          f'peak GPU memory: {res["peak_mem_gb"]:.2f} GiB')
    return res


if __name__ == '__main__':
    main()
