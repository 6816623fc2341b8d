"""The forward process q and the training objective (Ho et al. 2020, Sec. 2-3).

Plain functions of (schedule, x, t). Time indices are 0-based: t = 0..T-1 in code is the
paper's t = 1..T.
"""

from __future__ import annotations

import warnings
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from .errors import InputError, InputTypeError
from .schedules import Schedule

Tensor = torch.Tensor


def gather(coeffs: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """Pick ``coeffs[t]`` for each sample of a batch, shaped [B, 1, 1, ...] to broadcast
    against ``like`` (a [B, ...] tensor)."""
    out = coeffs.to(like.device)[t.to(like.device)]
    return out.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


# the per-step guard of q_sample, not the range check: |x0| beyond this cannot be data at all (pixels
# 0..255 never rescaled; unit-Gaussian test data pass). Data are checked against [-1, 1] once, where
# they enter: ddpm_lib.data.check_model_range (Trainer.fit, the evaluator, bits/dim)
X0_LIMIT = 10.0


def check_x0_type(x0: Tensor) -> None:
    """Raise a clear error unless x0 is a float tensor: integer pixels (uint8) would turn every
    coefficient into an integer and x_t into zeros."""
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise InputTypeError(f"x0 must be a float tensor of data in [-1, 1], got {getattr(x0, 'dtype', type(x0).__name__)}; "
                        "rescale pixels with ddpm_lib.data.to_model_range(x0)")


def check_timesteps(t: Union[Tensor, int], batch: int, T: int, device: torch.device, *,
                    x0: Optional[Tensor] = None) -> Tensor:
    """Return ``t`` as a long tensor of shape [batch]; raise a clear error if it is not an
    integer (bool is not) in [0, T) or does not match the batch. With ``x0``, also refuse data
    that are NaN, inf or far outside [-1, 1] (|x0| > :data:`X0_LIMIT`, e.g. pixels 0..255).

    The values of t and x0 are read in one device-to-host transfer: :func:`q_sample` runs on every
    training step, where this one sync replaces the two that reading t's range alone took (the
    step's ``loss.item()`` waits for the device anyway). The finer check of the data ([0, 1]
    images, a little outside [-1, 1]) is made once, where they enter: ``Trainer.fit``."""
    if isinstance(t, bool) or (isinstance(t, Tensor) and t.dtype == torch.bool):
        raise InputTypeError(f"t must hold integer steps in [0, {T}), got a bool (True/False is not a step); "
                        "pass step numbers as an int or a torch.long tensor")
    if isinstance(t, int):
        t = torch.full((batch,), t, dtype=torch.long, device=device)
    if not isinstance(t, Tensor):
        raise InputTypeError(f"t must be an int or a tensor of ints, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex():
        raise InputTypeError(f"t must hold integer steps in [0, {T}), got dtype {t.dtype}; use t.long()")
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise InputError(f"t must have shape [{batch}] (one step per sample), got {tuple(t.shape)}")
    t = t.long().to(device)
    read = [t.min(), t.max()] if t.numel() else []
    if x0 is not None and x0.numel():
        read.extend(torch.aminmax(x0.detach()))
    if not read:
        return t
    values = torch.stack([v.float() for v in read]).tolist()  # the one device-to-host read
    if t.numel() and (values[0] < 0 or values[1] >= T):
        raise InputError(f"t must lie in [0, T) = [0, {T}); got values in "
                         f"[{int(t.min())}, {int(t.max())}]. Code uses 0-based steps: paper t = code t + 1")
    if x0 is None or not x0.numel():
        return t
    lo, hi = values[-2:]
    if 0 <= lo < hi <= 1:  # said, not refused: a batch of bright images in [-1, 1] is possible
        warnings.warn(f"x0 lies in [{lo:.3g}, {hi:.3g}] with nothing below 0, like images in [0, 1]; q_sample "
                      f"takes them as data in [-1, 1] (black is -1) as given: rescale images with "
                      f"ddpm_lib.data.to_model_range", UserWarning, stacklevel=3)
    if not (-lo <= X0_LIMIT and hi <= X0_LIMIT):  # NaN compares False: refused too
        x0 = x0.detach()
        if not torch.isfinite(x0).all():
            raise InputError("x0 contains NaN or inf; find where the data were damaged (load_mnist() gives clean "
                             "data in [-1, 1])")
        raise InputError(f"x0 must be data in [-1, 1], got values in [{float(x0.min()):.4g}, {float(x0.max()):.4g}]; "
                         f"rescale pixels with ddpm_lib.data.to_model_range(x0) (max_value=255 for float pixels)")
    return t


def q_sample(schedule: Schedule, x0: Tensor, t: Union[Tensor, int],
             noise: Optional[Tensor] = None) -> Tensor:
    """Sample x_t ~ q(x_t | x_0) in one jump, Eq. 4:
    x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,  eps ~ N(0, I)."""
    check_x0_type(x0)
    t = check_timesteps(t, x0.shape[0], schedule.T, x0.device, x0=x0)  # also: x0 finite, about in [-1, 1]
    if noise is None:
        noise = torch.randn_like(x0)
    return (gather(schedule.sqrt_alpha_bars, t, x0) * x0
            + gather(schedule.sqrt_one_minus_alpha_bars, t, x0) * noise)


def q_step(schedule: Schedule, x_prev: Tensor, t: Union[Tensor, int],
           noise: Optional[Tensor] = None) -> Tensor:
    """One step of the forward chain, Eq. 2: q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)."""
    t = check_timesteps(t, x_prev.shape[0], schedule.T, x_prev.device)
    if noise is None:
        noise = torch.randn_like(x_prev)
    beta_t = gather(schedule.betas, t, x_prev)
    return (1 - beta_t).sqrt() * x_prev + beta_t.sqrt() * noise


def q_sample_iterated(schedule: Schedule, x0: Tensor, t: int,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """x_t by iterating :func:`q_step` t+1 times from x_0 (the chain Eq. 4 jumps over).

    Used to prove numerically that the closed form and the chain agree in distribution."""
    if not 0 <= t < schedule.T:
        raise InputError(f"t must lie in [0, {schedule.T}), got {t}")
    x = x0
    for s in range(t + 1):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                            device=generator.device if generator is not None else x.device)
        x = q_step(schedule, x, s, noise.to(x.device))
    return x


def q_posterior(schedule: Schedule, x0: Tensor, xt: Tensor,
                t: Union[Tensor, int]) -> Tuple[Tensor, Tensor]:
    """Forward-process posterior q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I), Eqs. 6-7:
    mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) * x_0
             + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * x_t.
    Returns (mu_tilde, beta_tilde), the latter shaped to broadcast."""
    t = check_timesteps(t, xt.shape[0], schedule.T, xt.device)
    mean = (gather(schedule.posterior_mean_coef_x0, t, xt) * x0
            + gather(schedule.posterior_mean_coef_xt, t, xt) * xt)
    return mean, gather(schedule.beta_tilde, t, xt)


def predict_x0_from_eps(schedule: Schedule, xt: Tensor, t: Union[Tensor, int], eps: Tensor) -> Tensor:
    """Invert Eq. 4 for x_0 given the noise (Eq. 15):
    x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    t = check_timesteps(t, xt.shape[0], schedule.T, xt.device)
    return gather(schedule.sqrt_recip_alpha_bars, t, xt) * xt \
        - gather(schedule.sqrt_recipm1_alpha_bars, t, xt) * eps


def predict_eps_from_x0(schedule: Schedule, xt: Tensor, t: Union[Tensor, int], x0: Tensor) -> Tensor:
    """Solve Eq. 4 for the noise: eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""
    t = check_timesteps(t, xt.shape[0], schedule.T, xt.device)
    return (gather(schedule.sqrt_recip_alpha_bars, t, xt) * xt - x0) \
        / gather(schedule.sqrt_recipm1_alpha_bars, t, xt)


def predict_v(schedule: Schedule, x0: Tensor, t: Union[Tensor, int], eps: Tensor) -> Tensor:
    """The velocity target of Salimans & Ho (2022, Sec. 4):
    v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0."""
    t = check_timesteps(t, x0.shape[0], schedule.T, x0.device)
    return gather(schedule.sqrt_alpha_bars, t, x0) * eps - gather(schedule.sqrt_one_minus_alpha_bars, t, x0) * x0


def prediction_target(schedule: Schedule, x0: Tensor, t: Union[Tensor, int], eps: Tensor) -> Tensor:
    """What a network of ``schedule.prediction`` type should output for x_t = q_sample(x0, t, eps):
    eps, x_0, or v (:func:`predict_v`)."""
    if schedule.prediction == "eps":
        return eps
    if schedule.prediction == "x0":
        return x0
    return predict_v(schedule, x0, t, eps)


def eps_and_x0(schedule: Schedule, xt: Tensor, t: Union[Tensor, int], output: Tensor) -> Tuple[Tensor, Tensor]:
    """Turn a network's output into (eps, x_0) by the closed forms, whatever it predicts:
    eps -> x_0 by Eq. 15; x_0 -> eps by Eq. 4 solved for eps; v (with a = sqrt(alpha_bar_t),
    s = sqrt(1 - alpha_bar_t), a^2 + s^2 = 1) -> x_0 = a x_t - s v and eps = s x_t + a v."""
    t = check_timesteps(t, xt.shape[0], schedule.T, xt.device)
    if schedule.prediction == "eps":
        return output, predict_x0_from_eps(schedule, xt, t, output)
    if schedule.prediction == "x0":
        return predict_eps_from_x0(schedule, xt, t, output), output
    a, s = gather(schedule.sqrt_alpha_bars, t, xt), gather(schedule.sqrt_one_minus_alpha_bars, t, xt)
    return s * xt + a * output, a * xt - s * output


def sample_timesteps(batch: int, T: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """t ~ Uniform({0, ..., T-1}) (Algorithm 1, line 3): both t = 0 and t = T-1 are trained."""
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, T, (batch,), generator=generator, device=gen_device).to(device)


# Hang et al. 2024 ("Improved Noise Schedule for Diffusion Training"): log-SNR ~ Laplace(mu, b), their best mu, b
LAPLACE_MU, LAPLACE_B = 0.0, 0.5
# TrainConfig.t_distribution="laplace": this share of a batch keeps t uniform (this library's choice, not the
# paper's: the samplers start from the highest noise levels, which the Laplace alone almost never draws)
LAPLACE_UNIFORM_SHARE = 0.5


def sample_timesteps_laplace(schedule: Schedule, batch: int, generator: Optional[torch.Generator] = None, *,
                             mu: float = LAPLACE_MU, b: float = LAPLACE_B,
                             uniform_share: float = LAPLACE_UNIFORM_SHARE) -> Tensor:
    """t drawn by noise level (Hang et al. 2024), on the CPU: each sample takes, with probability
    ``uniform_share``, t ~ Uniform({0, ..., T-1}) (Algorithm 1), else the t whose log-SNR,
    lambda_t = ln(alpha_bar_t / (1 - alpha_bar_t)), is nearest a draw of lambda ~ Laplace(mu, b)
    (density exp(-|lambda - mu| / b) / 2b). The Laplace part spends the steps on the middle noise levels,
    where SNR is near e^mu (t of about 150 to 420 of the linear schedule's 1000 with mu = 0, b = 0.5);
    alone it would almost never reach the highest levels, where every sampler starts, hence the
    uniform share. The loss weight of a sample is left as it is, so the draw reweights the objective."""
    if not 0 <= uniform_share <= 1:
        raise InputError(f"uniform_share is the share of t kept uniform, so it must be in [0, 1]; "
                         f"got {uniform_share}")
    if not b > 0:
        raise InputError(f"b is the Laplace's scale, so it must be > 0 (Hang et al. use {LAPLACE_B}); got {b}")
    log_snr = torch.log(schedule.snr().detach().double().cpu())  # lambda_t, falling with t
    uniform = torch.randint(0, schedule.T, (batch,), generator=generator)
    keep_uniform = torch.rand(batch, generator=generator, dtype=torch.float64) < uniform_share
    u = torch.rand(batch, generator=generator, dtype=torch.float64) - 0.5  # inverse CDF of the Laplace
    u = u.clamp(min=-0.5 + 1e-12)  # rand() = 0 would give lambda = -inf, which every t is equally far from
    wanted = mu - b * torch.sign(u) * torch.log1p(-2 * u.abs())
    nearest = (wanted[:, None] - log_snr[None, :]).abs().argmin(dim=1)
    return torch.where(keep_uniform, uniform, nearest)


def min_snr_weight(schedule: Schedule, t: Tensor, gamma: float) -> Tensor:
    """The Min-SNR-gamma weight (Hang et al. 2023) of the loss on ``schedule.prediction``'s own
    target at steps t: min(SNR, gamma) / SNR (eps), min(SNR, gamma) (x0), min(SNR, gamma) / (SNR + 1) (v)."""
    if not gamma > 0:
        raise InputError(f"min_snr_gamma must be > 0, got {gamma}")
    snr = schedule.snr().to(t.device)[t]
    clipped = snr.clamp(max=gamma)
    if schedule.prediction == "eps":
        return clipped / snr
    if schedule.prediction == "x0":
        return clipped
    return clipped / (snr + 1)


def simple_loss(model: torch.nn.Module, schedule: Schedule, x0: Tensor, *,
                t: Optional[Tensor] = None, noise: Optional[Tensor] = None,
                y: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                reduction: str = "mean", min_snr_gamma: Optional[float] = None) -> Tensor:
    """L_simple, Eq. 14 / Algorithm 1: || eps - eps_theta(sqrt(alpha_bar_t) x_0
    + sqrt(1 - alpha_bar_t) eps, t) ||^2 with t uniform and eps ~ N(0, I).

    For a network that predicts x_0 or v (``schedule.prediction``) the same mean squared error
    on its own target (:func:`prediction_target`), unweighted. In x_0 terms these weight the
    error at step t by SNR(t) (eps), 1 (x0) and SNR(t) + 1 (v) (Salimans & Ho 2022, Sec. 4):
    eps-prediction spends its capacity at small t, x0-prediction at large t.

    ``min_snr_gamma`` = gamma weights each sample so that its x_0 error counts min(SNR(t), gamma)
    (Min-SNR-gamma, Hang et al. 2023, Eq. 9): the eps loss times min(SNR, gamma) / SNR, the x_0
    loss times min(SNR, gamma), the v loss times min(SNR, gamma) / (SNR + 1). It stops the
    nearly noise-free steps, where SNR is up to 10^4, from dominating training.

    ``reduction="none"`` gives one loss per sample (useful for loss-per-t plots). x0 and t are
    checked by :func:`q_sample` (float data about in [-1, 1], integer t in [0, T))."""
    check_x0_type(x0)
    batch = x0.shape[0]
    if t is None:
        t = sample_timesteps(batch, schedule.T, x0.device, generator)
    if noise is None:
        gen_device = generator.device if generator is not None else x0.device
        noise = torch.randn(x0.shape, generator=generator, device=gen_device,
                            dtype=x0.dtype).to(x0.device)
    xt = q_sample(schedule, x0, t, noise)
    output = model(xt, t) if y is None else model(xt, t, y)
    target = prediction_target(schedule, x0, t, noise)
    per_sample = F.mse_loss(output, target, reduction="none").flatten(1).mean(1)
    if min_snr_gamma is not None:
        per_sample = per_sample * min_snr_weight(schedule, t, min_snr_gamma).to(per_sample.dtype)
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise InputError(f"reduction must be 'mean' or 'none', got {reduction!r}")
