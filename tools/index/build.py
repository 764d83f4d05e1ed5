# Copyright (c) mmpsearch contributors. All rights reserved.
"""Build (or resume, or extend) a gallery index from images, folders and videos.

Examples:
    # detect and embed every 5th frame of two videos and a folder of images
    python tools/index/build.py CONFIG CHECKPOINT --gallery cam1.mp4 cam2.mp4 photos/ \
        --out cctv.index --frame-step 5
    # the same, killed and started again: continues where it stopped
    # from a tools/test.py --out dump (no model is run; CHECKPOINT is only hashed)
    python tools/index/build.py CONFIG CHECKPOINT --from-dump results.pkl --out test.index
    # add an approximate (FAISS) index for large galleries
    python tools/index/build.py CONFIG CHECKPOINT --gallery ... --out cctv.index --ann
    # several processes: bash tools/index/dist_build.sh CONFIG CHECKPOINT 4 --gallery ...
"""
import argparse
import json
import os
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402

from mmpsearch.retrieval import GalleryIndex  # noqa: E402
from mmpsearch.retrieval.builder import (InferencerDetector, build_from_dump,  # noqa: E402
                                         build_from_frames, covered_by_parts, merge_parts,
                                         part_dir, rank_frames)
from mmpsearch.retrieval.shards import file_sha256  # noqa: E402
from mmpsearch.retrieval.sources import expand_gallery, list_frames  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Build or resume a person-search gallery index')
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', help='checkpoint file (hashed into the manifest)')
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--gallery', nargs='+', help='images, folders and videos')
    src.add_argument('--from-dump', help='a tools/test.py --out results dump')
    p.add_argument('--out', required=True, help='index folder (created or resumed)')
    p.add_argument('--frame-step', type=int, default=1, help='index every N-th video frame')
    p.add_argument('--every', type=float, default=None,
                   help='instead of --frame-step: one video frame every this many seconds')
    p.add_argument('--score-thr', type=float, default=0.5,
                   help='detections scoring below are not indexed')
    p.add_argument('--dtype', choices=['float32', 'float16'], default='float32',
                   help='embedding storage (float16: half the disk and memory)')
    p.add_argument('--batch-size', type=int, default=1, help='frames per forward pass')
    p.add_argument('--shard-frames', type=int, default=64,
                   help='frames per committed shard (at most this much work is redone '
                   'after a kill)')
    p.add_argument('--ann', nargs='?', const='default', default=None, metavar='FACTORY',
                   help='also build an approximate FAISS index (default IVF-PQ sized for '
                   'the gallery, or a FAISS factory string such as HNSW32)')
    p.add_argument('--nprobe', type=int, default=None,
                   help='IVF lists visited per query (default: a quarter of the lists, '
                   '>= 32; query.py --nprobe overrides it)')
    p.add_argument('--device', default=None, help='cpu / cuda (default: available)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                   help='job launcher (tools/index/dist_build.sh sets pytorch)')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p.parse_args(argv)


def _identity(args) -> dict:
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    return dict(model_config=osp.basename(args.config),
                checkpoint_sha256=file_sha256(args.checkpoint))


def _build_dump(args, ident) -> dict:
    from mmpsearch.evaluation import load_dump
    dump = load_dump(args.from_dump)
    dims = [r['det_embeddings'].shape[1] for r in dump['records']
            if r['det_embeddings'].ndim == 2 and len(r['det_embeddings'])]
    if not dims:
        raise ValueError(f'{args.from_dump} holds no detection embeddings')
    index = GalleryIndex.create(args.out, dims[0], dtype=args.dtype, exist_ok=True,
                                source=osp.abspath(args.from_dump),
                                config=osp.abspath(args.config),
                                checkpoint=osp.abspath(args.checkpoint), **ident)
    return build_from_dump(index, dump, args.score_thr, progress=not args.no_progress)


def _inferencer(args):
    from mmpsearch.retrieval.search_api import load_inferencer
    return load_inferencer(args.config, args.checkpoint, args.device, args.score_thr)


def _embedding_dim(inferencer) -> int:
    blank = np.full((128, 96, 3), 127, np.uint8)
    return int(inferencer.embed_query(blank, [24, 16, 72, 112]).shape[0])


def main(argv=None):
    args = parse_args(argv)
    ident = _identity(args)
    if args.from_dump:
        stats = _build_dump(args, ident)
        index = GalleryIndex.open(args.out)
    else:
        frames = list_frames(expand_gallery(args.gallery), args.frame_step, args.every)
        inferencer = _inferencer(args)
        dim = _embedding_dim(inferencer)
        notes = dict(config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint),
                     frame_step=args.frame_step, every=args.every, score_thr=args.score_thr)
        detect = InferencerDetector(inferencer, args.score_thr)
        if args.launcher == 'none':
            index = GalleryIndex.create(args.out, dim, dtype=args.dtype, exist_ok=True,
                                        **ident, **notes)
            stats = build_from_frames(index, frames, detect, args.batch_size,
                                      args.shard_frames, not args.no_progress)
        else:
            stats = _dist_build(args, frames, detect, dim, ident, notes)
            if stats is None:  # not rank 0
                return None
            index = GalleryIndex.open(args.out)
    if args.ann:
        factory = None if args.ann == 'default' else args.ann
        stats['ann'] = index.build_approximate(factory, nprobe=args.nprobe)
    stats.update(index=args.out, rows=len(index), shards=len(index.shards))
    print(json.dumps(stats))
    return stats


def _dist_build(args, frames, detect, dim, ident, notes):
    """Each rank indexes its share into INDEX/parts/rank<r>; rank 0 merges them."""
    import torch
    from mmengine.dist import barrier, get_dist_info, init_dist
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if torch.cuda.is_available():
        init_dist(args.launcher, backend='gloo')
    else:  # mmengine's pytorch launcher selects a CUDA device first; CPU builds have none
        torch.distributed.init_process_group(backend='gloo')
    rank, world = get_dist_info()
    if rank == 0:
        GalleryIndex.create(args.out, dim, dtype=args.dtype, exist_ok=True, **ident, **notes)
    barrier()
    covered = covered_by_parts(args.out)  # also frames of an earlier, killed run
    mine = [f for f in rank_frames(frames) if f.frame not in covered.get(f.source, ())]
    part = GalleryIndex.create(part_dir(args.out, rank), dim, dtype=args.dtype,
                               exist_ok=True, **ident)
    stats = build_from_frames(part, mine, detect, args.batch_size, args.shard_frames,
                              progress=not args.no_progress and rank == 0,
                              desc=f'indexing (rank {rank}/{world})')
    barrier()
    if rank != 0:
        barrier()
        return None
    index = GalleryIndex.open(args.out)
    merged = merge_parts(index, frames)
    barrier()
    return dict(frames=len(frames), indexed_rank0=stats['indexed'], detections=merged,
                world_size=world)


if __name__ == '__main__':
    main()
