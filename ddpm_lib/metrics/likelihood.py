"""The variational bound in bits per dimension (Ho et al. 2020, Eq. 5 with the decoder of Eq. 13).

    L = L_T + sum_{t>1} L_{t-1} + L_0
    L_T     = KL(q(x_T | x_0) || N(0, I))                        (no parameters)
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))  (Eqs. 6-7 vs the model)
    L_0     = -log p_theta(x_0 | x_1), a Gaussian integrated over each pixel's 8-bit bin (Eq. 13)

In code steps (0-based) the KL terms sit at t = 1..T-1 and L_0 at t = 0. Each term is an
expectation over x_t ~ q(x_t | x_0); we draw one x_t per image and term. With ``t_samples``
the sum over t is estimated by stratified sampling (one random t per stratum, weighted by the
stratum's size): unbiased, and the error bar covers both images and t draws. Divided by
the number of pixels times ln 2 (784 ln 2 for MNIST) this is bits/dim of the discrete 8-bit images, comparable with a file compressor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..config import EvalConfig
from ..data import check_model_range
from ..decoder import discretized_gaussian_log_likelihood
from ..fitted_variance import VarianceFit
from ..diffusion import check_timesteps, eps_and_x0, gather, q_posterior, q_sample
from ..models import eval_mode, model_device
from ..schedules import Schedule, check_variance

# bits/dim draws at least one t in each quarter of t = 1..T-1 (stratified), so at least this many per image
MIN_T_SAMPLES = 4

Tensor = torch.Tensor


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + (logvar1 - logvar2).exp()
                  + (mean1 - mean2).square() * (-logvar2).exp())


def prior_kl(schedule: Schedule, x0: Tensor) -> Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per image (summed over pixels), in nats."""
    t = torch.full((x0.shape[0],), schedule.T - 1, dtype=torch.long, device=x0.device)
    mean = gather(schedule.sqrt_alpha_bars, t, x0).double() * x0.double()
    logvar = torch.log1p(-gather(schedule.alpha_bars, t, x0).double()).expand_as(mean)
    zero = torch.zeros_like(mean)
    return normal_kl(mean, logvar, zero, zero).flatten(1).sum(1)


@torch.no_grad()
def vlb_term(model: torch.nn.Module, schedule: Schedule, x0: Tensor, t: Tensor, *,
             variance: Union[str, VarianceFit] = "beta_tilde", clip_x0: bool = True,
             noise: Optional[Tensor] = None) -> Tensor:
    """One term of Eq. 5 per image, in nats: L_{t-1} (the KL of Eqs. 6-7 against the model's
    Gaussian) where t >= 1, the decoder NLL L_0 of Eq. 13 where t == 0.

    The model's mean is the posterior mean with x_0 predicted from eps (Eq. 15), clipped to
    [-1, 1] like the sampler does (``clip_x0``); its variance is beta_tilde_t or beta_t
    (``variance``), as in :func:`ddpm_lib.samplers.ddpm_step` (at t = 0 both use beta_tilde_1), or the one
    fitted to the model, sigma*_t^2 of :meth:`ddpm_lib.fitted_variance.VarianceFit.ddpm_variances` (also
    the decoder's at t = 0)."""
    if not isinstance(variance, VarianceFit):
        check_variance(variance)
    t = check_timesteps(t, x0.shape[0], schedule.T, x0.device)
    xt = q_sample(schedule, x0, t, noise)
    _, x0_hat = eps_and_x0(schedule, xt, t, model(xt, t))  # Eq. 15 for an eps-predictor
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
    mean_model, _ = q_posterior(schedule, x0_hat, xt, t)
    mean_true, _ = q_posterior(schedule, x0, xt, t)
    log_beta_tilde = gather(schedule.log_beta_tilde_clipped, t, x0).double()
    if isinstance(variance, VarianceFit):  # sigma*_t^2 = beta_tilde_t + c_t^2 e_t
        logvar_model = gather(variance.ddpm_variances(schedule).log(), t, x0).double()
    elif variance == "beta":  # beta_t, except at t = 0 where beta_tilde_1 is used (as Ho et al.)
        log_beta = gather(schedule.betas, t, x0).double().log()
        logvar_model = torch.where((t == 0).reshape(-1, *[1] * (x0.ndim - 1)), log_beta_tilde, log_beta)
    else:
        logvar_model = log_beta_tilde
    kl = normal_kl(mean_true.double(), log_beta_tilde.expand_as(mean_true),  # q's variance is beta_tilde
                   mean_model.double(), logvar_model.expand_as(mean_true)).flatten(1).sum(1)
    nll = -discretized_gaussian_log_likelihood(x0, mean_model, 0.5 * logvar_model.expand_as(mean_model)).flatten(1).sum(1)
    return torch.where(t == 0, nll, kl)


