"""Notebook 05's exercises: a deterministic DDIM step, trailing timesteps, and slerp."""

from __future__ import annotations

import math
from typing import List

import torch

from ..interpolation import slerp
from ..samplers import ddim_step, ddim_timesteps, trailing_timesteps
from .cases import T, linear_schedule
from .checker import Case, Exercise, Mistake, describe_t

NOTEBOOK = "05_faster_sampling"
Tensor = torch.Tensor


# --- ddim_step -------------------------------------------------------------------------------

def _ddim_cases() -> List[Case]:
    schedule = linear_schedule()
    gen = torch.Generator().manual_seed(9)
    cases = []
    for t, t_prev, shape in ((999, 949, (4, 1, 5, 5)), (999, 899, (2, 3, 4, 4)), (499, 449, (4, 1, 5, 5)),
                             (49, -1, (4, 1, 5, 5))):
        xt, eps = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
        a_t = float(schedule.alpha_bars[t])
        a_prev = float(schedule.alpha_bars[t_prev]) if t_prev >= 0 else 1.0
        expected = ddim_step(schedule, eps, xt, t, t_prev, eta=0.0, clip_x0=False)
        where = (f"from {describe_t(t, T, sampling=True)} to " + (describe_t(t_prev, T) if t_prev >= 0 else
                                                      "the clean image (alpha_bar_prev = 1)"))
        cases.append(Case((xt, eps, a_t, a_prev), expected,
                          lambda index, where=where: where + (f", pixel {list(index)}" if index else "")))
    return cases


def _x0_hat(xt, eps, a_t):
    return (xt - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)


DDIM_STEP = Exercise(
    name="ddim_step", params=("xt", "eps_hat", "alpha_bar_t", "alpha_bar_prev"), notebook=NOTEBOOK,
    cases=_ddim_cases, coverage="steps from t = 999, 499 and 49, the last one to the clean image",
    mistakes=(
        Mistake("the direction term uses the step you move to: sqrt(1 - alpha_bar_prev) eps_hat, not sqrt(1 - alpha_bar_t)",
                lambda xt, e, a, ap: math.sqrt(ap) * _x0_hat(xt, e, a) + math.sqrt(1 - a) * e),
        Mistake("first predict x0 from x_t (Eq. 4 solved for x0), then scale that by sqrt(alpha_bar_prev); "
                "x_t itself is not the clean image",
                lambda xt, e, a, ap: math.sqrt(ap) * xt + math.sqrt(1 - ap) * e),
        Mistake("missing square roots: sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev) eps_hat",
                lambda xt, e, a, ap: ap * _x0_hat(xt, e, a) + (1 - ap) * e),
        Mistake("swapped alpha_bars: x0_hat is predicted with alpha_bar_t (where x_t is) and re-noised with "
                "alpha_bar_prev (where the step lands)",
                lambda xt, e, a, ap: math.sqrt(a) * _x0_hat(xt, e, ap if ap < 1 else a) + math.sqrt(1 - a) * e),
    ),
    broadcast_hint="a shape that does not broadcast: alpha_bar_t and alpha_bar_prev are plain numbers here",
    rtol=1e-4, atol=1e-4,
)


# --- trailing_timesteps ----------------------------------------------------------------------

def _trailing_cases() -> List[Case]:
    cases = []
    for total, steps in ((1000, 20), (1000, 7), (1000, 10), (50, 4), (1000, 1)):
        cases.append(Case((total, steps), trailing_timesteps(total, steps),
                          lambda index, total=total, steps=steps: f"T = {total}, num_steps = {steps}"
                          + (f", position {index[0]}" if index else "")))
    return cases


TRAILING_TIMESTEPS = Exercise(
    name="trailing_timesteps", params=("T", "num_steps"), notebook=NOTEBOOK, cases=_trailing_cases,
    coverage="T = 1000 with 1, 7, 10 and 20 steps, and T = 50 with 4",
    mistakes=(
        Mistake("that is even spacing from T - 1 down to 0; trailing steps end one step-width above 0 "
                "(999, 949, ..., 49 for 20 steps)", lambda T, n: ddim_timesteps(T, n)),
        Mistake("the - 1: code steps are 0-based, so round(T - i T / num_steps) - 1 starts at T - 1 = 999",
                lambda T, n: [int(round(T - i * T / n)) for i in range(n)]),
        Mistake("int() truncates; round to the nearest step before subtracting 1",
                lambda T, n: [int(T - i * T / n) - 1 for i in range(n)]),
        Mistake("the order: a sampler walks from T - 1 down, so the list starts at the largest step",
                lambda T, n: [int(round(T - i * T / n)) - 1 for i in range(n)][::-1]),
    ),
)


# --- slerp -----------------------------------------------------------------------------------

def _slerp_cases() -> List[Case]:
    gen = torch.Generator().manual_seed(10)
    z0, z1 = torch.randn(3, 1, 4, 4, generator=gen), torch.randn(3, 1, 4, 4, generator=gen)
    cases = []
    for alpha in (0.3, 0.5, 0.0, 1.0, 0.85):
        cases.append(Case((z0, z1, alpha), slerp(z0, z1, alpha),
                          lambda index, alpha=alpha: f"alpha = {alpha}" + (f", item {index[0]}, element "
                                                                          f"{list(index[1:])}" if index else "")))
    return cases


def _slerp(z0, z1, alpha, *, per_item=True, normalise=True):
    a, b = (z0.flatten(1), z1.flatten(1)) if per_item else (z0.reshape(1, -1), z1.reshape(1, -1))
    dot = (a * b).sum(1, keepdim=True)
    cos = dot / (a.norm(dim=1, keepdim=True) * b.norm(dim=1, keepdim=True)) if normalise else dot
    theta = torch.acos(cos)
    out = (torch.sin((1 - alpha) * theta) * a + torch.sin(alpha * theta) * b) / torch.sin(theta)
    return out.reshape(z0.shape)


SLERP = Exercise(
    name="slerp", params=("z0", "z1", "alpha"), notebook=NOTEBOOK, cases=_slerp_cases,
    coverage="three pairs of noise images at alpha = 0, 0.3, 0.5, 0.85 and 1",
    mistakes=(
        Mistake("that is the straight line (1 - alpha) z0 + alpha z1; slerp follows the arc between them",
                lambda z0, z1, a: (1 - a) * z0 + a * z1),
        Mistake("swapped weights: alpha = 0 must give z0, so z0's weight is sin((1 - alpha) theta) / sin(theta)",
                lambda z0, z1, a: _slerp(z0, z1, 1 - a)),
        Mistake("normalise: cos(theta) = <z0, z1> / (|z0| |z1|); acos of the plain dot product is not an angle",
                lambda z0, z1, a: _slerp(z0, z1, a, normalise=False)),
        Mistake("one angle for the whole batch; each item has its own angle theta between z0[i] and z1[i] "
                "(flatten each item, not the batch)", lambda z0, z1, a: _slerp(z0, z1, a, per_item=False)),
    ),
    broadcast_hint="a shape that does not broadcast: theta is one number per item, [B, 1] against items "
                   "flattened to [B, C*H*W]",
)

EXERCISES = (DDIM_STEP, TRAILING_TIMESTEPS, SLERP)
