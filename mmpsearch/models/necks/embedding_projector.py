# Copyright (c) mmpsearch contributors. All rights reserved.
"""Re-id embedding projector: Linear -> normaliser (none / BatchNorm / ProtoNorm) -> L2.

OIMNet's "projection module" (spec oimnetpp.md §1.7; paper Fig. 2): ``emb = L2(norm(W g))``
with ``W`` a bias-free 2048 -> 256 linear layer initialised N(0, 0.01). The normaliser is the
only difference between the Table 2 rows: none (vanilla OIMNet), BatchNorm1d (+BN) or
ProtoNorm1d (+PN, OIMNet++). Other detectors (e.g. SPNet) can reuse it with another width.
"""
from typing import Optional

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpsearch.registry import MODELS
from .proto_norm import ProtoNorm1d

_NORMS = ('none', 'BN', 'PN')


@MODELS.register_module()
class EmbeddingProjector(BaseModule):
    """Linear projection, optional normalisation, then L2 normalisation.

    Args:
        in_channels (int): Input width (2048 for the ResNet-50 conv5 head).
        out_channels (int): Embedding width D (256 in OIMNet++).
        norm (str): ``'none'``, ``'BN'`` (``BatchNorm1d``) or ``'PN'`` (:class:`ProtoNorm1d`).
            Defaults to ``'PN'``.
        norm_affine (bool): Learnable scale/shift of the normaliser. Defaults to False: the
            following L2 normalisation cancels the scale (paper footnote 1). Whether the
            paper's BN rows used an affine BN is UNCONFIRMED (spec §1.7).
        id_mode (str): ProtoNorm prototype rule, ``'released'`` or ``'paper'``
            (see :func:`~mmpsearch.models.necks.prototype_keys`). Only stored here; the caller
            builds the keys with it.
        bias (bool): Bias of the linear layer. Defaults to False (as released).
        init_std (float): Std of the normal init of the linear weight. Defaults to 0.01.
        l2_normalize (bool): Apply the final L2 normalisation. Defaults to True.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: int = 2048,
                 out_channels: int = 256,
                 norm: str = 'PN',
                 norm_affine: bool = False,
                 id_mode: str = 'released',
                 bias: bool = False,
                 init_std: float = 0.01,
                 l2_normalize: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if norm not in _NORMS:
            raise ValueError(f'EmbeddingProjector: norm must be one of {_NORMS}, got {norm!r}')
        self.norm_type = norm
        self.id_mode = id_mode
        self.l2_normalize = l2_normalize
        self.fc = nn.Linear(in_channels, out_channels, bias=bias)
        nn.init.normal_(self.fc.weight, std=init_std)
        if bias:
            nn.init.zeros_(self.fc.bias)
        if norm == 'BN':
            self.norm = nn.BatchNorm1d(out_channels, affine=norm_affine)
        elif norm == 'PN':
            self.norm = ProtoNorm1d(out_channels, affine=norm_affine)
        else:
            self.norm = nn.Identity()

    @property
    def uses_prototypes(self) -> bool:
        """Whether the caller must pass prototype keys in training."""
        return self.norm_type == 'PN'

    def forward(self, x: Tensor, keys: Optional[Tensor] = None) -> Tensor:
        """Project features to embeddings.

        Args:
            x (Tensor): (R, in_channels) pooled RoI features.
            keys (Tensor, optional): (R,) ProtoNorm prototype keys (training with ``'PN'``).

        Returns:
            Tensor: (R, out_channels) embeddings, unit L2 norm if ``l2_normalize``.
        """
        z = self.fc(x.flatten(1))
        if self.norm_type == 'PN':
            z = self.norm(z, keys)
        elif self.norm_type == 'BN' and self.training and z.shape[0] == 1:
            # BatchNorm cannot estimate a variance from one row; use running statistics.
            z = F.batch_norm(z, self.norm.running_mean, self.norm.running_var,
                             self.norm.weight, self.norm.bias, False, 0.0, self.norm.eps)
        else:
            z = self.norm(z)
        return F.normalize(z, dim=1) if self.l2_normalize else z
