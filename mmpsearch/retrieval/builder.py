# Copyright (c) mmpsearch contributors. All rights reserved.
"""Filling a gallery index: from frames through a detector, or from a results dump.

A build is resumable: frames are indexed in chunks, each chunk becomes one shard that is
committed together with the frames it covered (``coverage`` in the manifest). A build
killed at any point leaves the index as of its last committed chunk; started again it
skips every covered frame, so nothing is indexed twice.

Several processes (``tools/index/dist_build.sh``) split the frames with mmengine's
``DefaultSampler`` (no padding). Each rank fills its own part index
(``INDEX/parts/rank<r>``); rank 0 then merges the parts into ``INDEX`` in frame order,
so the merged index holds exactly the rows, in the same order, as a one-process build.
"""
import os
import os.path as osp
import shutil
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from .gallery_index import GalleryIndex
from .shards import META_DTYPE
from .sources import FrameReader, FrameRef, coverage_ranges, iter_chunks

Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N,4), scores (N,), emb (N,D)
DetectFn = Callable[[List[np.ndarray]], List[Detections]]
PARTS = 'parts'


class InferencerDetector:
    """Detections and embeddings of BGR frames through a :class:`PersonSearchInferencer`.

    Args:
        inferencer: a ``PersonSearchInferencer``.
        score_thr (float): detections scoring below are not indexed.
    """

    def __init__(self, inferencer, score_thr: float = 0.5):
        self.inferencer = inferencer
        self.score_thr = float(score_thr)

    def __call__(self, images: List[np.ndarray]) -> List[Detections]:
        from mmengine.dataset import pseudo_collate
        batch = pseudo_collate([self.inferencer._load_item(img, f'frame_{i}')
                                for i, img in enumerate(images)])
        out = []
        for sample in self.inferencer.forward(batch):
            pred = sample.pred_instances
            keep = (pred.scores >= self.score_thr).cpu()
            emb = pred.embeddings[keep].float().cpu()
            emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
            out.append((pred.bboxes[keep].float().cpu().numpy(),
                        pred.scores[keep].float().cpu().numpy(), emb.numpy()))
        return out


def build_from_frames(index: GalleryIndex, frames: Sequence[FrameRef], detect: DetectFn,
                      batch_size: int = 1, shard_frames: int = 64,
                      progress: bool = True, desc: str = 'indexing') -> Dict[str, int]:
    """Detect, embed and index every frame not indexed yet.

    Args:
        index (GalleryIndex): the index to fill (resumed when it covers frames).
        frames (Sequence[FrameRef]): frames in the order to index them.
        detect (DetectFn): BGR images → per image (boxes, scores, embeddings).
        batch_size (int): frames per ``detect`` call.
        shard_frames (int): frames per committed chunk (what a kill can lose).
        progress (bool): show a progress bar.
        desc (str): its label.

    Returns:
        dict: ``frames`` (all), ``skipped`` (already indexed), ``indexed``,
        ``detections`` (added).
    """
    from tqdm import tqdm
    covered = index.covered()
    todo = [f for f in frames if f.frame not in covered.get(f.source, ())]
    reader = FrameReader()
    added = 0
    bar = tqdm(total=len(frames), initial=len(frames) - len(todo), disable=not progress,
               desc=desc, unit='frame', dynamic_ncols=True)
    try:
        for chunk in iter_chunks(todo, shard_frames):
            parts: Dict[str, list] = {k: [] for k in ('emb', 'src', 'frame', 'time', 'box',
                                                      'score')}
            for batch in iter_chunks(chunk, batch_size):
                images = [reader.read(f) for f in batch]
                for f, (boxes, scores, emb) in zip(batch, detect(images)):
                    n = len(scores)
                    parts['emb'].append(np.asarray(emb, np.float32).reshape(n, -1))
                    parts['src'] += [f.source] * n
                    parts['frame'].append(np.full(n, f.frame, np.int64))
                    parts['time'].append(np.full(n, f.time, np.float64))
                    parts['box'].append(np.asarray(boxes, np.float32).reshape(n, 4))
                    parts['score'].append(np.asarray(scores, np.float32))
                bar.update(len(batch))
            emb = np.concatenate(parts['emb']) if parts['emb'] else np.zeros((0, index.dim))
            added += index.add(emb, parts['src'], np.concatenate(parts['frame']),
                               np.concatenate(parts['time']), np.concatenate(parts['box']),
                               np.concatenate(parts['score']),
                               coverage=coverage_ranges(chunk))
    finally:
        reader.close()
        bar.close()
    return dict(frames=len(frames), skipped=len(frames) - len(todo), indexed=len(todo),
                detections=added)