@dataclass
class VLBReport:
    """The bound in bits/dim: ``total`` = mean over images, ``stderr`` its standard error;
    ``terms``: L_T, L_0 and the L_{t-1} sums over each quarter of t, also in bits/dim."""

    total: float
    stderr: float
    n: int
    t_samples: Optional[int]
    terms: Dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        how = "all t" if self.t_samples is None else f"{self.t_samples} stratified t per image"
        parts = ", ".join(f"{k} {v:.3f}" for k, v in self.terms.items())
        return f"{self.total:.3f} ± {self.stderr:.3f} bits/dim (n={self.n} images, {how}): {parts}"


@torch.no_grad()
def bits_per_dim(model: torch.nn.Module, schedule: Schedule, x0: Tensor, *,
                 t_samples: Optional[int] = EvalConfig.t_samples, variance: Union[str, VarianceFit] = "beta_tilde",
                 clip_x0: bool = True,
                 batch_size: int = 250, seed: int = 0, progress: bool = True) -> VLBReport:
    """Estimate the variational bound -log p(x_0) <= L (Eq. 5) on the 8-bit images ``x0``
    ([N, 1, 28, 28] in [-1, 1]) in bits/dim.

    ``t_samples=None`` evaluates every t (T model calls per image); an int k splits each quarter
    of t = 1..T-1 into ceil(k/4) strata and draws one t per stratum (about k + 1 model calls
    per image). Results depend on ``seed`` and ``batch_size`` (the order of random draws). ``variance``: a
    fixed one by name, or a :class:`~ddpm_lib.fitted_variance.VarianceFit` of this model (see :func:`vlb_term`)."""
    if not isinstance(x0, Tensor) or x0.ndim != 4:
        raise InputError(f"x0 must be a [N, C, H, W] tensor of 8-bit images in [-1, 1], got {getattr(x0, 'shape', x0)}")
    check_model_range(x0, "x0")
    levels = (x0 + 1) * 127.5
    if (levels - levels.round()).abs().max() > 1e-3:
        raise InputError("x0 must hold 8-bit images scaled to [-1, 1] (k / 127.5 - 1): the "
                         "discrete decoder of Eq. 13 needs the original pixel levels")
    T, n, dims = schedule.T, x0.shape[0], x0[0].numel()
    device = model_device(model)
    schedule = schedule.to(device)
    quarters = [np.arange(max(1, q * T // 4), (q + 1) * T // 4) for q in range(4)]  # code t = 1..T-1
    if t_samples is not None and t_samples < MIN_T_SAMPLES:
        raise InputError(f"t_samples must be >= {MIN_T_SAMPLES} (one per quarter of t) or None, got {t_samples}")
    per_q = None if t_samples is None else math.ceil(t_samples / 4)
    # every t once (singletons) or ceil(k/4) strata per quarter; empty ones (small T) add nothing
    strata = [(q, s) for q, idx in enumerate(quarters) if len(idx)
              for s in np.array_split(idx, len(idx) if per_q is None else min(per_q, len(idx)))]
    gen = torch.Generator().manual_seed(seed)
    per_image: Dict[str, Tensor] = {k: torch.zeros(n, dtype=torch.float64)
                                    for k in ("L_T", "L_0", *(f"L_t q{q + 1}" for q in range(4)))}
    bar = tqdm(total=(len(strata) + 1) * math.ceil(n / batch_size), desc="bits/dim", disable=not progress)
    with eval_mode(model), bar:
        for lo in range(0, n, batch_size):
            x = x0[lo:lo + batch_size].to(device)
            b = x.shape[0]
            per_image["L_T"][lo:lo + b] = prior_kl(schedule, x).cpu()
            noise = torch.randn(x.shape, generator=gen).to(device)
            zero = torch.zeros(b, dtype=torch.long, device=device)
            per_image["L_0"][lo:lo + b] = vlb_term(model, schedule, x, zero, variance=variance,
                                                   clip_x0=clip_x0, noise=noise).cpu()
            bar.update(1)
            for q, stratum in strata:
                pick = torch.randint(0, len(stratum), (b,), generator=gen)
                t = torch.as_tensor(stratum, dtype=torch.long)[pick].to(device)
                noise = torch.randn(x.shape, generator=gen).to(device)
                term = vlb_term(model, schedule, x, t, variance=variance, clip_x0=clip_x0, noise=noise)
                per_image[f"L_t q{q + 1}"][lo:lo + b] += len(stratum) * term.cpu()
                bar.update(1)
    to_bpd = 1.0 / (dims * math.log(2))
    total = sum(per_image.values()) * to_bpd
    return VLBReport(total=total.mean().item(), stderr=(total.std() / math.sqrt(n)).item() if n > 1 else float("nan"),
                     n=n, t_samples=t_samples,
                     terms={k: (v.mean() * to_bpd).item() for k, v in per_image.items()})
