"""Classifier-free guidance (Ho & Salimans 2022): both halves of it.

Training drops the label with probability p so one network learns the conditional model
eps_theta(x_t, t, c) and the unconditional one eps_theta(x_t, t, null) (:func:`drop_labels`);
sampling mixes the two (:func:`guided_eps`, Eq. 6).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .errors import InputError
from .models.checks import check_labels

Tensor = torch.Tensor
EpsFn = Callable[[Tensor, Tensor], Tensor]


def null_label(model: torch.nn.Module) -> int:
    """The "no class" label of a class-conditional model; a clear error for any other model."""
    null = getattr(model, "null_label", None)
    if null is None:
        raise InputError("labels/guidance need a class-conditional model: build it with "
                         "UNetConfig(num_classes=10) and train it with labels")
    return null


def drop_labels(y: Tensor, null_label: int, p: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Replace each label by ``null_label`` with probability p (Ho & Salimans 2022, Algorithm 1,
    line 3): the training half of classifier-free guidance. One uniform draw per label from
    ``generator``."""
    if not 0 <= p <= 1:
        raise InputError(f"label dropout p must lie in [0, 1], got {p}")
    drop = torch.rand(y.shape, generator=generator) < p
    return torch.where(drop.to(y.device), torch.full_like(y, null_label), y)


def guided_eps(model: torch.nn.Module, y: Tensor, w: float, joint: Optional[bool] = None) -> EpsFn:
    """Classifier-free guidance (Ho & Salimans 2022, Eq. 6):
    eps_hat = (1 + w) * eps_theta(x_t, t, c) - w * eps_theta(x_t, t, null),
    for a model trained with :func:`drop_labels`. w = 0 is the plain conditional model.

    ``joint`` evaluates both predictions as one batch of 2n (the usual choice on a GPU); False
    makes two calls of n. None picks two calls on CPU, where they are faster
    (benchmarks/RESULTS.md, "Speed notes"), and one batch elsewhere. The result is the same."""
    null = null_label(model)
    if not 0 <= w < float("inf"):  # also refuses NaN, which would turn every image into NaN
        raise InputError(f"guidance weight w must be a finite number >= 0, got {w}")

    def eps(x: Tensor, t: Tensor) -> Tensor:
        if w == 0:
            return model(x, t, y)
        y_null = torch.full_like(y, null)
        one_batch = joint if joint is not None else x.device.type != "cpu"
        if one_batch:
            cond, uncond = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, y_null])).chunk(2)
        else:
            cond, uncond = model(x, t, y), model(x, t, y_null)
        return (1 + w) * cond - w * uncond      # Eq. 6
    return eps


def eps_function(model: torch.nn.Module, y: Optional[Tensor], guidance: float, n: int,
                 device: torch.device) -> EpsFn:
    """eps_theta(x_t, t) as a function of (x_t, t) for n samples: unconditional, or guided
    towards labels y (one per sample, or one int for all) with weight ``guidance``."""
    if y is None:
        if guidance and getattr(model, "null_label", None) is None:
            raise InputError(f"guidance needs labels y, and this model is unconditional (not class-conditional), so "
                             f"it cannot be guided (got guidance={guidance}): sample it with guidance=0, the default "
                             f"without labels, or train a class-conditional model (UNetConfig(num_classes=10))")
        if guidance:
            raise InputError(f"guidance needs labels y (which digit to generate; got guidance={guidance}): give y, "
                             f"or sample with guidance=0")
        return lambda x, t: model(x, t)
    return guided_eps(model, check_labels(y, n, null_label(model)).to(device), guidance)
