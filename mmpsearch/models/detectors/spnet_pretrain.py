# Copyright (c) mmpsearch contributors. All rights reserved.
"""SPNet person-search pre-training on COCOPersons (spnet.md §3.10, §4.6-4.9; supplement
§8, §9.1).

:class:`SPNetPretrain` is :class:`SPNet` (QC or OC path, chosen by ``train_cfg.path``) with
the pre-training-only parts:

* an **EMA teacher** (:class:`TeacherEMA`, m = 0.9999): copies of the backbone (trunk +
  FPN) and of the re-id head (stage-4 copy + NAE projector), updated after every optimiser
  step by :class:`~mmpsearch.engine.hooks.TeacherEMAHook`; it embeds the same RoIs as the
  student for the prototype-queue loss (``roi_head.loss_reid=PrototypeQueueLoss``);
* optional **LwF** (§4.7): ImageNet logits of the trunk (``avgpool(C5)`` → the ConvNeXt
  classifier, loaded from the trunk's ImageNet checkpoint) distilled from a frozen copy of
  the initial trunk and classifier (``loss_lwf``);
* **Frozen-BB** (``freeze_trunk``, Table 7): the trunk runs under ``no_grad`` and its
  parameters do not require gradients (so the optimiser constructor leaves them out);
  it stays in train mode, so stochastic depth remains active;
* **re-id only** (``train_cfg.reid_only``, Table 6): the detection losses are dropped.

Teachers are part of the state dict (``teacher.*``, ``lwf_teacher.*``), so checkpoints
carry them and a resumed run continues with exactly the saved teacher and queue.
"""
import copy
from contextlib import nullcontext
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmpsearch.registry import MODELS
from .spnet import SPNet

__all__ = ['SPNetPretrain', 'SPNetTeacherParts']

# Stage-0 and cascade detection losses, dropped by ``reid_only``.
_DETECTION_LOSS_PREFIXES = ('loss_anchor_cls', 'loss_bbox', 'loss_cls')


