"""The simplest noise predictor: a residual MLP on flattened 784-d images."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..config import MLPConfig
from .checks import check_model_input
from .embeddings import TimeEmbedding

Tensor = torch.Tensor


class MLPBlock(nn.Module):
    """h + W2 SiLU(W1 LayerNorm(h) + time/label embedding): one residual layer."""

    def __init__(self, hidden: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(emb_dim, hidden)
        self.fc2 = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return h + self.fc2(self.fc1(self.norm(h)) + self.emb(emb))


class MLPNoisePredictor(nn.Module):
    """eps_theta(x_t, t) for flattened images: 784 -> hidden -> residual blocks -> 784.

    It sees pixels as an unordered vector, so it must learn spatial structure from scratch;
    notebook 02 shows what that costs."""

    def __init__(self, config: Optional[MLPConfig] = None):
        super().__init__()
        self.config = config = config or MLPConfig()
        d = config.in_channels * config.image_size ** 2
        self.time_emb = TimeEmbedding(config.time_emb_dim, num_classes=config.num_classes)
        self.inp = nn.Linear(d, config.hidden)
        self.blocks = nn.ModuleList(MLPBlock(config.hidden, config.time_emb_dim, config.dropout)
                                    for _ in range(config.num_blocks))
        self.out = nn.Sequential(nn.LayerNorm(config.hidden), nn.SiLU(), nn.Linear(config.hidden, d))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @property
    def null_label(self) -> Optional[int]:
        return self.time_emb.null_label

    def forward(self, x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        check_model_input(x, t, channels=self.config.in_channels, size=self.config.image_size)
        emb = self.time_emb(t, y)
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h).view_as(x)
