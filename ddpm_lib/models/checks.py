"""Input checks shared by the noise predictors: a wrong shape fails here, with a message,
instead of deep inside a convolution."""

from __future__ import annotations

import torch

from ..errors import InputError, InputTypeError

Tensor = torch.Tensor


def check_model_input(x: Tensor, t: Tensor, *, channels: int, size: int) -> None:
    """Raise a clear error unless x is a float [B, channels, size, size] batch and t a [B]
    tensor of integer steps. Only types and shapes: reading values would cost a device-to-host
    sync on every forward pass, so the values of t (in [0, T)) and of the data are checked once
    where they enter the library (:func:`ddpm_lib.diffusion.check_timesteps`, the samplers,
    ``Trainer.fit``)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise InputTypeError(f"x must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}; "
                        "convert images with x.float() / 127.5 - 1")
    expected = (channels, size, size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise InputError(f"x must have shape [B, {channels}, {size}, {size}], got {list(x.shape)}"
                         + ("; add a channel dimension with x.unsqueeze(1)" if x.ndim == 3 else ""))
    if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex():
        raise InputTypeError(f"t must be a tensor of integer steps, got {getattr(t, 'dtype', type(t).__name__)}")
    if t.shape != (x.shape[0],):
        raise InputError(f"t must have shape [{x.shape[0]}] (one step per image), got {list(t.shape)}")


def check_labels(y: Tensor, n: int, num_classes: int) -> Tensor:
    """Return labels y as a long tensor of shape [n]; raise a clear error unless they are
    integers in [0, num_classes] (num_classes itself is the null label). An int means the
    same label for all n."""
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex():
        raise InputTypeError(f"labels y must be integers, got dtype {y.dtype}")
    if y.ndim == 0:
        y = y.expand(n)
    if y.shape != (n,):
        raise InputError(f"y must hold one label per sample, shape [{n}], got {list(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > num_classes):
        raise InputError(f"labels must be integers in [0, {num_classes}] ({num_classes} = null label), "
                         f"got values in [{int(y.min())}, {int(y.max())}]")
    return y.long()
