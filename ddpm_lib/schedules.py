"""Noise schedules beta_1..beta_T and every coefficient derived from them.

Notation (Ho et al. 2020, Sec. 2), with 0-based indices t = 0..T-1 in code (the paper's
t = 1..T):

    alpha_t      = 1 - beta_t
    alpha_bar_t  = prod_{s <= t} alpha_s                               (used in Eq. 4)
    beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t  (Eq. 7)
    SNR(t)       = alpha_bar_t / (1 - alpha_bar_t)                     (Kingma et al. 2021)

Everything is computed in float64 and stored as float32 tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Union

import torch

from .errors import InputError
from .config import DiffusionConfig

Tensor = torch.Tensor

# what the network predicts (DiffusionConfig.prediction): the noise eps (Ho et al. 2020), the clean
# image x0, or v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022, Sec. 4)
PREDICTIONS = ("eps", "x0", "v")

# sigma_t^2 of the reverse process p(x_{t-1} | x_t) (Ho et al. 2020, Sec. 3.2): the two choices
VARIANCES = ("beta_tilde", "beta")


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Linear schedule of Ho et al. 2020 (Sec. 4): beta_t evenly spaced from 1e-4 to 0.02.

    The endpoints do not scale with T: for small T, alpha_bar_T is far from 0."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Cosine schedule of Nichol & Dhariwal 2021 (Eq. 17):
    alpha_bar(t) = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) * pi/2)^2, and
    beta_t = 1 - alpha_bar(t) / alpha_bar(t-1), clipped to max_beta = 0.999."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)


@dataclass(frozen=True)
class Schedule:
    """All per-step coefficients of one schedule, as float32 tensors of length T.

    Build with :func:`make_schedule`; move with :meth:`to`. Pick a batch of per-sample
    coefficients with :func:`ddpm_lib.diffusion.gather`."""

    betas: Tensor  # beta_t
    alphas: Tensor  # alpha_t = 1 - beta_t
    alpha_bars: Tensor  # alpha_bar_t = prod alpha_s
    alpha_bars_prev: Tensor  # alpha_bar_{t-1}, with alpha_bar_{-1} = 1
    sqrt_alpha_bars: Tensor  # sqrt(alpha_bar_t)                  (Eq. 4 mean)
    sqrt_one_minus_alpha_bars: Tensor  # sqrt(1 - alpha_bar_t)     (Eq. 4 std)
    sqrt_recip_alpha_bars: Tensor  # 1 / sqrt(alpha_bar_t)         (Eq. 15)
    sqrt_recipm1_alpha_bars: Tensor  # sqrt(1 / alpha_bar_t - 1)   (Eq. 15)
    beta_tilde: Tensor  # posterior variance                       (Eq. 7)
    log_beta_tilde_clipped: Tensor  # log beta_tilde with beta_tilde_0 := beta_tilde_1
    posterior_mean_coef_x0: Tensor  # sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t)  (Eq. 7)
    posterior_mean_coef_xt: Tensor  # sqrt(alpha_t)(1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
    name: str = "linear"
    prediction: str = "eps"  # what the network outputs: "eps", "x0" or "v" (DiffusionConfig.prediction)

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return int(self.betas.shape[0])

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: Union[str, torch.device]) -> "Schedule":
        """A copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in moved.items():
            if isinstance(value, Tensor):
                moved[key] = value.to(device)
        return Schedule(**moved)

    def snr(self, t: Union[int, Tensor, None] = None) -> Tensor:
        """Signal-to-noise ratio SNR(t) = alpha_bar_t / (1 - alpha_bar_t); all T if t is None."""
        snr = self.alpha_bars / (1 - self.alpha_bars)
        return snr if t is None else snr[t]


