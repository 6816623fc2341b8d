"""Input checks shared by the noise predictors: a wrong shape fails here, with a message,
instead of deep inside a convolution."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def check_model_input(x: Tensor, t: Tensor, *, channels: int, size: int) -> None:
    """Raise a clear error unless x is a float [B, channels, size, size] batch and t a
    [B] tensor of integer steps."""
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
