"""Seeded inputs shared by the exercises: a schedule, batches of images whose steps include the
first and the last, and the words that say where in a batch an element sits."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, List, NamedTuple, Sequence, Tuple, Union

import torch

from ..schedules import Schedule, make_schedule
from .checker import describe_t

Tensor = torch.Tensor

T = 1000
EDGE_STEPS = (0, 1, 250, 500, 998, 999)  # the first and last steps and a range between


@lru_cache(maxsize=None)
def linear_schedule() -> Schedule:
    """Ho et al.'s schedule: T = 1000, beta from 1e-4 to 0.02."""
    return make_schedule(T=T, schedule="linear")


class Batch(NamedTuple):
    """Clean images x0 in [-1, 1], one step per image, noise eps, and the matching x_t (Eq. 4)."""

    x0: Tensor
    t: Tensor
    eps: Tensor
    xt: Tensor


def image_batches(seed: int = 0) -> List[Batch]:
    """Two batches: 6 grey 5x5 images at :data:`EDGE_STEPS`, and 3 RGB 4x4 images at random steps.
    Batch sizes differ from the image sizes, so a [B] coefficient that is not reshaped fails to broadcast."""
    gen = torch.Generator().manual_seed(seed)
    schedule = linear_schedule()
    batches = []
    for shape, t in (((6, 1, 5, 5), torch.tensor(EDGE_STEPS)),
                     ((3, 3, 4, 4), torch.randint(2, T - 2, (3,), generator=gen))):
        x0 = torch.rand(shape, generator=gen) * 2 - 1
        eps = torch.randn(shape, generator=gen)
        a = schedule.sqrt_alpha_bars[t].view(-1, 1, 1, 1)
        s = schedule.sqrt_one_minus_alpha_bars[t].view(-1, 1, 1, 1)
        batches.append(Batch(x0, t, eps, a * x0 + s * eps))
    return batches


def column(values: Tensor, t: Union[Tensor, int]) -> Tensor:
    """values[t] shaped [B, 1, 1, 1] to scale a batch of [B, C, H, W] images (t a tensor [B]), or
    the one value values[t] (t an int)."""
    return values[t].view(-1, 1, 1, 1) if isinstance(t, Tensor) else values[t]


def per_image(t: Sequence[int]) -> Callable[[Tuple[int, ...]], str]:
    """Describe an element of a [B, C, H, W] output whose image i was at step t[i]."""
    steps = [int(s) for s in t]

    def describe(index: Tuple[int, ...]) -> str:
        if not index:
            return "on images at t = " + ", ".join(map(str, steps))
        return f"{describe_t(steps[index[0]], T)}, image {index[0]}, pixel {list(index[1:])}"
    return describe


def fixed(text: str) -> Callable[[Tuple[int, ...]], str]:
    """Describe every element of a case by the same words."""
    return lambda index: text
