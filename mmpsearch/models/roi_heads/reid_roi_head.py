# Copyright (c) mmpsearch contributors. All rights reserved.
"""RoI embedding heads of SPNet: re-id head and loc heads (spnet.md §3.4, §4.6).

Every RoI is pooled by RoIAlign 14x14 (sampling ratio 2, not aligned) from **P3 only** and
passed through a deep copy of the trunk's stage 4 ("conv5 head"), which outputs two
*max-pooled* vectors: the pooled RoI input (C_f-d) and the pooled stage-4 output (C5-d).

* **Re-id head** (NAE-style): ``Linear(C_f -> d_r/2) + norm`` and ``Linear(C5 -> d_r/2) +
  norm``, concatenated to ``d_r`` (128 for SPNet-S, 2048 for SPNet-L). The norm is
  ``BatchNorm1d(affine=False)`` (safe at batch size 1) as released; ``norm_cfg`` swaps it.
* **Loc heads** (``num_loc_heads > 0``, "sep"): one more conv5 copy per cascade stage and a
  bias-free ``Linear(C5 -> d)``; they give the query embeddings of QC and the proposal
  embeddings of the cascade. With ``num_loc_heads = 0`` ("share") the re-id head supplies
  them and ``d_r`` must equal the loc dimension ``d``.

The re-id loss (§4.6) takes the last stage's rows whose decoded, clipped box has IoU >= 0.7
with its target (at most ``max_per_group`` per QC pair), plus every GT box of the batch.

A normaliser that needs the identities of its rows in training (ProtoNorm, OIMNet++) gets
them from ``targets = (person_labels, known, foreground)`` of the embedded RoIs.
"""
from contextlib import nullcontext
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmdet.structures.bbox import bbox2roi, bbox_overlaps
from mmengine.model import BaseModule, normal_init
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmpsearch.registry import MODELS
from ..layers.roi_pooling import extract_rois
from ..necks.proto_norm import prototype_keys, prototype_keys_of

# (person_labels, known, foreground) of each embedded RoI, each (R,)
RowTargets = Tuple[Tensor, Tensor, Tensor]

__all__ = ['ReidRoIHead', 'RoIStageHead', 'NAEProjector', 'clip_boxes', 'clip_rows']


def clip_boxes(boxes: Tensor, img_shape) -> Tensor:
    """Clip xyxy boxes (R, 4) to an image of shape (h, w, ...)."""
    h, w = img_shape[:2]
    return torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                        boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)


def clip_rows(boxes: Tensor, img_inds: Tensor, batch_img_metas: List[dict]) -> Tensor:
    """Clip boxes (R, 4) that belong to different images (``img_inds`` (R,))."""
    if boxes.numel() == 0:
        return boxes
    hw = boxes.new_tensor([m['img_shape'][:2] for m in batch_img_metas])[img_inds]
    upper = torch.stack([hw[:, 1], hw[:, 0], hw[:, 1], hw[:, 0]], dim=1)
    return torch.minimum(boxes.clamp(min=0), upper)


class RoIStageHead(nn.Module):
    """Stage-4 copy on RoI features with the two global max-pools ("conv5 head").

    Args:
        stage (nn.Module): a :class:`ConvNeXtStage` (deep copy of trunk stage 4).
    """

    def __init__(self, stage: nn.Module):
        super().__init__()
        self.stage = stage

    def forward(self, roi_feats: Tensor):
        """(R, C_f, 14, 14) -> ((R, C_f), (R, C5)), max over H and W (§3.4, §11.7)."""
        return roi_feats.amax(dim=(2, 3)), self.stage(roi_feats).amax(dim=(2, 3))


