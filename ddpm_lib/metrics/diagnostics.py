"""Where in t does a trained model still err? L_simple (Eq. 14) as a function of t."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from ..diffusion import simple_loss
from ..models import eval_mode, model_device
from ..schedules import Schedule

Tensor = torch.Tensor


@torch.no_grad()
def loss_per_t(model: torch.nn.Module, schedule: Schedule, x0: Tensor, *,
               timesteps: Optional[Sequence[int]] = None, y: Optional[Tensor] = None,
               seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Mean ||eps - eps_theta(x_t, t)||^2 over the images ``x0`` at each t of ``timesteps``
    (default: 50 steps spread over [0, T)). Returns (timesteps, losses), both 1-D.

    A trained model's curve is highest at small t (little noise: eps is hard to tell from
    the image's fine detail) and falls towards t = T-1 (x_t is nearly pure noise)."""
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
            losses.append(simple_loss(model, schedule, x0, t=tt, noise=noise, y=y).item())
    return ts, torch.tensor(losses)