def build_from_dump(index: GalleryIndex, dump: dict, score_thr: float = 0.5,
                    shard_frames: int = 256, progress: bool = True) -> Dict[str, int]:
    """Index the detections of a ``tools/test.py --out`` dump (no model needed).

    Each record is one image: ``source`` is its ``img_id``, frame and time are 0.
    """
    from tqdm import tqdm
    covered = index.covered()
    recs = [r for r in dump['records'] if 0 not in covered.get(r['img_id'], ())]
    added = 0
    for chunk in tqdm(list(iter_chunks(recs, shard_frames)), disable=not progress,
                      desc='indexing dump', unit='chunk'):
        emb, src, box, score = [], [], [], []
        for r in chunk:
            keep = np.asarray(r['det_scores']) >= score_thr
            e = np.asarray(r['det_embeddings'], np.float32)[keep]
            emb.append(e)
            src += [r['img_id']] * len(e)
            box.append(np.asarray(r['det_bboxes'], np.float32).reshape(-1, 4)[keep])
            score.append(np.asarray(r['det_scores'], np.float32)[keep])
        emb_arr = np.concatenate(emb) if emb else np.zeros((0, index.dim), np.float32)
        added += index.add(emb_arr, src, None, None, np.concatenate(box),
                           np.concatenate(score),
                           coverage=[[r['img_id'], 0, 1, 1] for r in chunk])
    return dict(frames=len(dump['records']), skipped=len(dump['records']) - len(recs),
                indexed=len(recs), detections=added)


# ---------------------------------------------------------------------- distributed
def part_dir(index_dir: str, rank: int) -> str:
    return osp.join(index_dir, PARTS, f'rank{rank}')


def rank_frames(frames: Sequence[FrameRef]) -> List[FrameRef]:
    """This rank's frames, as mmengine's ``DefaultSampler`` deals them (in order, no
    padding: ``round_up=False``, so no frame is indexed by two ranks)."""
    from mmengine.dataset import DefaultSampler
    sampler = DefaultSampler(list(range(len(frames))), shuffle=False, round_up=False)
    return [frames[i] for i in sampler]


def covered_by_parts(index_dir: str) -> Dict[str, set]:
    """Frames covered by the merged index and by every part (of any earlier run)."""
    out: Dict[str, set] = {}
    dirs = [index_dir] + [osp.join(index_dir, PARTS, d) for d in
                          sorted(os.listdir(osp.join(index_dir, PARTS)))
                          if osp.isdir(osp.join(index_dir, PARTS))] \
        if osp.isdir(osp.join(index_dir, PARTS)) else [index_dir]
    for d in dirs:
        if osp.isfile(osp.join(d, 'manifest.json')):
            for src, frames in GalleryIndex.open(d).covered().items():
                out.setdefault(src, set()).update(frames)
    return out


def merge_parts(index: GalleryIndex, frame_order: Sequence[FrameRef],
                shard_rows: int = 1 << 20) -> int:
    """Move every part index under ``INDEX/parts`` into ``index``, rows in frame order.

    Returns:
        int: rows merged.
    """
    root = osp.join(index.path, PARTS)
    if not osp.isdir(root):
        return 0
    parts = [GalleryIndex.open(osp.join(root, d)) for d in sorted(os.listdir(root))
             if osp.isfile(osp.join(root, d, 'manifest.json'))]
    for p in parts:
        index.check_model(p.manifest.model_config, p.manifest.checkpoint_sha256, p.dim)
    pos = {(f.source, f.frame): i for i, f in enumerate(frame_order)}
    emb, meta, names, coverage = [], [], [], []
    for p in parts:
        for shard in p.shards:
            m = np.array(shard.meta)
            emb.append(np.asarray(shard.emb, np.float32))
            meta.append(m)
            names.extend(str(s) for s in shard.sources[m['source']])
            coverage.extend(shard.info.coverage)
    total = 0
    if meta:
        meta_all = np.concatenate(meta) if meta else np.zeros(0, META_DTYPE)
        emb_all = np.concatenate(emb)
        key = np.array([pos.get((n, int(f)), len(pos)) for n, f in
                        zip(names, meta_all['frame'])], np.int64)
        order = np.lexsort((np.arange(len(key)), key))  # stable: detections keep order
        names_arr = np.asarray(names, dtype=np.str_)
        for a in range(0, len(order), shard_rows):
            sel = order[a:a + shard_rows]
            m = meta_all[sel]
            last = a + shard_rows >= len(order)
            # one manifest commit for the whole merge: a kill leaves the parts in place
            total += index.add(emb_all[sel], names_arr[sel].tolist(), m['frame'], m['time'],
                               m['box'], m['score'], coverage=coverage if last else None,
                               commit=last)
    elif coverage:
        index.add(np.zeros((0, index.dim), np.float32), [], coverage=coverage)
    shutil.rmtree(root)
    return total
