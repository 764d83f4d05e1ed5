# Copyright (c) mmpsearch contributors. All rights reserved.
"""Per-stage layers of the swap path that act on loc embeddings (spnet.md §3.5, §3.7).

* :class:`OffsetBridge` is the object-centric (OC) query predictor: it maps an anchor (or
  proposal) embedding ``x_a`` to the offset ``x_o``. With ``mode='combiner'`` (released
  ``bridge_type: combiner``) ``x_o = (W x_a + b) - x_a`` with ``W, b`` zero-initialised, so
  ``x_o = -x_a`` at init and the bridge learns a "prototypical person query". With
  ``mode='direct'`` ``x_o = W x_a + b`` with ``W = -I`` at init (unused by the paper).
* :class:`BoxRegressionMLP` is the "4-layer MLP applied to x_o" of the supplement: four
  ``Linear(d, d) + ReLU`` layers and a ``Linear(d, 4)`` output (5 linear maps, §11.5), with
  PyTorch's default initialisation.
"""
import torch
from torch import Tensor, nn

from mmpsearch.registry import MODELS

__all__ = ['OffsetBridge', 'BoxRegressionMLP']


@MODELS.register_module()
class OffsetBridge(nn.Module):
    """Zero-initialised linear bridge giving the OC offset embedding.

    Args:
        dim (int): loc embedding dimension d. Defaults to 128.
        mode (str): ``'combiner'`` (released) or ``'direct'``.
    """

    def __init__(self, dim: int = 128, mode: str = 'combiner'):
        super().__init__()
        if mode not in ('combiner', 'direct'):
            raise ValueError(f"OffsetBridge mode must be 'combiner' or 'direct', got {mode!r}")
        self.dim = dim
        self.mode = mode
        self.linear = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero (combiner) or ``-I`` (direct) weight and zero bias (spnet.md §3.5)."""
        with torch.no_grad():
            if self.mode == 'combiner':
                self.linear.weight.zero_()
            else:
                self.linear.weight.copy_(-torch.eye(self.dim))
            self.linear.bias.zero_()

    def init_weights(self) -> None:
        # mmengine calls ``init_weights`` on children; keep the zero init of §3.5.
        self.reset_parameters()

    def forward(self, anchor_embeds: Tensor) -> Tensor:
        """OC offset embeddings.

        Args:
            anchor_embeds (Tensor): x_a, shape (..., d).

        Returns:
            Tensor: x_o, shape (..., d).
        """
        out = self.linear(anchor_embeds)
        return out - anchor_embeds if self.mode == 'combiner' else out


@MODELS.register_module()
class BoxRegressionMLP(nn.Module):
    """Box-delta MLP on offset embeddings.

    Args:
        dim (int): input dimension d. Defaults to 128.
        num_hidden (int): number of ``Linear(d, d) + ReLU`` layers. Defaults to 4.
        out_dim (int): number of deltas. Defaults to 4 (dx, dy, dw, dh).
    """

    def __init__(self, dim: int = 128, num_hidden: int = 4, out_dim: int = 4):
        super().__init__()
        layers = []
        for _ in range(num_hidden):
            layers += [nn.Linear(dim, dim), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(dim, out_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, offsets: Tensor) -> Tensor:
        """Box deltas of offset embeddings ``(..., d)`` -> ``(..., 4)``."""
        return self.mlp(offsets)
