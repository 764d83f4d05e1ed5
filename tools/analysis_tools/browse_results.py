# Copyright (c) mmpsearch contributors. All rights reserved.
"""Draw ranked search results for chosen queries straight from a ``--out`` dump.

No model is built: the test dataset of CONFIG gives the images and the protocol, the dump
(read with the restricted unpickler) gives detections and embeddings. Each query becomes
one row: its crop, then the top-k detections of its protocol gallery by cosine
similarity, green when the hit is the query person by the protocol's rule (the most
similar detection overlapping the target with IoU ≥ min(0.5, wh/((w+10)(h+10)))), red
otherwise.

Example:
    python tools/analysis_tools/browse_results.py CONFIG results.pkl --num-queries 4 \
        --topk 5 --out search_examples.png
    python tools/analysis_tools/browse_results.py CONFIG results.pkl --query-idx 3 17 \
        --protocol G100 --out q.png
"""
import argparse
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import mmcv  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import mmpsearch  # noqa: E402,F401
from mmpsearch.evaluation import check_dump_matches, load_dump  # noqa: E402
from mmpsearch.evaluation.functional import match_threshold, pairwise_iou  # noqa: E402
from mmpsearch.evaluation.functional.reference import gallery_entries  # noqa: E402
from mmpsearch.registry import DATASETS  # noqa: E402
from mmpsearch.utils import register_all_modules  # noqa: E402
from mmpsearch.visualization import SearchHit, draw_ranked_results  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Ranked search results from a dump')
    parser.add_argument('config', help='the config the dump was made with')
    parser.add_argument('dump', help='results .pkl from tools/test.py --out')
    parser.add_argument('--protocol', help='protocol name (default: G100 or standard)')
    parser.add_argument('--query-idx', type=int, nargs='+',
                        help='protocol rows to draw (default: --num-queries spread evenly)')
    parser.add_argument('--num-queries', type=int, default=4)
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--score-thr', type=float, default=0.5)
    parser.add_argument('--out', default='search_examples.png')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def rank_query(sp, proto, row, records, score_thr, topk):
    """Rank the gallery detections of protocol row ``row``.

    Args:
        sp (dict): ``search_protocol``.
        proto (dict): one of ``sp['protocols']``.
        row (int): the protocol row (query).
        records (dict[int, dict]): dump records by image index.
        score_thr (float): detections below are not ranked.
        topk (int): hits returned.

    Returns:
        tuple: (query index, list of (similarity, score, image index, box, correct)).
    """
    q, _, gallery = gallery_entries(sp, proto, row)
    rec_q = records[int(sp['query_image_idx'][q])]
    pos = np.nonzero(rec_q['query_idx'] == q)[0]
    if len(pos) == 0:
        raise KeyError(f'the dump has no embedding for query {q}')
    feat = rec_q['query_embeddings'][pos[0]].astype(np.float64)
    feat /= max(np.linalg.norm(feat), 1e-12)
    rows, seen = [], set()
    for img, target in gallery:
        if img in seen or img not in records:
            continue
        seen.add(img)
        rec = records[img]
        keep = rec['det_scores'] >= score_thr
        if not keep.any():
            continue
        emb = rec['det_embeddings'][keep].astype(np.float64)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        sims = emb @ feat
        boxes = rec['det_bboxes'][keep]
        correct = np.zeros(len(sims), bool)
        if target is not None:
            ious = pairwise_iou(boxes, target[None])[:, 0]
            ok = np.nonzero(ious >= match_threshold(target[None])[0])[0]
            if len(ok):  # only the most similar overlapping detection is a hit
                correct[ok[np.argmax(sims[ok])]] = True
        for s, sc, b, c in zip(sims, rec['det_scores'][keep], boxes, correct):
            rows.append((float(s), float(sc), img, b, bool(c)))
    rows.sort(key=lambda r: -r[0])
    return q, rows[:topk]


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpsearch'))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    sp = dataset.metainfo['search_protocol']
    dump = load_dump(args.dump)
    check_dump_matches(dump, sp, args.dump)
    index = {name: i for i, name in enumerate(sp['image_ids'])}
    records = {index[r['img_id']]: r for r in dump['records'] if r['img_id'] in index}
    paths = {index[d['img_id']]: d['img_path'] for d in
             (dataset.get_data_info(i) for i in range(len(dataset)))}
    name = args.protocol or next(p for p in ('G100', 'standard', *sp['protocols'])
                                 if p in sp['protocols'])
    proto = sp['protocols'][name]
    n_rows = len(proto['query_idx'])
    chosen = args.query_idx or sorted(set(
        np.linspace(0, n_rows - 1, min(args.num_queries, n_rows)).round().astype(int)))
    pictures = []
    for row in chosen:
        q, hits = rank_query(sp, proto, row, records, args.score_thr, args.topk)
        qimg = mmcv.imread(paths[int(sp['query_image_idx'][q])], channel_order='rgb')
        drawn = [SearchHit(mmcv.imread(paths[img], channel_order='rgb'), box, sim, score,
                           sp['image_ids'][img], correct)
                 for sim, score, img, box, correct in hits]
        title = (f'{name} query {row} (person {sp["query_person_ids"][q]}, '
                 f'{sp["image_ids"][sp["query_image_idx"][q]]})')
        pictures.append(draw_ranked_results(qimg, sp['query_bboxes'][q], drawn,
                                            title=title, tile_height=220))
    width = max(p.shape[1] for p in pictures)
    canvas = np.concatenate([np.pad(p, ((0, 10), (0, width - p.shape[1]), (0, 0)),
                                    constant_values=255) for p in pictures])
    mmcv.imwrite(canvas[..., ::-1], args.out)
    print(f'{len(pictures)} queries of protocol {name} drawn to {args.out}')


if __name__ == '__main__':
    main()