class SPNetTeacherParts(nn.Module):
    """The modules that the EMA teacher copies (spnet.md §3.10).

    Args:
        backbone (nn.Module): trunk.
        neck (nn.Module): FPN.
        reid_stage (nn.Module): the re-id head's stage-4 copy (:class:`RoIStageHead`).
        reid_proj (nn.Module): the NAE projector.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, reid_stage: nn.Module,
                 reid_proj: nn.Module):
        super().__init__()
        self.backbone, self.neck = backbone, neck
        self.reid_stage, self.reid_proj = reid_stage, reid_proj

    def features(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """FPN maps of (N, 3, H, W) inputs."""
        return tuple(self.neck(self.backbone(batch_inputs)))

    def embed(self, roi_feats: Tensor) -> Tensor:
        """Re-id embeddings (R, d_r) of pooled RoI features (R, C_f, 14, 14)."""
        return self.reid_proj(*self.reid_stage(roi_feats))


@MODELS.register_module()
class SPNetPretrain(SPNet):
    """SPNet with the EMA teacher, LwF, Frozen-BB and re-id-only options of pre-training.

    Args:
        teacher (dict, optional): :class:`TeacherEMA` config without ``model``
            (``momentum`` = 1 − m = 1e-4). None: no teacher (the prototype queue then
            uses the student's detached embeddings).
        lwf (dict, optional): ``classifier`` (:class:`ConvNeXtClassifier` config;
            ``in_channels`` defaults to the C5 width) and ``loss`` (:class:`LwFLoss`).
        freeze_trunk (bool): Frozen-BB. Defaults to False.
        **kwargs: :class:`SPNet` arguments; ``train_cfg.reid_only`` drops the detection
            losses.
    """

    def __init__(self, *args, teacher: Optional[dict] = dict(type='TeacherEMA',
                                                             momentum=1e-4),
                 lwf: Optional[dict] = None, freeze_trunk: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.reid_only = bool(self.train_cfg.get('reid_only', False))
        self.freeze_trunk = freeze_trunk
        if freeze_trunk:
            self.backbone.requires_grad_(False)
        self.teacher = None
        if teacher is not None:
            self.teacher = MODELS.build(dict(teacher, model=self._teacher_source()))
        self.lwf_classifier = self.lwf_teacher = self.lwf_loss = None
        if lwf is not None:
            cls_cfg = dict(type='ConvNeXtClassifier',
                           in_channels=self.backbone.channels[-1])
            cls_cfg.update(lwf.get('classifier', {}))
            self.lwf_classifier = MODELS.build(cls_cfg)
            self.lwf_loss = MODELS.build(lwf.get('loss', dict(type='LwFLoss')))
            self.lwf_teacher = nn.ModuleDict(dict(
                trunk=copy.deepcopy(self.backbone),
                classifier=copy.deepcopy(self.lwf_classifier))).requires_grad_(False)
        self._steps_without_update = 0
        self._trunk_c5: Optional[Tensor] = None

    def _teacher_source(self) -> SPNetTeacherParts:
        """The student modules the teacher follows, under the teacher's names."""
        return SPNetTeacherParts(self.backbone, self.neck, self.roi_head.reid_stage,
                                 self.roi_head.reid_proj)

    def init_weights(self) -> None:
        """Init the student (pretrained trunk, stage-4 copies), then start both teachers
        as copies of it: the released code deep-copies after loading ImageNet weights."""
        super().init_weights()
        if self.teacher is not None:
            self.teacher.sync(self._teacher_source())
        if self.lwf_teacher is not None:
            self.lwf_teacher.trunk.load_state_dict(self.backbone.state_dict())
            self.lwf_teacher.classifier.load_state_dict(self.lwf_classifier.state_dict())

    @torch.no_grad()
    def update_teacher(self) -> None:
        """One EMA step of the teacher towards the student (after an optimiser step)."""
        if self.teacher is not None:
            self.teacher.update_parameters(self._teacher_source())
        self._steps_without_update = 0

    # ------------------------------------------------------------------ features
    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """FPN maps; the trunk runs under ``no_grad`` when frozen, and its C5 is kept
        for the LwF logits of this training step."""
        with torch.no_grad() if self.freeze_trunk else nullcontext():
            trunk = self.backbone(batch_inputs)
        if self.training and self.lwf_loss is not None:
            self._trunk_c5 = trunk[-1]
        return tuple(self.neck(trunk))

    # ------------------------------------------------------------------ training
    def loss(self, batch_inputs: Tensor,
             batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """SPNet's QC/OC losses with the teacher's prototypes, plus ``loss_lwf``."""
        if self.teacher is not None and self._steps_without_update >= 1:
            raise RuntimeError(
                'SPNetPretrain: the EMA teacher was not updated after the last training '
                "step; add dict(type='TeacherEMAHook') to custom_hooks (or call "
                'update_teacher() after each optimiser step)')
        self._steps_without_update += 1
        try:
            losses = super().loss(batch_inputs, batch_data_samples)
            if self.lwf_loss is not None:
                with torch.no_grad():
                    target = self.lwf_teacher.classifier(
                        self.lwf_teacher.trunk(batch_inputs)[-1])
                losses['loss_lwf'] = self.lwf_loss(self.lwf_classifier(self._trunk_c5),
                                                   target)
        finally:
            self._trunk_c5 = None
        if self.reid_only:
            losses = {k: v for k, v in losses.items()
                      if not k.startswith(_DETECTION_LOSS_PREFIXES)}
        return losses

    def reid_loss(self, batch_inputs: Tensor, feats: Tuple[Tensor, ...],
                  rows: Optional[InstanceData], gts: List[InstanceData],
                  metas: List[dict]) -> Dict[str, Tensor]:
        """Re-id loss with the teacher's embeddings of the same RoIs (§4.6)."""
        teacher_embed = None
        if self.teacher is not None:
            def teacher_embed(rois: Tensor) -> Tensor:
                with torch.no_grad():
                    parts = self.teacher.module
                    t_feats = parts.features(batch_inputs)
                    level = t_feats[self.roi_head.feat_level]
                    return parts.embed(self.roi_head.roi_extractor([level], rois))
        return self.roi_head.loss(feats, rows, gts, metas, teacher_embed=teacher_embed)
