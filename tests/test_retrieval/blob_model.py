# Copyright (c) mmpsearch contributors. All rights reserved.
"""A tiny, deterministic stand-in for a trained person-search model (tests only).

It finds the coloured figures of :func:`draw_scene` on their flat background
(connected components of pixels far from the border colour) and embeds each one by the
mean colours of its upper and lower half through a fixed projection (its only weights,
saved in the test's checkpoint). Through ``PersonSearchInferencer`` it behaves like a
model of the ``mmpsearch`` scope: ``pred_instances`` (boxes, scores, embeddings in image
pixels) and ``query_embeddings`` of the query boxes. The tools under test never know.
The config imports it as ``blob_model``: this folder must be on ``PYTHONPATH``.
"""
import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from scipy import ndimage

from mmpsearch.registry import MODELS

EMBED_DIM = 16
# (top colour, bottom colour) BGR of each identity: all far apart
IDENTITY_COLOURS = [((30, 30, 220), (200, 60, 20)), ((40, 200, 40), (40, 40, 40)),
                    ((220, 200, 30), (30, 140, 230)), ((200, 40, 200), (40, 220, 220)),
                    ((120, 120, 240), (230, 230, 230)), ((20, 90, 20), (160, 30, 160))]


def draw_scene(identities, positions, size=(240, 320), background=(110, 120, 100),
               gain=1.0):
    """A BGR frame with one figure per identity at ``positions`` (x, y top-left);
    ``gain`` scales the people's colours (another camera's exposure). Returns the
    image and the figures' boxes."""
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = background
    boxes = []
    for ident, (x, y) in zip(identities, positions):
        top, bottom = IDENTITY_COLOURS[ident]
        top = tuple(int(min(255, c * gain)) for c in top)
        bottom = tuple(int(min(255, c * gain)) for c in bottom)
        img[y:y + 45, x:x + 30] = top
        img[y + 45:y + 90, x:x + 30] = bottom
        boxes.append([x, y, x + 30, y + 90])
    return img, boxes


@MODELS.register_module(force=True)
class BlobPersonSearcher(BaseModel):
    """Colour-blob detector + colour embedding (see the module docstring)."""

    def __init__(self, data_preprocessor=None, min_area: int = 200):
        super().__init__(data_preprocessor=data_preprocessor)
        self.min_area = min_area
        self.proj = torch.nn.Linear(6, EMBED_DIM, bias=False)

    def _embed(self, img: np.ndarray, mask: np.ndarray, box) -> torch.Tensor:
        x1, y1, x2, y2 = [int(round(v)) for v in box]
        mid = (y1 + y2) // 2
        feats = []
        for a, b in ((y1, mid), (mid, y2)):
            m = mask[a:b, x1:x2]
            px = img[a:b, x1:x2][m] if m.any() else img[a:b, x1:x2].reshape(-1, 3)
            colour = px.mean(0) / 255.0 - 0.5 if len(px) else np.zeros(3)
            feats.append(colour)
        x = torch.as_tensor(np.concatenate(feats), dtype=torch.float32)
        return torch.nn.functional.normalize(self.proj(x), dim=0)

    def forward(self, inputs, data_samples=None, mode='predict'):
        out = []
        for img_t, ds in zip(inputs, data_samples):
            img = img_t.permute(1, 2, 0).cpu().numpy().astype(np.float32)
            border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
            bg = np.median(border, axis=0)
            mask = np.abs(img - bg).max(axis=2) > 40
            labels, _ = ndimage.label(mask)
            boxes, embs = [], []
            for sl in ndimage.find_objects(labels):
                box = [sl[1].start, sl[0].start, sl[1].stop, sl[0].stop]
                if (box[2] - box[0]) * (box[3] - box[1]) < self.min_area:
                    continue
                boxes.append(box)
                embs.append(self._embed(img, mask, box))
            n = len(boxes)
            ds.pred_instances = InstanceData(
                bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
                scores=torch.full((n,), 0.95), labels=torch.zeros(n, dtype=torch.long),
                embeddings=torch.stack(embs) if n else torch.zeros(0, EMBED_DIM))
            q = ds.get('query_instances')
            if q is not None and 'bboxes' in q:
                qe = [self._embed(img, mask, b.tolist()) for b in q.bboxes]
                ds.query_embeddings = torch.stack(qe) if qe else torch.zeros(0, EMBED_DIM)
            out.append(ds)
        return out


CONFIG = '''
custom_imports = dict(imports=['blob_model'], allow_failed_imports=False)
default_scope = 'mmpsearch'
model = dict(type='BlobPersonSearcher',
             data_preprocessor=dict(type='mmdet.DetDataPreprocessor', bgr_to_rgb=False,
                                    pad_size_divisor=1))
test_pipeline = [dict(type='LoadPersonSearchImage'), dict(type='LoadPersonSearchAnnotations'),
                 dict(type='PackPersonSearchInputs')]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
'''


def write_model(folder, seed: int = 0):
    """Write the config and a checkpoint into ``folder``; return their paths."""
    import os
    torch.manual_seed(seed)
    model = BlobPersonSearcher()
    cfg_path = os.path.join(folder, 'blob_person_searcher.py')
    with open(cfg_path, 'w') as f:
        f.write(CONFIG)
    ckpt = os.path.join(folder, f'blob_{seed}.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(seed=seed)), ckpt)
    return cfg_path, ckpt
