"""Input checks shared by the noise predictors: a wrong shape fails here, with a message,
instead of deep inside a convolution."""

from __future__ import annotations

from typing import Optional

import torch

Tensor = torch.Tensor


def check_model_input(x: Tensor, t: Tensor, *, channels: int, size: int,
                      T: Optional[int] = None) -> None:
    """Raise a clear error unless x is a finite float [B, channels, size, size] batch of
    plausible x_t values and t a [B] tensor of integer steps (in [0, T) when T is known)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}; "
                        "convert images with x.float() / 127.5 - 1")
    expected = (channels, size, size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"x must have shape [B, {channels}, {size}, {size}], got {list(x.shape)}"
                         + ("; add a channel dimension with x.unsqueeze(1)" if x.ndim == 3 else ""))
    if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex():
        raise TypeError(f"t must be a tensor of integer steps, got {getattr(t, 'dtype', type(t).__name__)}")
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must have shape [{x.shape[0]}] (one step per image), got {list(t.shape)}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"t must be >= 0, got min {int(t.min())}")
    if T is not None and t.numel() and int(t.max()) >= T:
        raise ValueError(f"t must lie in [0, T) = [0, {T}) for this model (trained with T = {T}), "
                         f"got max {int(t.max())}. Code uses 0-based steps: paper t = code t + 1")
    if x.numel():
        peak = x.detach().abs().max()
        if not torch.isfinite(peak):
            raise ValueError("x contains NaN or inf; check the data and the sampler's previous step")
        # x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps always has negative values; an
        # all-non-negative batch reaching beyond 2 is unscaled pixels (0..255), not x_t
        if peak > 2 and x.detach().min() >= 0:
            raise ValueError(f"x looks like unscaled pixels (all values in [0, {float(peak):.4g}]); the "
                             f"model expects x_t for images in [-1, 1]: scale with x / 127.5 - 1")