class NAEProjector(nn.Module):
    """Two-branch projection with a normaliser per branch, concatenated.

    Args:
        in_dims (Sequence[int]): widths of the two pooled vectors (C_f, C5).
        out_dim (int): output dimension, split evenly between branches.
        norm_cfg (dict): normaliser of each branch (mmcv ``build_norm_layer``).
    """

    def __init__(self, in_dims: Sequence[int], out_dim: int, norm_cfg: dict):
        super().__init__()
        if out_dim % len(in_dims):
            raise ValueError(f'NAEProjector: out_dim {out_dim} must split evenly over '
                             f'{len(in_dims)} branches')
        part = out_dim // len(in_dims)
        self.projs = nn.ModuleList(nn.Linear(d, part) for d in in_dims)
        self.norms = nn.ModuleList(build_norm_layer(norm_cfg, part)[1] for _ in in_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """N(0, 0.01) weights, zero bias (§3.4)."""
        for proj in self.projs:
            normal_init(proj, std=0.01, bias=0.)

    def forward(self, *vectors: Tensor) -> Tensor:
        """Project and normalise each vector, then concatenate: (R, out_dim)."""
        return torch.cat([norm(proj(v)) for v, proj, norm in
                          zip(vectors, self.projs, self.norms)], dim=1)


@MODELS.register_module()
class ReidRoIHead(BaseModule):
    """Re-id head, optional loc heads and the re-id loss.

    Args:
        roi_extractor (dict): mmdet ``SingleRoIExtractor`` on one level (P3).
        feat_level (int): index of that level in the FPN outputs. Defaults to 0 (P3).
        reid_dim (int): d_r. Defaults to 128.
        loc_dim (int): d, the swap-path embedding dimension. Defaults to 128.
        num_loc_heads (int): 0 ("share") or one per cascade stage, at least 1 ("sep").
        norm_cfg (dict): re-id branch normaliser. Defaults to ``SafeBN1d(affine=False)``.
        loss_reid (dict, optional): re-id loss, e.g. ``OIMLoss(reduction='spnet')``.
        stage4_factory (callable): returns a fresh deep copy of trunk stage 4; the detector
            passes ``backbone.clone_stage4``.
        train_cfg (dict, optional): ``pos_iou_thr`` (0.7), ``max_per_group`` (QC: 16),
            ``gt_only`` (re-id loss on GT boxes only, Table 6).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 roi_extractor: dict = dict(
                     type='mmdet.SingleRoIExtractor',
                     roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=2,
                                    aligned=False),
                     out_channels=384, featmap_strides=[8]),
                 feat_level: int = 0,
                 reid_dim: int = 128,
                 loc_dim: int = 128,
                 num_loc_heads: int = 0,
                 norm_cfg: dict = dict(type='SafeBN1d', affine=False),
                 loss_reid: Optional[dict] = None,
                 stage4_factory: Optional[Callable[[], nn.Module]] = None,
                 train_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if stage4_factory is None:
            raise ValueError('ReidRoIHead needs stage4_factory (the detector passes the '
                             "backbone's clone_stage4)")
        if num_loc_heads == 0 and reid_dim != loc_dim:
            raise ValueError(f'ReidRoIHead: shared heads (num_loc_heads=0) need reid_dim == '
                             f'loc_dim, got {reid_dim} and {loc_dim}')
        self.roi_extractor = MODELS.build(roi_extractor)
        self.feat_level = feat_level
        self.reid_dim, self.loc_dim = reid_dim, loc_dim
        self.reid_stage = RoIStageHead(stage4_factory())
        in_dims = (self.reid_stage.stage.in_channels, self.reid_stage.stage.out_channels)
        self.reid_proj = NAEProjector(in_dims, reid_dim, norm_cfg)
        self.loc_stages = nn.ModuleList(RoIStageHead(stage4_factory())
                                        for _ in range(num_loc_heads))
        # §3.4: bias-free Linear(C5 -> d) with PyTorch's default init.
        self.loc_projs = nn.ModuleList(nn.Linear(in_dims[1], loc_dim, bias=False)
                                       for _ in range(num_loc_heads))
        self.loss_reid = MODELS.build(loss_reid) if loss_reid is not None else None
        self.train_cfg = dict(pos_iou_thr=0.7, max_per_group=None, gt_only=False)
        self.train_cfg.update(train_cfg or {})

    @property
    def shared(self) -> bool:
        """True when the re-id head also supplies the loc embeddings."""
        return len(self.loc_stages) == 0

    def stage_copies(self) -> List[nn.Module]:
        """Every deep copy of trunk stage 4 held by this head."""
        return [self.reid_stage.stage] + [s.stage for s in self.loc_stages]

    def sync_stage4(self, state: dict) -> None:
        """Load the trunk's stage-4 weights into every copy (after pretrained init)."""
        for stage in self.stage_copies():
            stage.load_from(state)

    # ------------------------------------------------------------------ embeddings
    def _pool(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        return extract_rois(self.roi_extractor, [feats[self.feat_level]], rois)

    def _norm_context(self, targets: Optional[RowTargets]):
        """Register ProtoNorm prototype keys of the rows (no-op for other normalisers)."""
        if targets is None or not self.training:
            return nullcontext()
        labels, known, foreground = targets
        return prototype_keys_of(self.reid_proj, prototype_keys(labels, known, foreground))

    def reid_embed(self, feats: Sequence[Tensor], rois: Tensor,
                   targets: Optional[RowTargets] = None) -> Tensor:
        """Re-id embeddings (R, d_r) of ``rois`` (R, 5) ``[img, x1, y1, x2, y2]``.

        Args:
            feats (Sequence[Tensor]): FPN maps.
            rois (Tensor): (R, 5) RoIs in input coordinates.
            targets (tuple[Tensor, Tensor, Tensor], optional): (R,) person labels, known
                and foreground flags of the RoIs, for normalisers that need them.
        """
        with self._norm_context(targets):
            return self.reid_proj(*self.reid_stage(self._pool(feats, rois)))

    def loc_embed(self, feats: Sequence[Tensor], rois: Tensor, stage: int = 1,
                  targets: Optional[RowTargets] = None) -> Tensor:
        """Loc embeddings (R, d) for cascade stage ``stage`` (1-based) or QC queries;
        ``targets`` as in :meth:`reid_embed` (used by the shared head only)."""
        if self.shared:
            return self.reid_embed(feats, rois, targets)
        if not 1 <= stage <= len(self.loc_stages):
            raise ValueError(f'ReidRoIHead has {len(self.loc_stages)} loc heads, asked for '
                             f'stage {stage}')
        _, res5 = self.loc_stages[stage - 1](self._pool(feats, rois))
        return self.loc_projs[stage - 1](res5)

    def predict(self, feats: Sequence[Tensor], batch_bboxes: List[Tensor]) -> List[Tensor]:
        """L2-normalised re-id embeddings per image for boxes in input coordinates."""
        counts = [b.shape[0] for b in batch_bboxes]
        if sum(counts) == 0:
            return [feats[0].new_zeros((0, self.reid_dim)) for _ in counts]
        rois = bbox2roi([b.float() for b in batch_bboxes])
        # Each distinct RoI is embedded once: a GEMM's result for a row depends on the
        # row's position in its block, so two identical detections embedded as separate
        # rows would get embeddings (and similarities) that differ in the last bits, and
        # a tie would no longer be a tie. (R, 5) -> (U, 5), U <= R.
        unique, inverse = torch.unique(rois, dim=0, return_inverse=True)
        if len(unique) < len(rois):
            emb = self.reid_embed(feats, unique)[inverse]
        else:
            emb = self.reid_embed(feats, rois)
        return list(nn.functional.normalize(emb.float(), dim=1).split(counts))

    # ------------------------------------------------------------------ loss
    def select_rows(self, rows: InstanceData, batch_img_metas: List[dict]) -> InstanceData:
        """Detected rows used by the re-id loss (§4.6 steps 1-2).

        Boxes are clipped and detached; rows with a target and IoU >= ``pos_iou_thr`` to
        it are kept, at most ``max_per_group`` per group (QC pair) chosen at random.
        """
        boxes = clip_rows(rows.bboxes.detach().float(), rows.img_inds, batch_img_metas)
        ious = bbox_overlaps(boxes, rows.target_bboxes.float(), is_aligned=True)
        keep = rows.valid & (ious >= self.train_cfg['pos_iou_thr'])
        cap = self.train_cfg['max_per_group']
        if cap is not None:
            for g in rows.groups[keep].unique().tolist():
                idx = (keep & (rows.groups == g)).nonzero().squeeze(1)
                if idx.numel() > cap:
                    keep[idx[torch.randperm(idx.numel(), device=idx.device)[cap:]]] = False
        out = rows[keep]
        out.bboxes = boxes[keep]
        out.ious = ious[keep]
        return out

    def loss(self, feats: Sequence[Tensor], rows: Optional[InstanceData],
             batch_gt_instances: List[InstanceData], batch_img_metas: List[dict],
             teacher_embed: Optional[Callable[[Tensor], Tensor]] = None) -> dict:
        """Re-id loss on ``[selected detected rows; all GT boxes]`` (§4.6).

        Args:
            feats (Sequence[Tensor]): FPN maps.
            rows (InstanceData, optional): last-stage rows (see :class:`SwapPathHead`).
            batch_gt_instances (list[InstanceData]): ``bboxes``, ``person_labels``,
                ``known``.
            batch_img_metas (list[dict]): need ``img_shape``.
            teacher_embed (callable, optional): ``rois (R, 5) -> (R, d_r)`` embeddings of
                the EMA teacher (§3.10), for a loss with ``uses_teacher`` (the prototype
                queue of pre-training).

        Returns:
            dict: ``loss_reid`` (empty without ``loss_reid``).
        """
        if self.loss_reid is None:
            return {}
        gt_rois = bbox2roi([gt.bboxes.float() for gt in batch_gt_instances])
        labels = [gt.person_labels.long() for gt in batch_gt_instances]
        known = [gt.known.bool() for gt in batch_gt_instances]
        ious = [gt.bboxes.new_ones(len(gt)) for gt in batch_gt_instances]
        rois = [gt_rois]
        if rows is not None and not self.train_cfg['gt_only']:
            det = self.select_rows(rows, batch_img_metas)
            rois.insert(0, torch.cat([det.img_inds[:, None].float(), det.bboxes], dim=1))
            labels.insert(0, det.target_labels)
            known.insert(0, det.target_known)
            ious.insert(0, det.ious)
        rois, labels = torch.cat(rois), torch.cat(labels)
        if rois.shape[0] == 0:
            zero = feats[0].sum() * 0.
            if getattr(self.loss_reid, 'uses_teacher', False):
                # the prototype queue gathers across ranks: take part with no rows
                self.loss_reid(feats[0].new_zeros((0, self.reid_dim)), labels,
                               labels.new_zeros(0, dtype=torch.bool))
            return dict(loss_reid=zero)
        # A labelled identity outside the training label map cannot address the LUT.
        known = torch.cat(known) & (labels >= 0)
        emb = self.reid_embed(feats, rois, (labels, known, torch.ones_like(known)))
        if getattr(self.loss_reid, 'uses_teacher', False):
            teacher = teacher_embed(rois) if teacher_embed is not None else None
            return dict(loss_reid=self.loss_reid(emb, labels, known, ious=torch.cat(ious),
                                                 teacher_embeddings=teacher))
        return dict(loss_reid=self.loss_reid(emb, labels, known, ious=torch.cat(ious)))
