"""Walking between two samples: spherical interpolation of the starting noise, decoded with
deterministic DDIM (eta = 0), so every frame is a fixed function of its x_T (Song et al. 2021,
Sec. 5.3).

Why spherical: x_T ~ N(0, I) in 784 dimensions lies near the sphere of radius sqrt(784) = 28.
A straight line between two such points cuts inside it (the midpoint's norm is about
28 / sqrt(2)), where the model never saw noise; the great-circle path (slerp) stays on it.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .errors import InputError
from .models import image_shape_of
from .samplers import ddim_sample
from .schedules import Schedule

Tensor = torch.Tensor


def noise_for_seed(seed: int, n: int = 1, image_shape: Sequence[int] = (1, 28, 28)) -> Tensor:
    """The x_T that ``ddim_sample(..., n, seed=seed)`` starts from (CPU generator)."""
    return torch.randn((n, *image_shape), generator=torch.Generator().manual_seed(seed))


def slerp(z0: Tensor, z1: Tensor, alpha: float) -> Tensor:
    """Spherical interpolation (Shoemake 1985) between same-shaped tensors, per batch item:
    sin((1 - a) theta) / sin(theta) z0 + sin(a theta) / sin(theta) z1, theta = angle(z0, z1).
    ``alpha`` = 0 gives z0 and 1 gives z1 exactly; nearly parallel inputs fall back to lerp."""
    if z0.shape != z1.shape:
        raise InputError(f"z0 and z1 must have the same shape, got {list(z0.shape)} and {list(z1.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must lie in [0, 1], got {alpha}")
    if alpha == 0.0:
        return z0.clone()
    if alpha == 1.0:
        return z1.clone()
    a, b = z0.flatten(1).double(), z1.flatten(1).double()
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    theta = cos.clamp(-1, 1).acos().unsqueeze(1)
    sin = theta.sin()
    lerp = (1 - alpha) * a + alpha * b
    arc = (torch.sin((1 - alpha) * theta) * a + torch.sin(alpha * theta) * b) / sin.clamp_min(1e-12)
    out = torch.where(sin > 1e-6, arc, lerp)
    return out.reshape(z0.shape).to(z0.dtype)


@torch.no_grad()
def interpolate(model: torch.nn.Module, schedule: Schedule, seed_a: int, seed_b: int, *,
                frames: int = 8, steps: int = 50, spherical: bool = True,
                y: Optional[Tensor] = None, guidance: float = 0.0, progress: bool = False) -> Tensor:
    """Decode ``frames`` noises on the path from seed_a's x_T to seed_b's x_T with DDIM
    (eta = 0). The first and last frames are the samples ``ddim_sample(model, schedule, 1,
    steps=steps, seed=seed_a / seed_b)`` would give. ``spherical=False`` uses a straight line
    (for comparison). Returns [frames, C, H, W], the model's image shape."""
    if frames < 2:
        raise InputError(f"frames must be >= 2 (the two ends), got {frames}")
    shape = image_shape_of(model)
    z0, z1 = noise_for_seed(seed_a, image_shape=shape), noise_for_seed(seed_b, image_shape=shape)
    alphas = [i / (frames - 1) for i in range(frames)]
    x_T = torch.cat([slerp(z0, z1, a) if spherical else (1 - a) * z0 + a * z1 for a in alphas])
    return ddim_sample(model, schedule, frames, steps=steps, x_T=x_T, eta=0.0, y=y, guidance=guidance,
                       progress=progress)
