"""Notebook 02's exercises: the loss of Algorithm 1 (Eq. 14), the posterior mean (Eq. 7) and
one reverse step (Algorithm 2)."""

from __future__ import annotations

from typing import List

import torch

from ..diffusion import q_posterior, simple_loss
from ..samplers import ddpm_step
from .cases import T, column, image_batches, linear_schedule, per_image
from .checker import Case, Exercise, Mistake, describe_t

NOTEBOOK = "02_mlp_noise_predictor"
Tensor = torch.Tensor


def _alpha_bars(betas: Tensor) -> Tensor:
    return torch.cumprod(1 - betas, 0)


def _alpha_bars_prev(betas: Tensor) -> Tensor:
    return torch.cat([torch.ones(1, dtype=betas.dtype), _alpha_bars(betas)[:-1]])


# --- l_simple ------------------------------------------------------------------------------

class ProbeNet(torch.nn.Module):
    """A fixed stand-in for eps_theta(x_t, t): depends on both inputs, so feeding it the wrong
    image or the wrong step changes the loss."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return 0.5 * x + torch.sin(0.37 * t.float()).view(-1, *([1] * (x.ndim - 1)))


def _loss_cases() -> List[Case]:
    schedule, model = linear_schedule(), ProbeNet()
    cases = []
    for b in image_batches(seed=3):
        for i in (0, len(b.t) - 1) if len(b.t) == 6 else ():
            one = slice(i, i + 1)
            expected = simple_loss(model, schedule, b.x0[one], t=b.t[one], noise=b.eps[one])
            cases.append(Case((model, b.x0[one], b.t[one], b.eps[one], schedule.alpha_bars), expected,
                              lambda index, s=int(b.t[i]): f"one image at {describe_t(s, T)}"))
        expected = simple_loss(model, schedule, b.x0, t=b.t, noise=b.eps)
        cases.append(Case((model, b.x0, b.t, b.eps, schedule.alpha_bars), expected,
                          lambda index, t=b.t.tolist(): f"a batch of {len(t)} images at t = {t}"))
    return cases


def _noisy(x0, t, eps, ab):
    return column(ab, t).sqrt() * x0 + (1 - column(ab, t)).sqrt() * eps


L_SIMPLE = Exercise(
    name="l_simple", params=("model", "x0", "t", "eps", "alpha_bars"), notebook=NOTEBOOK, cases=_loss_cases,
    coverage="single images at the first and last steps and two batches",
    mistakes=(
        Mistake("the target is the noise eps that made x_t, not the clean image x0",
                lambda m, x0, t, eps, ab: ((x0 - m(_noisy(x0, t, eps, ab), t)) ** 2).mean()),
        Mistake("the model sees the noisy x_t (Eq. 4), not the clean x0",
                lambda m, x0, t, eps, ab: ((eps - m(x0, t)) ** 2).mean()),
        Mistake("a sum where the loss is a mean over all elements (Algorithm 1's squared norm, averaged as in "
                "ddpm_lib)", lambda m, x0, t, eps, ab: ((eps - m(_noisy(x0, t, eps, ab), t)) ** 2).sum()),
        Mistake("the error is squared: (eps - eps_theta)^2, not |eps - eps_theta|",
                lambda m, x0, t, eps, ab: (eps - m(_noisy(x0, t, eps, ab), t)).abs().mean()),
        Mistake("missing square roots in x_t: sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps",
                lambda m, x0, t, eps, ab: ((eps - m(column(ab, t) * x0 + (1 - column(ab, t)) * eps, t)) ** 2).mean()),
        Mistake("the model takes the code step t (0-based), as x_t was made with alpha_bars[t]; no t + 1",
                lambda m, x0, t, eps, ab: ((eps - m(_noisy(x0, t, eps, ab), t + 1)) ** 2).mean()),
    ),
    error_hints=(("out of bounds", "code steps are 0-based: alpha_bars[t] belongs to step t, no + 1 needed"),),
)


# --- posterior_mean --------------------------------------------------------------------------

def _posterior_cases() -> List[Case]:
    schedule = linear_schedule()
    return [Case((b.x0, b.xt, b.t, schedule.betas), q_posterior(schedule, b.x0, b.xt, b.t)[0], per_image(b.t))
            for b in image_batches(seed=4)]


def _posterior(x0, xt, t, betas, a_prev, alpha):
    ab = column(_alpha_bars(betas), t)
    beta = column(betas, t)
    return a_prev.sqrt() * beta / (1 - ab) * x0 + alpha.sqrt() * (1 - a_prev) / (1 - ab) * xt


POSTERIOR_MEAN = Exercise(
    name="posterior_mean", params=("x0", "xt", "t", "betas"), notebook=NOTEBOOK, cases=_posterior_cases,
    coverage="9 images in two batches, t from 0 (the first step) to 999 (the last)",
    mistakes=(
        Mistake("alpha_bar_t where alpha_bar_{t-1} belongs: both numerators use the step before, alpha_bar_{t-1}",
                lambda x0, xt, t, b: _posterior(x0, xt, t, b, column(_alpha_bars(b), t), column(1 - b, t))),
        Mistake("alpha_bar_t where alpha_t belongs: x_t's coefficient has sqrt(alpha_t), one step's alpha = 1 - beta_t",
                lambda x0, xt, t, b: _posterior(x0, xt, t, b, column(_alpha_bars_prev(b), t), column(_alpha_bars(b), t))),
        Mistake("swapped coefficients: sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) multiplies x0, "
                "sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) multiplies x_t",
                lambda x0, xt, t, b: _posterior(xt, x0, t, b, column(_alpha_bars_prev(b), t), column(1 - b, t))),
        Mistake("at t = 0 there is no step before: alpha_bar_{t-1} must be 1 there, but alpha_bars[t - 1] wraps "
                "around to the last step",
                lambda x0, xt, t, b: _posterior(x0, xt, t, b, column(_alpha_bars(b), t - 1), column(1 - b, t))),
        Mistake("missing square roots: sqrt(alpha_bar_{t-1}) and sqrt(alpha_t)",
                lambda x0, xt, t, b: _posterior(x0, xt, t, b, column(_alpha_bars_prev(b), t) ** 2, column(1 - b, t) ** 2)),
    ),
    rtol=1e-3, atol=1e-3,  # float32 arithmetic of 1 - alpha_bar_0 = beta_0 = 1e-4 keeps about 3 digits
)


# --- ddpm_step -------------------------------------------------------------------------------

def _step_cases() -> List[Case]:
    schedule = linear_schedule()
    gen = torch.Generator().manual_seed(5)
    cases = []
    for t, shape in ((999, (4, 1, 5, 5)), (500, (4, 1, 5, 5)), (250, (2, 3, 4, 4)), (1, (4, 1, 5, 5)),
                     (0, (4, 1, 5, 5))):
        xt, eps, z = (torch.randn(shape, generator=gen) for _ in range(3))
        expected = ddpm_step(schedule, eps, xt, t, noise=z, variance="beta", clip_x0=False)
        cases.append(Case((xt, t, eps, schedule.betas, z), expected,
                          lambda index, t=t: f"{describe_t(t, T, sampling=True)}" + (f", pixel {list(index)}" if index else "")))
    return cases


def _step(xt, t, eps, betas, z, *, alpha=None, noise_coef=None, sigma=None, noise_at_end=False):
    ab = _alpha_bars(betas)[t]
    alpha = 1 - betas[t] if alpha is None else alpha
    coef = betas[t] / (1 - ab).sqrt() if noise_coef is None else noise_coef
    mean = (xt - coef * eps) / alpha.sqrt()
    if t == 0 and not noise_at_end:
        return mean
    return mean + (betas[t].sqrt() if sigma is None else sigma) * z


def _beta_tilde(betas, t):
    ab = _alpha_bars(betas)
    prev = ab[t - 1] if t > 0 else torch.ones(())
    return (1 - prev) / (1 - ab[t]) * betas[t]


DDPM_STEP = Exercise(
    name="ddpm_step", params=("xt", "t", "eps_hat", "betas", "z"), notebook=NOTEBOOK, cases=_step_cases,
    coverage="steps t = 999, 500, 250, 1 and 0 (the last, without noise)",
    mistakes=(
        Mistake("noise added at the last step: at t = 0 (the paper's t = 1) Algorithm 2 sets z = 0, so return the mean",
                lambda xt, t, e, b, z: _step(xt, t, e, b, z, noise_at_end=True)),
        Mistake("z is scaled by the standard deviation sigma_t = sqrt(beta_t), not by the variance beta_t",
                lambda xt, t, e, b, z: _step(xt, t, e, b, z, sigma=b[t])),
        Mistake("alpha_bar_t where alpha_t belongs: the step divides by sqrt(alpha_t), one step's alpha = 1 - beta_t",
                lambda xt, t, e, b, z: _step(xt, t, e, b, z, alpha=_alpha_bars(b)[t])),
        Mistake("the noise coefficient is beta_t / sqrt(1 - alpha_bar_t): a square root is missing",
                lambda xt, t, e, b, z: _step(xt, t, e, b, z, noise_coef=b[t] / (1 - _alpha_bars(b)[t]))),
        Mistake("this exercise takes sigma_t^2 = beta_t; you used the posterior variance beta_tilde_t "
                "(Algorithm 2 allows both; the check asks for beta_t)",
                lambda xt, t, e, b, z: _step(xt, t, e, b, z, sigma=_beta_tilde(b, t).sqrt())),
        Mistake("a sign: the predicted noise is subtracted, x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat",
                lambda xt, t, e, b, z: _step(xt, t, e, b, z, noise_coef=-b[t] / (1 - _alpha_bars(b)[t]).sqrt())),
    ),
    error_hints=(("out of bounds", "code steps are 0-based: betas[t] belongs to step t, no + 1 needed"),),
    rtol=1e-3, atol=1e-3,
)

EXERCISES = (L_SIMPLE, POSTERIOR_MEAN, DDPM_STEP)
