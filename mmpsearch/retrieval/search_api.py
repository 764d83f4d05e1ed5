# Copyright (c) mmpsearch contributors. All rights reserved.
"""Querying a gallery index with a person-search model (``PersonSearchInferencer``).

The query person (image + box) is embedded exactly as the test protocol embeds a query;
the index is searched (exact or approximate), optionally re-ranked with CBGM, and
thresholded at the calibrated similarity ("not present" when no hit reaches it).
"""
import os.path as osp
from typing import Optional, Sequence, Union

import numpy as np

from .gallery_index import GalleryIndex, Hit, QueryResult
from .shards import file_sha256
from .sources import VIDEO_EXTS, FrameReader, FrameRef


def is_index(gallery) -> bool:
    """Whether ``gallery`` is a :class:`GalleryIndex` or the folder of one."""
    return isinstance(gallery, GalleryIndex) or (
        isinstance(gallery, str) and osp.isfile(osp.join(gallery, 'manifest.json')))


def model_identity(inferencer) -> dict:
    """Config name and checkpoint sha256 of an inferencer's model (for the manifest)."""
    weights = getattr(inferencer, 'weights_path', None)
    sha = file_sha256(weights) if weights and osp.isfile(weights) else ''
    return dict(model_config=getattr(inferencer, 'config_name', ''), checkpoint_sha256=sha)


def read_hit_frame(hit: Hit, image_root: Optional[str] = None,
                   reader: Optional[FrameReader] = None) -> np.ndarray:
    """The frame of a hit, BGR (sources that are not files are looked up under
    ``image_root``: the image ids of an index built from a dump)."""
    src = hit.source
    if not osp.isfile(src) and image_root is not None:
        src = osp.join(image_root, src)
    ref = FrameRef(src, hit.frame, hit.time, src.lower().endswith(VIDEO_EXTS))
    return (reader or FrameReader()).read(ref)


def search_index(inferencer, index: Union[str, GalleryIndex], query, query_bbox:
                 Sequence[float], topk: int = 10, backend: str = 'exact',
                 threshold: Union[str, float, None] = 'calibrated', cbgm: bool = False,
                 cbgm_k1: int = 10, cbgm_k2: int = 3, shortlist: Optional[int] = None,
                 nprobe: Optional[int] = None, out_file: Optional[str] = None,
                 image_root: Optional[str] = None, tile_height: int = 256,
                 check_model: bool = True,
                 exclude_sources: Optional[Sequence[str]] = None) -> dict:
    """Search a query person in a gallery index.

    Args:
        inferencer (PersonSearchInferencer): the model that built the index.
        index (str | GalleryIndex): the index or its folder.
        query (str | np.ndarray): query image (path or BGR array).
        query_bbox (Sequence[float]): the query person's box, xyxy.
        topk (int): hits at most.
        backend (str): ``'exact'`` or ``'approximate'``.
        threshold: ``'calibrated'`` (the index's), a number, or None.
        cbgm (bool): re-rank the frames of the ``cbgm_k1`` best hits with CBGM,
            context of ``cbgm_k2`` persons (query included) from the query image.
        shortlist, nprobe: approximate-backend settings.
        out_file (str, optional): draw the query and the hits into this picture.
        image_root (str, optional): folder of the images of a dump-built index.
        tile_height (int): tile height of the picture.
        check_model (bool): refuse an index built by another model.
        exclude_sources (Sequence[str], optional): leave out the hits of these sources,
            e.g. the query's own frame, which the CUHK-SYSU and PRW protocols never
            search; the search goes deeper so that ``topk`` hits remain when it can.

    Returns:
        dict: ``hits`` (list of dicts: rank, similarity, source, frame, time, box,
        score, uid, row), ``found`` (False: "not present" at the threshold),
        ``threshold``, ``message``, ``query_embedding`` and, with ``out_file``,
        ``visualization``.
    """
    from mmpsearch.evaluation.functional import CBGMOptions
    if isinstance(index, str):
        index = GalleryIndex.open(index)
    q, sample, box = inferencer._query_forward(query, query_bbox)
    q = q.numpy()
    if check_model:
        ident = model_identity(inferencer)
        index.check_model(ident['model_config'], ident['checkpoint_sha256'], len(q))
    else:
        index.check_model(embedding_dim=len(q))
    thr = index.threshold if threshold == 'calibrated' else threshold
    depth = max(topk, cbgm_k1) if cbgm else topk
    rows, sims = _search_excluding(index, q, depth, backend, shortlist, nprobe,
                                   set(exclude_sources or ()))
    if cbgm:
        from .rerank import build_context, cbgm_rerank
        pred = sample.pred_instances
        keep = (pred.scores >= inferencer.det_thresh).cpu().numpy()
        emb = pred.embeddings.float().cpu().numpy()[keep]
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        context = build_context(q, box, pred.bboxes.float().cpu().numpy()[keep],
                                pred.scores.float().cpu().numpy()[keep], emb,
                                CBGMOptions(k1=cbgm_k1, k2=cbgm_k2))
        rows, sims = cbgm_rerank(index, rows, sims, context, cbgm_k1)
    rows, sims = rows[:topk], sims[:topk]
    if thr is not None:
        keep = sims >= float(thr)
        rows, sims = rows[keep], sims[keep]
    hits = [Hit(rank=i + 1, similarity=float(s), **rec)
            for i, (s, rec) in enumerate(zip(sims, index.records(rows)))]
    result = QueryResult(hits, None if thr is None else float(thr),
                         found=bool(hits) or thr is None)
    out = result.to_dict()
    out['query_embedding'] = q
    if out_file is not None:
        out['visualization'] = draw_index_hits(inferencer, query, box, hits, out_file,
                                               image_root, tile_height)
    return out


