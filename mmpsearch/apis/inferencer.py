# Copyright (c) mmpsearch contributors. All rights reserved.
"""Person search on your own images: a query image plus a box against a gallery.

:class:`PersonSearchInferencer` follows mmengine's :class:`BaseInferencer` (and mmdet's
``DetInferencer``): it builds the model and the test pipeline from a config, loads the
weights safely, and runs ``preprocess → forward → postprocess → visualize``. The query is
embedded from its annotated box exactly as in the test protocol (the box's re-id
embedding on its own image); every gallery image is searched with the detector, and all
detections above the score threshold are ranked by cosine similarity.

Example:
    >>> inferencer = PersonSearchInferencer('configs/spnet/...py', 'epoch_30.pth')
    >>> result = inferencer('gallery_dir/', query='query.jpg', query_bbox=[10, 20, 60, 180],
    ...                     topk=5, out_file='search.png')
    >>> result['hits'][0]  # {'image': ..., 'bbox': [...], 'similarity': ..., 'score': ...}
"""
import copy
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.registry import DefaultScope
from mmengine.utils import is_list_of

from mmpsearch.registry import INFERENCERS
from mmpsearch.visualization import SearchHit, draw_ranked_results

ImageType = Union[str, np.ndarray]
_MIN_QUERY_SIDE = 2  # pixels, each side of the query box inside the image
_IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def _as_bgr(image: np.ndarray, name: str) -> np.ndarray:
    """Greyscale → 3 channels; drop an alpha channel; check the dtype."""
    if image.dtype != np.uint8:
        raise TypeError(f'{name}: expected a uint8 image array, got {image.dtype}')
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f'{name}: unsupported image shape {image.shape}')


def _check_query_box(bbox: Sequence[float], height: int, width: int) -> List[float]:
    """Clip a query box to the image; refuse one that is degenerate, too small (under
    ``_MIN_QUERY_SIDE`` pixels a side: RoIAlign would sample a handful of pixels) or
    outside the image, with a message saying which."""
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f'query_bbox must be 4 finite numbers x1, y1, x2, y2; got {bbox}')
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'query_bbox {list(box)} is empty (need x2 > x1 and y2 > y1)')
    size = f'{width}x{height} query image'
    if x2 - x1 < _MIN_QUERY_SIDE or y2 - y1 < _MIN_QUERY_SIDE:
        raise ValueError(f'query_bbox {list(box)} is {x2 - x1:g} x {y2 - y1:g} px, smaller '
                         f'than {_MIN_QUERY_SIDE} px a side')
    cx1, cy1 = max(x1, 0.0), max(y1, 0.0)
    cx2, cy2 = min(x2, float(width)), min(y2, float(height))
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError(f'query_bbox {list(box)} lies outside the {size}')
    if cx2 - cx1 < _MIN_QUERY_SIDE or cy2 - cy1 < _MIN_QUERY_SIDE:
        raise ValueError(f'query_bbox {list(box)}: only {cx2 - cx1:g} x {cy2 - cy1:g} px of '
                         f'it lies inside the {size} (at least {_MIN_QUERY_SIDE} px a side '
                         'needed)')
    return [cx1, cy1, cx2, cy2]


