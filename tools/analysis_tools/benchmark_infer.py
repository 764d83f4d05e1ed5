# Copyright (c) mmpsearch contributors. All rights reserved.
"""Measure test-time throughput of a config (images/s) at a fixed input size.

Each image is a random 900×1500 (H×W, the test resolution of CUHK-SYSU/PRW after the
``wrs`` resize) uint8 image with one query box, so a pass computes detections, their
re-id embeddings and a query embedding, like the test loop. Data loading is excluded;
the data preprocessor (normalisation, padding, host→device copy) is included.

``--path qc`` measures query-centric search (spnet.md §6.2, ``QCTestLoop`` pass 2): every
image is searched by ``--queries`` queries at once (random loc embeddings of the norm a
real query box gets), and the OC pass on the same images is timed beside it. It reports
anchor-head passes/s (gallery images/s), (query, image) pairs/s, and the time projected
for a full QC test of PRW (6,112 gallery frames x 2,057 queries, pass 1 included) on
this machine; ``--profile`` prints the operators that dominate one QC pass.

Example:
    python tools/analysis_tools/benchmark_infer.py configs/spnet/spnet-s_convnext-t_30e_prw.py
    python tools/analysis_tools/benchmark_infer.py CONFIG --device cpu --size 320 480 --iters 2
    python tools/analysis_tools/benchmark_infer.py configs/spnet/spnet-s-qcft_convnext-t_30e_prw.py \
        --path qc --queries 2057 --device cpu --iters 3 --warmup 1
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
    parser.add_argument('--path', choices=['oc', 'qc'], default='oc',
                        help='qc: query-centric search, timed beside OC')
    parser.add_argument('--queries', type=int, default=2057,
                        help='QC: queries searching each image (PRW: 2,057)')
    parser.add_argument('--profile', action='store_true',
                        help='QC: print the top operators of one QC pass')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


PRW_TEST = dict(images=6112, queries=2057, query_images=2057)


def add_qc_queries(model, batch, num_queries, seed=0):
    """Give each sample ``num_queries`` QC queries: loc embeddings of the sample's query
    box, perturbed, so their norms are those of real query embeddings."""
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        loc = model.predict_query_loc_embeddings(data['inputs'], data['data_samples'])
    g = torch.Generator().manual_seed(seed)
    for s, q in zip(batch['data_samples'], loc):
        q = q[:1].float().cpu()
        noise = torch.randn((num_queries, q.shape[1]), generator=g) * q.norm() / q.shape[1]**0.5
        s.qc_query_embeddings = q + noise
        s.qc_query_idx = torch.arange(num_queries)


def profile_once(model, batch, top=15):
    """Operators of one QC ``test_step`` by self CPU time."""
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model.test_step(batch)
    return prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=top)


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
    dev = torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'
    if args.path == 'qc':
        return _main_qc(args, model, batch, dev)
    res = run_benchmark(model, batch, args.iters, args.warmup, args.device, args.amp)
    print(f'config: {args.config}\ndevice: {dev}\ninput: {args.size[0]}x{args.size[1]}, '
          f'batch {args.batch_size}, timed iters {args.iters} (after {args.warmup} warm-up)')
    print(f'images/s: {res["images_per_s"]:.2f}\nmedian per batch: {res["median_s"]:.3f} s\n'
          f'peak GPU memory: {res["peak_mem_gb"]:.2f} GiB')
    return res


def _main_qc(args, model, batch, dev):
    """OC and QC timings on the same images, and the full-PRW projection."""
    model.test_path = 'oc'
    oc = run_benchmark(model, batch, args.iters, args.warmup, args.device, args.amp)
    model.test_path = 'qc'
    add_qc_queries(model, batch, args.queries)
    qc = run_benchmark(model, batch, args.iters, args.warmup, args.device, args.amp)
    n_img = len(batch['inputs'])
    qc_img_s = qc['median_s'] / n_img
    oc_img_s = oc['median_s'] / n_img
    pairs_per_s = args.queries / qc_img_s
    # full PRW: pass 1 embeds the query frames (about an OC pass each), pass 2 searches
    # every frame with the queries of the other frames (time linear in the query count)
    per_img_full = qc_img_s * (PRW_TEST['queries'] / args.queries
                               if args.queries else 1.0)
    projected = (PRW_TEST['query_images'] * oc_img_s + PRW_TEST['images'] * per_img_full)
    print(f'config: {args.config}\ndevice: {dev}\ninput: {args.size[0]}x{args.size[1]}, '
          f'batch {args.batch_size}, {args.queries} queries per image, timed iters '
          f'{args.iters} (after {args.warmup} warm-up)')
    print(f'OC: {1 / oc_img_s:.3f} images/s ({oc_img_s:.3f} s/image)')
    print(f'QC: {1 / qc_img_s:.3f} anchor-head passes/s ({qc_img_s:.3f} s/image), '
          f'{pairs_per_s:.1f} (query, image) pairs/s; QC/OC time per image '
          f'{qc_img_s / oc_img_s:.2f}x')
    print(f'projected full PRW QC test (6,112 frames x 2,057 queries) on this device: '
          f'{projected / 3600:.2f} h')
    if args.profile:
        print(profile_once(model, batch))
    return dict(oc_images_per_s=1 / oc_img_s, qc_images_per_s=1 / qc_img_s,
                qc_pairs_per_s=pairs_per_s, projected_prw_h=projected / 3600)


if __name__ == '__main__':
    main()
