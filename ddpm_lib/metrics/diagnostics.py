"""Where in t does a trained model still err? L_simple (Eq. 14) as a function of t."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from ..errors import InputError
from ..diffusion import eps_and_x0, q_sample
from ..models import eval_mode, model_device
from ..schedules import Schedule

Tensor = torch.Tensor


SPACES = ("eps", "x0")


@torch.no_grad()
def loss_per_t(model: torch.nn.Module, schedule: Schedule, x0: Tensor, *,
               timesteps: Optional[Sequence[int]] = None, y: Optional[Tensor] = None,
               seed: int = 0, space: str = "eps") -> Tuple[Tensor, Tensor]:
    """Mean squared error of the model's prediction over the images ``x0`` at each t of
    ``timesteps`` (default: 50 steps spread over [0, T)), measured as noise (``space="eps"``:
    ||eps - eps_theta(x_t, t)||^2, the loss of Eq. 14) or as image (``space="x0"``:
    ||x_0 - x0_hat||^2, where the sample's error is made). Whatever the network predicts
    (eps, x0, v), its output is converted first (:func:`ddpm_lib.diffusion.eps_and_x0`).
    Returns (timesteps, errors), both 1-D.

    An eps-predictor's eps error is highest at small t (little noise: eps is hard to tell from
    the image's fine detail); its x0 error is highest at large t, where Eq. 15 multiplies an
    eps error by sqrt((1 - alpha_bar_t) / alpha_bar_t)."""
    if space not in SPACES:
        raise InputError(f"space must be one of {SPACES}, got {space!r}")
    device = model_device(model)
    schedule = schedule.to(device)
    ts = torch.as_tensor(list(timesteps) if timesteps is not None else
                         torch.linspace(0, schedule.T - 1, 50).round().long().unique().tolist())
    gen = torch.Generator().manual_seed(seed)
    losses = []
    x0 = x0.to(device)
    with eval_mode(model):
        for t in ts.tolist():
            noise = torch.randn(x0.shape, generator=gen).to(device)
            tt = torch.full((x0.shape[0],), t, dtype=torch.long, device=device)
            xt = q_sample(schedule, x0, tt, noise)
            eps, x0_hat = eps_and_x0(schedule, xt, tt, model(xt, tt) if y is None else model(xt, tt, y))
            error = (eps - noise) if space == "eps" else (x0_hat - x0)
            losses.append(error.pow(2).mean().item())
    return ts, torch.tensor(losses)