def cosine_to_query(embeddings: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Similarities of L2-normalised rows to the query, each row reduced on its own.

    A matrix-vector product (BLAS gemv) sums a row in an order that depends on the row's
    position in its block, so identical detections would get similarities that differ in
    the last bit and a tie would be ranked by position; an elementwise product summed
    over the last axis reduces every row alike.

    Args:
        embeddings (Tensor): (N, D) float32.
        query (Tensor): (D,) float32.

    Returns:
        Tensor: (N,) similarities.
    """
    return (embeddings * query).sum(dim=1)


@INFERENCERS.register_module()
class PersonSearchInferencer(BaseInferencer):
    """Search a query person (image + box) in a gallery of scene images.

    Args:
        model (str | dict | Config, optional): config file or config of a person-search
            model. When None, the config stored in ``weights`` is read as literal data
            (never executed); a stored config that is not plain data is refused.
        weights (str, optional): checkpoint path (loaded with the safe loader).
        device (str, optional): ``'cpu'``, ``'cuda'``, ... (default: the available one).
        scope (str): registry scope the model and pipeline are built in and run in,
            ``'mmpsearch'``. The inferencer enters it for its own calls only (building,
            searching), so it works in a fresh process without ``register_all_modules``
            and leaves the caller's default scope as it was.
        det_thresh (float): detections scoring below it are not ranked (the protocol's 0.5).
        show_progress (bool): show a progress bar over the gallery.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'out_file', 'tile_height'}
    postprocess_kwargs: set = {'topk', 'gallery_gt'}

    def __init__(self, model=None, weights: Optional[str] = None,
                 device: Optional[str] = None, scope: str = 'mmpsearch',
                 det_thresh: float = 0.5, show_progress: bool = True):
        from mmpsearch.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        self.det_thresh = det_thresh
        self.weights_path = weights  # identifies the model to a gallery index
        self.config_name = osp.basename(model if isinstance(model, str) else
                                        (getattr(model, 'filename', None) or ''))
        scope = scope or 'mmpsearch'
        # mmengine's BaseInferencer builds from its root registries, which resolve
        # through the *current* default scope: enter ours around the build (mmdet's
        # DetInferencer sets it process-wide instead, which would change the caller's).
        with DefaultScope.overwrite_default_scope(scope):
            super().__init__(model=model, weights=weights, device=device, scope=scope,
                             show_progress=show_progress)

    def _scope(self):
        """Context in which the inferencer's registries resolve (see ``__init__``)."""
        return DefaultScope.overwrite_default_scope(self.scope)

    # -- model ------------------------------------------------------------------------
    def _init_model(self, cfg, weights: Optional[str], device: str = 'cpu') -> torch.nn.Module:
        """Build the model and load ``weights`` without executing anything from them.

        mmengine's version rebuilds a missing config by executing the text stored in the
        checkpoint; here the stored text is parsed as literal data only
        (:func:`mmpsearch.utils.literal_config.stored_config`; docs/design.md, "Loading
        artefacts"), and the checkpoint is read by the safe loader.
        """
        from mmengine.registry import MODELS
        from mmengine.runner.checkpoint import _load_checkpoint

        from mmpsearch.utils.literal_config import stored_config
        checkpoint = None
        if weights is not None:
            checkpoint = _load_checkpoint(weights, map_location='cpu')
        if not cfg:
            if checkpoint is None:
                raise ValueError('PersonSearchInferencer needs a config or a checkpoint')
            cfg.update(Config(stored_config(checkpoint, str(weights)))._cfg_dict)
        if cfg.model.get('pretrained') is not None:
            del cfg.model.pretrained
        model = MODELS.build(cfg.model)
        model.cfg = cfg
        self._load_weights_to_model(model, checkpoint, cfg)
        model.to(device)
        model.eval()
        return model

    # -- pipeline --------------------------------------------------------------------
    def _init_pipeline(self, cfg) -> Compose:
        """The config's test pipeline with the image loader swapped per input kind."""
        steps = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        load = [i for i, t in enumerate(steps) if 'Load' in t['type'] and 'Image' in t['type']]
        if not load:
            raise ValueError('the test pipeline has no image-loading transform')
        rest = steps[load[0] + 1:]
        self._path_pipeline = Compose([steps[load[0]]] + rest)
        self._array_pipeline = Compose([dict(type='mmdet.LoadImageFromNDArray')] + rest)
        return self._path_pipeline

    def _init_collate(self, cfg):
        return pseudo_collate

    def _load_item(self, image: ImageType, name: str, queries=()) -> dict:
        item = dict(img_id=name, cam_id=-1, instances=[], queries=list(queries))
        if isinstance(image, str):
            if not osp.isfile(image):
                raise FileNotFoundError(f'image file not found: {image}')
            item['img_path'] = image
            return self._path_pipeline(item)
        item['img'] = _as_bgr(image, name)
        item['img_path'] = None
        return self._array_pipeline(item)

    @staticmethod
    def _gallery_list(gallery) -> List[ImageType]:
        if isinstance(gallery, str):
            if osp.isdir(gallery):
                files = sorted(osp.join(gallery, f) for f in os.listdir(gallery)
                               if f.lower().endswith(_IMAGE_EXTS))
                if not files:
                    raise ValueError(f'gallery folder {gallery} contains no images '
                                     f'({", ".join(_IMAGE_EXTS)})')
                return files
            return [gallery]
        if isinstance(gallery, np.ndarray):
            return [gallery]
        if isinstance(gallery, (list, tuple)) and (is_list_of(gallery, str)
                                                   or is_list_of(gallery, np.ndarray)):
            if not gallery:
                raise ValueError('the gallery is empty')
            return list(gallery)
        raise TypeError('gallery must be a folder, an image path, an array, or a list of '
                        f'paths/arrays; got {type(gallery)}')

    @staticmethod
    def _read_rgb(image: ImageType) -> np.ndarray:
        if isinstance(image, str):
            img = mmcv.imread(image, flag='color', channel_order='rgb')
            if img is None:
                raise OSError(f'cannot decode image file {image}')
            return img
        return _as_bgr(image, 'array')[..., ::-1].copy()

    # -- model ------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, inputs: dict, **kwargs) -> list:
        return self.model.test_step(inputs)

    def embed_query(self, query: ImageType, query_bbox: Sequence[float]) -> torch.Tensor:
        """Embed the query person from its box (test-protocol query embedding).

        Returns:
            Tensor: (D,) L2-normalised embedding.
        """
        with self._scope():
            return self._query_forward(query, query_bbox)[0]

    def _query_forward(self, query: ImageType, query_bbox: Sequence[float]):
        """Query embedding, the data sample of the query image (its detections) and the
        clipped box."""
        name = query if isinstance(query, str) else 'query'
        if isinstance(query, str):  # decode once: its size checks the box, then it is embedded
            if not osp.isfile(query):
                raise FileNotFoundError(f'image file not found: {query}')
            query = mmcv.imread(query, flag='color')
            if query is None:
                raise OSError(f'cannot decode image file {name}')
        h, w = query.shape[:2]
        box = _check_query_box(query_bbox, h, w)
        data = self._load_item(query, osp.basename(name),
                               queries=[dict(bbox=box, person_id=-1, query_idx=0)])
        sample = self.forward(pseudo_collate([data]))[0]
        emb = sample.query_embeddings
        if emb.shape[0] != 1:
            raise RuntimeError(f'the model returned {emb.shape[0]} query embeddings for one box')
        return torch.nn.functional.normalize(emb[0].float(), dim=0).cpu(), sample, box

    def __call__(self, gallery, query: ImageType, query_bbox: Sequence[float],
                 topk: int = 10, batch_size: int = 1, out_file: Optional[str] = None,
                 gallery_gt: Optional[Sequence[Optional[Sequence[float]]]] = None,
                 tile_height: int = 256) -> dict:
        """Search ``query``/``query_bbox`` in ``gallery``.

        Args:
            gallery: a folder of images, an image path/array, or a list of them.
            query (str | np.ndarray): the query image (arrays are BGR uint8, as mmcv reads).
            query_bbox (Sequence[float]): the query person's box, xyxy pixels.
            topk (int): number of hits returned (and drawn).
            batch_size (int): gallery images per forward pass.
            out_file (str, optional): write the ranked-results picture there.
            gallery_gt (list, optional): per gallery image, the query person's box or None;
                when given, each hit is marked correct (IoU ≥ 0.5) or not.
            tile_height (int): tile height of the picture.

        Returns:
            dict: ``hits`` (list of dicts: ``image`` (path or index), ``bbox``,
            ``similarity``, ``score``, ``rank``, ``correct``), ``query_embedding``
            (np.ndarray (D,)), ``num_detections`` (per gallery image), and
            ``visualization`` (RGB array, when ``out_file`` is given).
        """
        from mmpsearch.retrieval.search_api import is_index
        with self._scope():
            if is_index(gallery):  # a gallery index built by tools/index/build.py
                return self.search_index(gallery, query, query_bbox, topk=topk,
                                         out_file=out_file, tile_height=tile_height)
            return self._search(gallery, query, query_bbox, topk, batch_size, out_file,
                                gallery_gt, tile_height)

    def _search(self, gallery, query, query_bbox, topk, batch_size, out_file, gallery_gt,
                tile_height) -> dict:
        images = self._gallery_list(gallery)
        if gallery_gt is not None and len(gallery_gt) != len(images):
            raise ValueError(f'gallery_gt has {len(gallery_gt)} entries for {len(images)} '
                             'gallery images')
        q = self._query_forward(query, query_bbox)[0]
        names = [osp.basename(g) if isinstance(g, str) else f'array_{i}'
                 for i, g in enumerate(images)]
        preds = []
        chunks = [list(range(i, min(i + batch_size, len(images))))
                  for i in range(0, len(images), batch_size)]
        if self.show_progress:
            from mmengine.utils import track_iter_progress
            chunks = track_iter_progress(chunks)
        for chunk in chunks:
            batch = pseudo_collate([self._load_item(images[i], names[i]) for i in chunk])
            preds.extend(self.forward(batch))
        result = self.postprocess(preds, q, topk, images, gallery_gt)
        if out_file is not None:
            result['visualization'] = self.visualize(query, query_bbox, images, result,
                                                     out_file, tile_height)
        return result

    def search_index(self, index, query: ImageType, query_bbox: Sequence[float],
                     topk: int = 10, **kwargs) -> dict:
        """Search a gallery index (a :class:`GalleryIndex` or its folder); see
        :func:`mmpsearch.retrieval.search_api.search_index` for the options (backend,
        threshold, CBGM, picture) and the result."""
        from mmpsearch.retrieval.search_api import search_index
        return search_index(self, index, query, query_bbox, topk=topk, **kwargs)

    def postprocess(self, preds, query_embedding, topk, images, gallery_gt=None) -> dict:
        """Rank every detection above ``det_thresh`` by cosine similarity to the query."""
        from mmpsearch.evaluation.functional.iou import pairwise_iou
        rows = []
        counts = []
        for idx, sample in enumerate(preds):
            pred = sample.pred_instances
            keep = pred.scores >= self.det_thresh
            counts.append(int(keep.sum()))
            if not keep.any():
                continue
            emb = torch.nn.functional.normalize(pred.embeddings[keep].float().cpu(), dim=1)
            sims = cosine_to_query(emb, query_embedding)
            for box, score, sim in zip(pred.bboxes[keep].cpu().tolist(),
                                       pred.scores[keep].cpu().tolist(), sims.tolist()):
                rows.append((sim, score, idx, box))
        rows.sort(key=lambda r: -r[0])
        hits = []
        for rank, (sim, score, idx, box) in enumerate(rows[:topk], 1):
            correct = None
            if gallery_gt is not None:
                gt = gallery_gt[idx]
                correct = bool(gt is not None and pairwise_iou(
                    np.asarray([box]), np.asarray([gt], np.float64))[0, 0] >= 0.5)
            image = images[idx] if isinstance(images[idx], str) else idx
            hits.append(dict(image=image, bbox=box, similarity=sim, score=score, rank=rank,
                             correct=correct))
        return dict(hits=hits, query_embedding=query_embedding.numpy(),
                    num_detections=counts)

    def visualize(self, query, query_bbox, images, result, out_file,
                  tile_height=256) -> np.ndarray:
        """Draw the query crop and the ranked hits (see :func:`draw_ranked_results`)."""
        hits = []
        for h in result['hits']:
            src = h['image'] if isinstance(h['image'], str) else images[h['image']]
            name = osp.basename(src) if isinstance(src, str) else f'array_{h["image"]}'
            hits.append(SearchHit(self._read_rgb(src), h['bbox'], h['similarity'],
                                  h['score'], name, h['correct']))
        return draw_ranked_results(self._read_rgb(query), query_bbox, hits, out_file,
                                   tile_height=tile_height)
