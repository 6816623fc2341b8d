"""Notebook 01's exercises: the schedule's alpha_bar, Eq. 4, and Eq. 4 solved for x_0 (Eq. 15)."""

from __future__ import annotations

from typing import List

import torch

from ..diffusion import predict_x0_from_eps, q_sample
from ..schedules import make_schedule
from .cases import T, column, image_batches, linear_schedule, per_image
from .checker import Case, Exercise, Mistake, describe_t

NOTEBOOK = "01_forward_process"


# --- alpha_bars_from_betas -------------------------------------------------------------------

def _schedule_cases() -> List[Case]:
    cases = []
    for name, steps in (("linear", T), ("cosine", T), ("linear", 10)):
        schedule = make_schedule(T=steps, schedule=name)

        def describe(index, name=name, steps=steps):
            return (f"alpha_bars[{index[0]}], {describe_t(index[0], steps)}, {name} schedule with T = {steps}"
                    if index else f"the {name} schedule with T = {steps}")
        cases.append(Case((schedule.betas,), schedule.alpha_bars, describe))
    return cases


ALPHA_BARS = Exercise(
    name="alpha_bars_from_betas", params=("betas",), notebook=NOTEBOOK, cases=_schedule_cases,
    coverage="the linear and cosine schedules (T = 1000) and a 10-step one",
    mistakes=(
        Mistake("alpha_bar_t is the product of alpha_s = 1 - beta_s, not of the betas themselves",
                lambda betas: torch.cumprod(betas, 0)),
        Mistake("alpha_bar_t is a running product (torch.cumprod), not a running sum",
                lambda betas: torch.cumsum(1 - betas, 0)),
        Mistake("1 - (sum of betas) is only a first-order approximation; take the product of (1 - beta_s)",
                lambda betas: 1 - torch.cumsum(betas, 0)),
        Mistake("off by one step: alpha_bars[t] includes step t itself (prod over s <= t), so alpha_bars[0] = 1 - beta_0",
                lambda betas: torch.cat([torch.ones(1), torch.cumprod(1 - betas, 0)[:-1]])),
        Mistake("alpha_bar_t is the product itself, with no square root",
                lambda betas: torch.cumprod(1 - betas, 0).sqrt()),
    ),
    error_hints=(("out of bounds", "the schedule has T values, one per step t = 0 .. T-1"),),
    rtol=1e-4, atol=1e-7,
)


# --- q_sample --------------------------------------------------------------------------------

def _q_sample_cases() -> List[Case]:
    schedule = linear_schedule()
    return [Case((b.x0, b.t, b.eps, schedule.alpha_bars), q_sample(schedule, b.x0, b.t, b.eps), per_image(b.t))
            for b in image_batches(seed=1)]


Q_SAMPLE = Exercise(
    name="q_sample", params=("x0", "t", "eps", "alpha_bars"), notebook=NOTEBOOK, cases=_q_sample_cases,
    coverage="9 images in two batches, t from 0 (the first step) to 999 (the last)",
    mistakes=(
        Mistake("missing square roots: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Eq. 4 gives "
                "variances; scale by standard deviations)",
                lambda x0, t, eps, ab: column(ab, t) * x0 + (1 - column(ab, t)) * eps),
        Mistake("the noise is scaled by its standard deviation sqrt(1 - alpha_bar_t), not by the variance 1 - alpha_bar_t",
                lambda x0, t, eps, ab: column(ab, t).sqrt() * x0 + (1 - column(ab, t)) * eps),
        Mistake("swapped coefficients: sqrt(alpha_bar_t) multiplies the image x0, sqrt(1 - alpha_bar_t) the noise",
                lambda x0, t, eps, ab: (1 - column(ab, t)).sqrt() * x0 + column(ab, t).sqrt() * eps),
        Mistake("off by one step: code steps are 0-based, alpha_bars[t] already belongs to step t (no t - 1)",
                lambda x0, t, eps, ab: column(ab, t - 1).sqrt() * x0 + (1 - column(ab, t - 1)).sqrt() * eps),
        Mistake("alpha_t where alpha_bar_t belongs: Eq. 4 jumps straight from x0, so it needs the product alpha_bar_t",
                lambda x0, t, eps, ab: column(ab / torch.cat([torch.ones(1), ab[:-1]]), t).sqrt() * x0
                + (1 - column(ab / torch.cat([torch.ones(1), ab[:-1]]), t)).sqrt() * eps),
    ),
    error_hints=(("out of bounds", "code steps are 0-based: t runs 0 .. T-1 and alpha_bars[t] belongs to step t, "
                                   "no + 1 needed"),),
)


# --- x0_from_eps -----------------------------------------------------------------------------

def _x0_cases() -> List[Case]:
    schedule = linear_schedule()
    return [Case((b.xt, b.t, b.eps, schedule.alpha_bars), predict_x0_from_eps(schedule, b.xt, b.t, b.eps),
                 per_image(b.t)) for b in image_batches(seed=2)]


X0_FROM_EPS = Exercise(
    name="x0_from_eps", params=("xt", "t", "eps", "alpha_bars"), notebook=NOTEBOOK, cases=_x0_cases,
    coverage="9 images in two batches, t from 0 (the first step) to 999 (the last)",
    mistakes=(
        Mistake("a sign: Eq. 4 solved for x0 subtracts the noise, x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)",
                lambda xt, t, eps, ab: (xt + (1 - column(ab, t)).sqrt() * eps) / column(ab, t).sqrt()),
        Mistake("missing square roots: divide by sqrt(alpha_bar_t) and subtract sqrt(1 - alpha_bar_t) eps",
                lambda xt, t, eps, ab: (xt - (1 - column(ab, t)) * eps) / column(ab, t)),
        Mistake("the division: solving x_t = sqrt(alpha_bar_t) x0 + ... for x0 divides by sqrt(alpha_bar_t)",
                lambda xt, t, eps, ab: xt - (1 - column(ab, t)).sqrt() * eps),
        Mistake("multiplied by sqrt(alpha_bar_t) where Eq. 4 solved for x0 divides by it",
                lambda xt, t, eps, ab: (xt - (1 - column(ab, t)).sqrt() * eps) * column(ab, t).sqrt()),
        Mistake("swapped coefficients: the noise has sqrt(1 - alpha_bar_t), the image sqrt(alpha_bar_t)",
                lambda xt, t, eps, ab: (xt - column(ab, t).sqrt() * eps) / (1 - column(ab, t)).sqrt()),
    ),
    error_hints=Q_SAMPLE.error_hints,
)

EXERCISES = (ALPHA_BARS, Q_SAMPLE, X0_FROM_EPS)
