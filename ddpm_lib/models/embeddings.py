"""Sinusoidal time embedding (Vaswani et al. 2017, Sec. 3.5; used by Ho et al. 2020, Sec. 4)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..errors import InputError, InputTypeError

Tensor = torch.Tensor


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Map integer steps t [B] to [B, dim] features: for i = 0..dim/2-1,
    freq_i = max_period^(-i / (dim/2)) (log-spaced), emb = [sin(t freq), cos(t freq)]."""
    if dim % 2:
        raise InputError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class TimeEmbedding(nn.Module):
    """The network's "clock": sinusoidal features of t, then Linear-SiLU-Linear to ``dim``.
    Optionally adds a learned class embedding; label ``num_classes`` is the "null" label
    (no class), which classifier-free guidance needs."""

    def __init__(self, dim: int, sin_dim: Optional[int] = None, num_classes: Optional[int] = None):
        super().__init__()
        self.sin_dim = sin_dim or dim // 4 * 2
        self.mlp = nn.Sequential(nn.Linear(self.sin_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.num_classes = num_classes
        self.label_emb = nn.Embedding(num_classes + 1, dim) if num_classes else None

    @property
    def null_label(self) -> Optional[int]:
        """Index of the "no class" label, or None for an unconditional model."""
        return self.num_classes

    def forward(self, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        emb = self.mlp(sinusoidal_embedding(t, self.sin_dim))
        if self.label_emb is None:
            if y is not None:
                raise InputError("labels y were given to an unconditional model; "
                                 "build it with num_classes=10 to condition on digits")
            return emb
        if y is None:
            y = torch.full_like(t, self.num_classes)
        if y.shape != t.shape:
            raise InputError(f"labels y must have shape {tuple(t.shape)} (one per sample), got {tuple(y.shape)}")
        if y.is_floating_point() or y.is_complex():
            raise InputTypeError(f"labels y must be integers in [0, {self.num_classes}] "
                            f"({self.num_classes} = null label), got dtype {y.dtype}")
        return emb + self.label_emb(y.long())
