"""Notebook 03's exercises: the sinusoidal time embedding and a ResNet block's time injection."""

from __future__ import annotations

import math
from typing import List

import torch
import torch.nn.functional as F

from ..models.embeddings import sinusoidal_embedding
from ..models.unet import ResBlock
from .cases import T
from .checker import Case, Exercise, Mistake, describe_t

NOTEBOOK = "03_unet"
Tensor = torch.Tensor


# --- sinusoidal_embedding --------------------------------------------------------------------

def _embedding_cases() -> List[Case]:
    cases = []
    for steps, dim in (([0, 1, 7, 250, 999], 16), ([3, 500], 32)):
        t = torch.tensor(steps)

        def describe(index, steps=steps, dim=dim):
            if not index:
                return f"t = {steps}, dim = {dim}"
            half, j = dim // 2, index[1]
            kind = f"sin, i = {j}" if j < half else f"cos, i = {j - half}"
            return f"{describe_t(steps[index[0]], T)}, dim = {dim}, feature {j} ({kind})"
        cases.append(Case((t, dim), sinusoidal_embedding(t, dim), describe))
    return cases


def _embed(t: Tensor, dim: int, *, denominator=None, order="sin_cos") -> Tensor:
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32)
    freqs = torch.exp(-math.log(10_000.0) * i / (denominator if denominator is not None else half))
    args = t.float()[:, None] * freqs[None]
    if order == "interleaved":
        return torch.stack([args.sin(), args.cos()], dim=-1).flatten(1)
    parts = [args.sin(), args.cos()] if order == "sin_cos" else [args.cos(), args.sin()]
    return torch.cat(parts, dim=-1)


SINUSOIDAL_EMBEDDING = Exercise(
    name="sinusoidal_embedding", params=("t", "dim"), notebook=NOTEBOOK, cases=_embedding_cases,
    coverage="t from 0 to 999 at dim = 16 and 32",
    mistakes=(
        Mistake("the order: all sines first, then all cosines (torch.cat([sin, cos], dim=-1))",
                lambda t, dim: _embed(t, dim, order="cos_sin")),
        Mistake("interleaved sin/cos pairs; here all sines come first, then all cosines",
                lambda t, dim: _embed(t, dim, order="interleaved")),
        Mistake("the frequency exponent is -i / (dim / 2), so the frequencies span 1 down to nearly 1/10000 over "
                "the half; you divided by dim", lambda t, dim: _embed(t, dim, denominator=dim)),
        Mistake("the exponent divides by dim / 2 (i / half), not by dim / 2 - 1 (another common convention)",
                lambda t, dim: _embed(t, dim, denominator=dim // 2 - 1)),
    ),
    broadcast_hint="a shape that does not broadcast: make t a column [B, 1] and the frequencies a row [1, dim/2]",
    rtol=1e-3, atol=1e-3,  # sin of arguments up to 999 in float32
)


# --- add_time --------------------------------------------------------------------------------

def _time_cases() -> List[Case]:
    cases = []
    for seed, (batch, channels, size, emb_dim) in enumerate(((3, 6, 5, 8), (2, 4, 7, 16))):
        torch.manual_seed(100 + seed)  # the block's weights (verdict restores the random stream)
        block = ResBlock(channels, channels, emb_dim, groups=2, dropout=0.0)
        gen = torch.Generator().manual_seed(seed)
        h = torch.randn(batch, channels, size, size, generator=gen)
        emb = torch.randn(batch, emb_dim, generator=gen)
        with torch.no_grad():
            expected = h + block.emb(emb)[:, :, None, None]  # ResBlock.forward's time injection
        desc = f"h [{batch}, {channels}, {size}, {size}], emb [{batch}, {emb_dim}]"
        cases.append(Case((h, emb, block.emb[1]), expected,
                          lambda index, desc=desc: desc + (f", element {list(index)}" if index else "")))
    return cases


ADD_TIME = Exercise(
    name="add_time", params=("h", "emb", "proj"), notebook=NOTEBOOK, cases=_time_cases,
    coverage="two blocks of different widths and sizes",
    mistakes=(
        Mistake("the SiLU: the block applies proj to silu(emb), the embedding after its nonlinearity",
                lambda h, emb, proj: h + proj(emb)[:, :, None, None]),
        Mistake("the time shift is added to h, not multiplied with it",
                lambda h, emb, proj: h * proj(F.silu(emb))[:, :, None, None]),
        Mistake("return h plus the shift, not the shift alone",
                lambda h, emb, proj: proj(F.silu(emb))[:, :, None, None].expand_as(h)),
        Mistake("the nonlinearity is SiLU (x * sigmoid(x)), not ReLU",
                lambda h, emb, proj: h + proj(F.relu(emb))[:, :, None, None]),
    ),
    broadcast_hint=("a shape that does not broadcast: proj(...) is [B, C]; index it [:, :, None, None] so each "
                    "channel of the [B, C, H, W] feature map gets one shift"),
)

EXERCISES = (SINUSOIDAL_EMBEDDING, ADD_TIME)