def _search_excluding(index: GalleryIndex, query: np.ndarray, depth: int, backend: str,
                      shortlist: Optional[int], nprobe: Optional[int],
                      excluded: set) -> tuple:
    """(depth,) rows and similarities of the best rows outside the ``excluded`` sources.

    Searches ``depth`` rows, then twice as many while excluded rows crowd out the list
    and the gallery holds more.
    """
    want = depth
    while True:
        rows, sims = index.search_rows(query, want, backend, shortlist, nprobe)
        rows, sims = rows[0], sims[0]
        if not excluded:
            return rows, sims
        keep = np.array([r['source'] not in excluded for r in index.records(rows)], bool)
        if int(keep.sum()) >= depth or want >= len(index) or len(rows) < want:
            return rows[keep][:depth], sims[keep][:depth]
        want = min(2 * want, len(index))


def draw_index_hits(inferencer, query, query_bbox, hits, out_file, image_root=None,
                    tile_height: int = 256) -> np.ndarray:
    """Draw the query and the index hits (source, time) as one picture."""
    from mmpsearch.visualization import SearchHit, draw_ranked_results
    reader = FrameReader()
    tiles = []
    try:
        for h in hits:
            frame = read_hit_frame(h, image_root, reader)[..., ::-1].copy()
            name = osp.basename(h.source)
            if h.source.lower().endswith(VIDEO_EXTS):
                name = f'{name} @{h.time:.1f}s'
            tiles.append(SearchHit(frame, h.box, h.similarity, h.score, name, None))
    finally:
        reader.close()
    return draw_ranked_results(inferencer._read_rgb(query), query_bbox, tiles, out_file,
                               tile_height=tile_height)


def load_inferencer(config: str, checkpoint: str, device: Optional[str] = None,
                    det_thresh: float = 0.5):
    """A ``PersonSearchInferencer`` for the index tools (mmpsearch scope entered, the
    config's file name kept as the model's name)."""
    from mmengine.config import Config

    from mmpsearch.apis import PersonSearchInferencer
    from mmpsearch.utils import register_all_modules
    for what, path in (('config', config), ('checkpoint', checkpoint)):
        if not path or not osp.isfile(path):
            raise FileNotFoundError(f'model {what} not found: {path} (pass --{what})')
    register_all_modules(init_default_scope=True)
    inferencer = PersonSearchInferencer(Config.fromfile(config), checkpoint, device=device,
                                        det_thresh=det_thresh, show_progress=False)
    inferencer.config_name = osp.basename(config)
    return inferencer
