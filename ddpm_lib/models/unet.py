"""The U-Net noise predictor of Ho et al. 2020 (Sec. 4 and Appendix B), sized for 1x28x28.

28x28 -> 14x14 -> 7x7 and back up, with ResNet blocks (GroupNorm + SiLU, the time embedding
added in every block), self-attention at 7x7 and skip connections from every encoder stage
to the decoder. No padding to 32x32: stride-2 convolutions halve 28 -> 14 -> 7 exactly.
"""

from __future__ import annotations

import warnings

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..config import UNetConfig
from .checks import check_model_input
from .embeddings import TimeEmbedding

Tensor = torch.Tensor


class ResBlock(nn.Module):
    """h = Conv(SiLU(GN(x))) + Linear(SiLU(emb));  out = x' + Conv(Dropout(SiLU(GN(h))))
    where x' is x, or a 1x1 projection of x when the width changes."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]  # time injection: one shift per channel
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, with a residual:
    out = x + Proj(softmax(Q K^T / sqrt(d)) V), Q, K, V = 1x1 convolutions of GN(x)."""

    def __init__(self, channels: int, num_heads: int, groups: int):
        super().__init__()
        if channels % num_heads:
            raise InputError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w) \
            .permute(1, 0, 2, 4, 3).unbind(0)  # each [B, heads, HW, d]
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.permute(0, 1, 3, 2).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 convolution (28 -> 14 -> 7)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution (7 -> 14 -> 28): nearest-neighbour x2, then a 3x3 convolution
    that also narrows to the next level's width (half the cost of keeping the width)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.Module):
    """A ResBlock optionally followed by self-attention (one entry of a U-Net level)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, cfg: UNetConfig, attention: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, cfg.groups, cfg.dropout)
        self.attn = SelfAttention(c_out, cfg.num_heads, cfg.groups) if attention else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class UNet(nn.Module):
    """eps_theta(x_t, t[, y]) for [B, 1, 28, 28] images; output has the input's shape.

    ``UNetConfig(num_classes=10)`` adds a label embedding to the time embedding (label 10 is
    "no label"), the hook classifier-free guidance uses."""

    def __init__(self, config: Optional[UNetConfig] = None):
        super().__init__()
        self.config = cfg = config or UNetConfig()
        size = cfg.image_size
        halvings = len(cfg.channel_mults) - 1
        if size % 2 ** halvings:
            works = [s for s in range(2 ** halvings, 2 ** halvings * 9, 2 ** halvings)]
            raise InputError(f"image_size {size} cannot be halved {halvings} times (one per level after the "
                             f"first of channel_mults {tuple(cfg.channel_mults)}); sizes that work: "
                             f"{', '.join(map(str, works))}, ... or fewer levels")
        levels = [size // 2 ** i for i in range(halvings + 1)]
        if cfg.attn_resolutions and not set(cfg.attn_resolutions) & set(levels):
            warnings.warn(f"attn_resolutions {tuple(cfg.attn_resolutions)} matches no level of this U-Net "
                          f"(sizes {levels}): only the bottleneck has self-attention; pick sizes from {levels}, "
                          f"or () to say so", stacklevel=2)
        emb_dim = cfg.base_channels * cfg.time_emb_mult
        self.time_emb = TimeEmbedding(emb_dim, sin_dim=cfg.base_channels, num_classes=cfg.num_classes)
        self.inp = nn.Conv2d(cfg.in_channels, cfg.base_channels, 3, padding=1)

        # encoder: remember the width of every skip connection
        self.down = nn.ModuleList()
        widths: List[int] = [cfg.base_channels]
        ch = cfg.base_channels
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                self.down.append(Stage(ch, cfg.base_channels * mult, emb_dim, cfg, size in cfg.attn_resolutions))
                ch = cfg.base_channels * mult
                widths.append(ch)
            if level < len(cfg.channel_mults) - 1:
                self.down.append(Downsample(ch))
                size //= 2
                widths.append(ch)

        # bottleneck at the lowest resolution (7x7): ResBlock, attention, ResBlock
        self.mid = nn.ModuleList([Stage(ch, ch, emb_dim, cfg, True), Stage(ch, ch, emb_dim, cfg, False)])

        # decoder: each stage concatenates one skip connection
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(Stage(ch + widths.pop(), cfg.base_channels * mult, emb_dim, cfg,
                                     size in cfg.attn_resolutions))
                ch = cfg.base_channels * mult
            if level > 0:
                self.up.append(Upsample(ch, cfg.base_channels * cfg.channel_mults[level - 1]))
                ch = cfg.base_channels * cfg.channel_mults[level - 1]
                size *= 2

        self.out = nn.Sequential(nn.GroupNorm(min(cfg.groups, ch), ch), nn.SiLU(),
                                 nn.Conv2d(ch, cfg.in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @property
    def null_label(self) -> Optional[int]:
        """The "no class" label of a conditional model (None if unconditional)."""
        return self.time_emb.null_label

    def forward(self, x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        cfg = self.config
        check_model_input(x, t, channels=cfg.in_channels, size=cfg.image_size)
        emb = self.time_emb(t, y)
        h = self.inp(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, Stage) else block(h)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for block in self.up:
            if isinstance(block, Stage):
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = block(h)
        return self.out(h)