def schedule_from_betas(betas: Tensor, name: str = "custom", prediction: str = "eps") -> Schedule:
    """Derive every coefficient from beta_1..beta_T (float64 math, stored float32); ``prediction``
    names what the network trained on this schedule outputs (one of :data:`PREDICTIONS`)."""
    if prediction not in PREDICTIONS:
        raise InputError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    betas = betas.to(torch.float64)
    if betas.ndim != 1 or len(betas) < 1:
        raise InputError(f"betas must be a 1-d tensor of length T >= 1, got shape {tuple(betas.shape)}")
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise InputError("every beta_t must lie in (0, 1); check the schedule's endpoints")
    alphas = 1.0 - betas
    alpha_bars = torch.cumprod(alphas, dim=0)
    alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    beta_tilde = betas * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)
    # beta_tilde_0 = 0; clip its log to beta_tilde_1 as Ho et al.'s code does
    log_beta_tilde = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]])) if len(betas) > 1 \
        else torch.log(betas)
    f32 = lambda x: x.to(torch.float32)  # noqa: E731
    return Schedule(
        betas=f32(betas),
        alphas=f32(alphas),
        alpha_bars=f32(alpha_bars),
        alpha_bars_prev=f32(alpha_bars_prev),
        sqrt_alpha_bars=f32(alpha_bars.sqrt()),
        sqrt_one_minus_alpha_bars=f32((1.0 - alpha_bars).sqrt()),
        sqrt_recip_alpha_bars=f32(alpha_bars.rsqrt()),
        sqrt_recipm1_alpha_bars=f32((1.0 / alpha_bars - 1.0).sqrt()),
        beta_tilde=f32(beta_tilde),
        log_beta_tilde_clipped=f32(log_beta_tilde),
        posterior_mean_coef_x0=f32(alpha_bars_prev.sqrt() * betas / (1.0 - alpha_bars)),
        posterior_mean_coef_xt=f32(alphas.sqrt() * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)),
        name=name,
        prediction=prediction,
    )


def make_schedule(config: Union[DiffusionConfig, None] = None, **overrides) -> Schedule:
    """Build the schedule a :class:`DiffusionConfig` describes, e.g.
    ``make_schedule(T=1000, schedule="cosine")``."""
    config = config or DiffusionConfig()
    if overrides:
        config = DiffusionConfig(**{**config.__dict__, **overrides})
    if not isinstance(config.T, int) or config.T < 1:
        raise InputError(f"T must be a positive integer, got {config.T!r}")
    if config.schedule == "linear":
        betas = linear_betas(config.T, config.beta_start, config.beta_end)
    elif config.schedule == "cosine":
        betas = cosine_betas(config.T, config.cosine_s)
    else:
        raise InputError(f"unknown schedule {config.schedule!r}: use 'linear' or 'cosine'")
    return schedule_from_betas(betas, name=config.schedule, prediction=config.prediction)


def check_variance(variance: str) -> None:
    """Raise a clear error unless ``variance`` names one of :data:`VARIANCES`."""
    if variance not in VARIANCES:
        raise InputError(f"variance must be one of {VARIANCES}, got {variance!r}")


def reverse_variance(schedule: Schedule, variance: str) -> Tensor:
    """sigma_t^2 for every t: beta_tilde_t (Eq. 7, the posterior's variance: optimal for a
    deterministic x_0) or beta_t (optimal for x_0 ~ N(0, I)); Sec. 3.2."""
    check_variance(variance)
    return schedule.beta_tilde if variance == "beta_tilde" else schedule.betas


def remember_diffusion(model: Any, config: DiffusionConfig) -> Any:
    """Record on ``model`` the :class:`DiffusionConfig` it was trained with, as the plain attribute
    ``model.diffusion_config`` (a copy; not a buffer, not read in ``forward``), so that a sampler
    given another schedule can say so (:func:`check_model_schedule`). :func:`ddpm_lib.load_model`
    and :class:`ddpm_lib.Trainer` set it; a model built by hand remembers nothing. Returns ``model``."""
    model.diffusion_config = replace(config)
    return model


def _describe(schedule: Schedule) -> str:
    betas = schedule.betas
    ends = f" (beta {float(betas[0]):.3g} -> {float(betas[-1]):.3g})" if not betas.is_meta else ""
    return f"T={schedule.T}, {schedule.name} schedule{ends}, predicting {schedule.prediction}"


def check_model_schedule(model: Any, schedule: Schedule) -> None:
    """Raise :class:`ValueError` naming both if ``model`` remembers the diffusion it was trained
    with (``model.diffusion_config``, see :func:`remember_diffusion`) and ``schedule`` differs from
    it in T, betas (the schedule's kind and endpoints) or prediction type: sampling with another
    schedule than the training one gives wrong images without any other sign. A model that
    remembers nothing is accepted. Called once per sampling call (one small read of the betas)."""
    config = getattr(model, "diffusion_config", None)
    if not isinstance(config, DiffusionConfig):
        return
    trained = make_schedule(config)
    betas = schedule.betas.detach()
    same = trained.T == schedule.T and trained.prediction == schedule.prediction and (
        betas.is_meta or torch.allclose(trained.betas, betas.cpu().float(), rtol=1e-4, atol=1e-8))
    if not same:
        raise InputError(f"this model was trained with {_describe(trained)}, but the sampler was given "
                         f"{_describe(schedule)}; sample with the schedule it was trained with, "
                         f"make_schedule(model.diffusion_config) (load_model returns it beside the model)")
