"""The reverse variance fitted to a trained model (Bao et al. 2022, Analytic-DPM, and its sequel on an
imperfect mean), instead of the fixed beta_t or beta_tilde_t of Ho et al. 2020, Sec. 3.2.

A reverse step from t to s < t (s = t - 1 for DDPM, any earlier step for a shortened chain, s = -1 for
the decoder: x_{-1} means x_0) targets the generalized posterior of Song et al. 2021, Eq. 7:

    q(x_s | x_t, x_0) = N(mu_tilde, lambda^2 I),
    mu_tilde = sqrt(alpha_bar_s) x_0 + sqrt(1 - alpha_bar_s - lambda^2) (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)

(lambda^2 = beta_tilde_t for DDPM, 0 for deterministic DDIM). The model's step puts its prediction x0_hat(x_t)
in place of x_0, so its mean misses by c_{s,t} (x0_hat - x_0), with

    c_{s,t} = sqrt(alpha_bar_s) - sqrt(1 - alpha_bar_s - lambda^2) sqrt(alpha_bar_t / (1 - alpha_bar_t)).

The isotropic variance sigma^2 minimising E KL(q(x_s | x_t, x_0) || N(mu_theta, sigma^2 I)), a term of the
bound (Eq. 5), is therefore

    sigma*^2 = lambda^2 + c_{s,t}^2 e_t,   e_t = E ||x0_hat(x_t) - x_0||^2 / d            ("fitted")

(Bao et al. 2022b, "Estimating the optimal covariance with imperfect mean", the diagonal case): the fixed
beta_tilde is the optimum only for a perfect x0_hat, which no model has. Analytic-DPM (Bao et al. 2022a,
Theorem 1) assumes the optimal predictor instead, whose error is e_t = (1 - alpha_bar_t) / alpha_bar_t *
(1 - Gamma_t) with Gamma_t = E ||eps_hat||^2 / d, clipped to its bounds (Theorem 2) ("analytic").

The decoder (t = 0, Eq. 13) integrates its Gaussian over 8-bit bins, where the squared error is not what
the bound rewards: its variance is chosen on the same images by the discretized likelihood itself
(``decoder_variance``), from a grid around e_0.

All of it takes one pass of the model over training images at every t, once per model: :func:`fit_variance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
from tqdm.auto import tqdm

from .decoder import discretized_gaussian_log_likelihood
from .diffusion import eps_and_x0, q_sample
from .errors import InputError
from .models import eval_mode, model_device
from .schedules import Schedule

Tensor = torch.Tensor
Number = Union[float, Tensor]  # a float or a tensor of them
FIT_KINDS = ("fitted", "analytic")  # e_t measured on the model (optimal for its mean) / from Gamma_t (Theorem 1)
IMAGES_PER_T = 64  # default images drawn at each t by fit_variance (one x_t each)
DECODER_IMAGES = 512  # images on which fit_variance picks the decoder's variance
DECODER_GRID = [2.0 ** (k / 4) for k in range(-12, 13)]  # the decoder's variance tried: e_0 times these


@dataclass
class VarianceFit:
    """What :func:`fit_variance` measured at each code step t = 0..T-1 (float64 tensors of length T):
    ``x0_mse`` = E ||x0_hat - x_0||^2 / d and ``eps_power`` = E ||eps_hat||^2 / d (Gamma_t), from
    ``images`` draws per t; ``clip_x0`` says whether x0_hat was clipped to [-1, 1], as the samplers do;
    ``decoder_variance``: the decoder's sigma_0^2 that gave 8-bit training images the highest discretized
    likelihood (None for images that are not 8-bit), used at t = 0 in place of e_0."""

    x0_mse: Tensor
    eps_power: Tensor
    images: int
    clip_x0: bool = True
    kind: str = "fitted"
    decoder_variance: Optional[float] = None

    def __post_init__(self) -> None:
        if self.kind not in FIT_KINDS:
            raise InputError(f"kind must be one of {FIT_KINDS}, got {self.kind!r}")
        if self.x0_mse.shape != self.eps_power.shape or self.x0_mse.ndim != 1:
            raise InputError("x0_mse and eps_power must be two tensors of length T")

    @property
    def T(self) -> int:
        return int(self.x0_mse.shape[0])

    def with_kind(self, kind: str) -> "VarianceFit":
        """The same measurements read the other way (``"fitted"`` or ``"analytic"``)."""
        return VarianceFit(self.x0_mse, self.eps_power, self.images, self.clip_x0, kind, self.decoder_variance)

    def x0_error(self, schedule: Schedule) -> Tensor:
        """e_t for every t: measured (``fitted``), or Analytic-DPM's (1 - alpha_bar_t) / alpha_bar_t
        (1 - Gamma_t) clipped to [0, min((1 - alpha_bar_t) / alpha_bar_t, 1)] (Theorem 2: x_0 in [-1, 1]
        has a variance of at most 1)."""
        check_fit_schedule(self, schedule)
        if self.kind == "fitted":
            return self.x0_mse
        alpha_bar = alpha_bars(schedule)
        ratio = (1 - alpha_bar) / alpha_bar
        return (ratio * (1 - self.eps_power)).clamp(min=0).minimum(ratio.clamp(max=1.0))

    def variance(self, schedule: Schedule, t: int, t_prev: int, lambda2: float) -> float:
        """sigma*^2 = lambda^2 + c_{s,t}^2 e_t for the step t -> t_prev (t_prev = -1: the decoder)."""
        return fitted_sigma2(lambda2, x0_coefficient(schedule, t, t_prev, lambda2), float(self.x0_error(schedule)[t]))

    def ddpm_variances(self, schedule: Schedule) -> Tensor:
        """sigma*^2 of every DDPM step t -> t - 1 (float64, length T): beta_tilde_t + c_t^2 e_t, where c_t is
        Eq. 7's weight of x_0, sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t); at t = 0, the decoder's,
        beta_tilde_0 = 0 and c_0 = 1, so sigma*^2 = e_0, or ``decoder_variance`` where one was chosen."""
        a = alpha_bars(schedule)
        a_prev = torch.cat([a.new_ones(1), a[:-1]])
        betas = 1 - a / a_prev
        beta_tilde = betas * (1 - a_prev) / (1 - a)
        c = a_prev.sqrt() * betas / (1 - a)
        sigma2 = fitted_sigma2(beta_tilde, c, self.x0_error(schedule))
        if self.decoder_variance is not None:
            sigma2[0] = self.decoder_variance
        return sigma2

    def state(self) -> dict:
        """Plain values to store in a checkpoint (:meth:`from_state` reads them back)."""
        return {"x0_mse": self.x0_mse.tolist(), "eps_power": self.eps_power.tolist(), "images": self.images,
                "clip_x0": self.clip_x0, "decoder_variance": self.decoder_variance}

    @classmethod
    def from_state(cls, state: dict, kind: str = "fitted") -> "VarianceFit":
        return cls(torch.tensor(state["x0_mse"], dtype=torch.float64),
                   torch.tensor(state["eps_power"], dtype=torch.float64), int(state["images"]),
                   bool(state.get("clip_x0", True)), kind, state.get("decoder_variance"))


def fitted_sigma2(lambda2: Number, c: Number, x0_mse: Number) -> Number:
    """sigma*^2 = lambda^2 + c^2 e: the isotropic variance of a reverse step that minimises the expected KL
    against the posterior N(mu_tilde, lambda^2 I) when the model's mean misses by c (x0_hat - x_0), with
    e = E ||x0_hat - x_0||^2 / d (Bao et al. 2022b). Floats or tensors alike."""
    return lambda2 + c * c * x0_mse


def alpha_bars(schedule: Schedule) -> Tensor:
    """alpha_bar_t in float64, from the betas (the schedule's own are float32)."""
    return torch.cumprod(1 - schedule.betas.detach().cpu().double(), 0)


def x0_coefficient(schedule: Schedule, t: int, t_prev: int, lambda2: float) -> float:
    """c_{s,t} = sqrt(alpha_bar_s) - sqrt(1 - alpha_bar_s - lambda^2) sqrt(alpha_bar_t / (1 - alpha_bar_t)),
    the weight of x_0 in the generalized posterior mean (Song et al. 2021, Eq. 7); s = t_prev, and
    alpha_bar_{-1} = 1."""
    if not (0 <= t < schedule.T and -1 <= t_prev < t):
        raise InputError(f"need 0 <= t < T={schedule.T} and -1 <= t_prev < t, got t={t}, t_prev={t_prev}")
    a = alpha_bars(schedule)
    a_t, a_s = a[t].item(), (a[t_prev].item() if t_prev >= 0 else 1.0)
    room = 1 - a_s - lambda2
    if room < -1e-12:
        raise InputError(f"lambda^2 = {lambda2:.3g} exceeds 1 - alpha_bar_s = {1 - a_s:.3g}: no such posterior")
    return math.sqrt(a_s) - math.sqrt(max(room, 0.0)) * math.sqrt(a_t / (1 - a_t))


def check_fit_schedule(fit: VarianceFit, schedule: Schedule) -> None:
    if fit.T != schedule.T:
        raise InputError(f"this variance was fitted on a chain of T={fit.T} steps, the schedule has "
                         f"T={schedule.T}; fit it again with fit_variance(model, schedule, images)")


@torch.no_grad()
def fit_variance(model: torch.nn.Module, schedule: Schedule, x0: Tensor, *, labels: Optional[Tensor] = None,
                 images_per_t: int = IMAGES_PER_T, clip_x0: bool = True, seed: int = 0,
                 decoder_images: int = DECODER_IMAGES, batch_size: int = 512, progress: bool = True) -> VarianceFit:
    """Measure e_t = E ||x0_hat(x_t) - x_0||^2 / d and Gamma_t = E ||eps_hat||^2 / d at every t, each from
    ``images_per_t`` images drawn from ``x0`` (training images in [-1, 1]; ``labels`` with them for a
    class-conditional model) with one x_t ~ q(x_t | x_0) each (Eq. 4); then, for 8-bit images, the
    decoder's variance on ``decoder_images`` more (:data:`DECODER_GRID`). Costs T * images_per_t network
    calls (64,000 for T = 1000). Seeded."""
    if not isinstance(x0, Tensor) or x0.ndim < 2 or len(x0) == 0:
        raise InputError(f"x0 must be a non-empty batch of images in [-1, 1], got {getattr(x0, 'shape', x0)}")
    if images_per_t < 2:
        raise InputError(f"images_per_t must be at least 2, got {images_per_t}")
    device = model_device(model)
    schedule = schedule.to(device)
    T, d = schedule.T, x0[0].numel()
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(x0), (T * images_per_t,), generator=gen)
    steps = torch.arange(T).repeat_interleave(images_per_t)
    x0_mse = torch.zeros(T, dtype=torch.float64)
    eps_power = torch.zeros(T, dtype=torch.float64)
    with eval_mode(model), tqdm(total=len(pick), desc="fitting the reverse variance", disable=not progress) as bar:
        for lo in range(0, len(pick), batch_size):
            idx, t = pick[lo:lo + batch_size], steps[lo:lo + batch_size]
            x = x0[idx].to(device)
            noise = torch.randn(x.shape, generator=gen).to(device)
            tt = t.to(device)
            xt = q_sample(schedule, x, tt, noise)
            y = None if labels is None else labels[idx].to(device)
            eps_hat, x0_hat = eps_and_x0(schedule, xt, tt, model(xt, tt, y) if y is not None else model(xt, tt))
            if clip_x0:
                x0_hat = x0_hat.clamp(-1, 1)
            x0_mse.index_add_(0, t, (x0_hat - x).double().square().flatten(1).sum(1).cpu() / d)
            eps_power.index_add_(0, t, eps_hat.double().square().flatten(1).sum(1).cpu() / d)
            bar.update(len(idx))
    fit = VarianceFit(x0_mse / images_per_t, eps_power / images_per_t, images_per_t, clip_x0)
    levels = (x0 + 1) * 127.5
    if decoder_images > 0 and (levels - levels.round()).abs().max() <= 1e-3:  # 8-bit images: Eq. 13 applies
        fit.decoder_variance = _best_decoder_variance(model, schedule, x0, labels, fit, decoder_images, gen)
    return fit


def _best_decoder_variance(model: torch.nn.Module, schedule: Schedule, x0: Tensor, labels: Optional[Tensor],
                           fit: VarianceFit, n: int, gen: torch.Generator) -> float:
    """The sigma_0^2 of :data:`DECODER_GRID` (times e_0) under which ``n`` images drawn from ``x0`` have the
    highest discretized likelihood given x_0 (Eq. 13), x0_hat taken as the samplers take it."""
    device = model_device(model)
    idx = torch.randint(0, len(x0), (n,), generator=gen)
    x = x0[idx].to(device)
    t = torch.zeros(n, dtype=torch.long, device=device)
    xt = q_sample(schedule, x, t, torch.randn(x.shape, generator=gen).to(device))
    with eval_mode(model):
        out = model(xt, t) if labels is None else model(xt, t, labels[idx].to(device))
    x0_hat = eps_and_x0(schedule, xt, t, out)[1]
    if fit.clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
    grid = [float(fit.x0_mse[0]) * g for g in DECODER_GRID]
    nll = [-discretized_gaussian_log_likelihood(x, x0_hat, torch.full_like(x, 0.5 * math.log(v))).mean().item()
           for v in grid]
    return grid[min(range(len(grid)), key=nll.__getitem__)]
