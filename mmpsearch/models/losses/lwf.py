# Copyright (c) mmpsearch contributors. All rights reserved.
"""Learning-without-Forgetting distillation of the ImageNet logits (spnet.md §4.7).

During pre-training the trunk keeps predicting ImageNet classes: the student logits come
from the current trunk and classifier, the teacher logits from a frozen copy of the initial
(ImageNet) trunk and classifier, at temperature T = 2, weight 1. Two formulas:

* ``'released'`` (the released code, reproduced exactly):
  ``BCEWithLogits(input=log_softmax(s / T), target=softmax(t / T))`` averaged over the
  B x 1000 entries. It treats log-probabilities as logits, so it is *not* a KL divergence.
* ``'kl'`` (the standard distillation loss of Hinton et al., "equivalent to LwF" in the
  supplement): ``T^2 * KL(softmax(t / T) || softmax(s / T))`` averaged over the batch.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from mmpsearch.registry import MODELS

__all__ = ['LwFLoss']

_FORMULAS = ('released', 'kl')


@MODELS.register_module()
class LwFLoss(nn.Module):
    """Distillation of teacher logits into student logits.

    Args:
        temperature (float): T. Defaults to 2.
        formula (str): ``'released'`` or ``'kl'`` (see the module docstring).
        loss_weight (float): multiplier. Defaults to 1.
    """

    def __init__(self, temperature: float = 2.0, formula: str = 'released',
                 loss_weight: float = 1.0):
        super().__init__()
        if formula not in _FORMULAS:
            raise ValueError(f'LwFLoss: formula must be one of {_FORMULAS}, got {formula!r}')
        if temperature <= 0:
            raise ValueError(f'LwFLoss: temperature must be > 0, got {temperature}')
        self.temperature, self.formula = float(temperature), formula
        self.loss_weight = float(loss_weight)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """Loss of (B, C) student logits against (B, C) teacher logits (no gradient)."""
        t = self.temperature
        s = student_logits.float() / t
        target = F.softmax(teacher_logits.detach().float() / t, dim=1)
        if self.formula == 'released':
            loss = F.binary_cross_entropy_with_logits(F.log_softmax(s, dim=1), target)
        else:
            loss = F.kl_div(F.log_softmax(s, dim=1), target, reduction='batchmean') * t * t
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return f'temperature={self.temperature}, formula={self.formula!r}'
