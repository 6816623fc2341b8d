"""The forward process q and the training objective (Ho et al. 2020, Sec. 2-3).

Plain functions of (schedule, x, t). Time indices are 0-based: t = 0..T-1 in code is the
paper's t = 1..T.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from .schedules import Schedule

Tensor = torch.Tensor


def gather(coeffs: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """Pick ``coeffs[t]`` for each sample of a batch, shaped [B, 1, 1, ...] to broadcast
    against ``like`` (a [B, ...] tensor)."""
    out = coeffs.to(like.device)[t.to(like.device)]
    return out.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def check_timesteps(t: Union[Tensor, int], batch: int, T: int, device: torch.device) -> Tensor:
    """Return ``t`` as a long tensor of shape [batch]; raise a clear error if it is not an
    integer in [0, T) or does not match the batch."""
    if isinstance(t, int):
        t = torch.full((batch,), t, dtype=torch.long, device=device)
    if not isinstance(t, Tensor):
        raise TypeError(f"t must be an int or a tensor of ints, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex():
        raise TypeError(f"t must hold integer steps in [0, {T}), got dtype {t.dtype}; use t.long()")
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must have shape [{batch}] (one step per sample), got {tuple(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= T):
        raise ValueError(f"t must lie in [0, T) = [0, {T}); got values in "
                         f"[{int(t.min())}, {int(t.max())}]. Code uses 0-based steps: paper t = code t + 1")
    return t.long().to(device)


def q_sample(schedule: Schedule, x0: Tensor, t: Union[Tensor, int],
             noise: Optional[Tensor] = None) -> Tensor:
    """Sample x_t ~ q(x_t | x_0) in one jump, Eq. 4:
    x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,  eps ~ N(0, I)."""
    t = check_timesteps(t, x0.shape[0], schedule.T, x0.device)
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
        raise ValueError(f"t must lie in [0, {schedule.T}), got {t}")
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


def simple_loss(model: torch.nn.Module, schedule: Schedule, x0: Tensor, *,
                t: Optional[Tensor] = None, noise: Optional[Tensor] = None,
                y: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                reduction: str = "mean") -> Tensor:
    """L_simple, Eq. 14 / Algorithm 1: || eps - eps_theta(sqrt(alpha_bar_t) x_0
    + sqrt(1 - alpha_bar_t) eps, t) ||^2 with t uniform and eps ~ N(0, I).

    For a network that predicts x_0 or v (``schedule.prediction``) the same mean squared error
    on its own target (:func:`prediction_target`), unweighted. In x_0 terms these weight the
    error at step t by SNR(t) (eps), 1 (x0) and SNR(t) + 1 (v) (Salimans & Ho 2022, Sec. 4):
    eps-prediction spends its capacity at small t, x0-prediction at large t.

    ``reduction="none"`` gives one loss per sample (useful for loss-per-t plots)."""
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
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
