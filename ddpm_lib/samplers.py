"""Reverse-process samplers: ancestral DDPM (Ho et al. 2020, Algorithm 2), DDIM
(Song, Meng & Ermon 2021, Eq. 12) and DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), the
deterministic solver and its stochastic (SDE) form.

Each sampler is the same loop (:func:`reverse_loop`) over its own one-step function
(:func:`ddpm_step`, :func:`ddim_step`, :func:`dpm_solver_step`), a plain function of (schedule,
eps or x0, x_t, t). Noise comes from a ``torch.Generator`` (CPU by default, so a seed gives the
same images on every device), the model's device is used for the network, and everything runs
under ``torch.no_grad``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm

from .errors import InputError
from .config import SAMPLERS, SPACINGS, SamplerConfig
from .diffusion import eps_and_x0, gather, predict_eps_from_x0, predict_x0_from_eps
from .guidance import eps_function
from .fitted_variance import VarianceFit
from .models import cpu_channels_last, eval_mode, image_shape_of, model_device
from .models.checks import check_labels
from .schedules import Schedule, check_model_schedule, check_variance, reverse_variance

Tensor = torch.Tensor


def ddpm_step(schedule: Schedule, eps: Tensor, xt: Tensor, t: int, *,
              noise: Optional[Tensor] = None, variance: Union[str, VarianceFit] = "beta_tilde",
              clip_x0: bool = True) -> Tensor:
    """One reverse step x_t -> x_{t-1}, Algorithm 2 line 4 (Eq. 11):

        x_{t-1} = 1/sqrt(alpha_t) * (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) + sigma_t z

    with sigma_t^2 = beta_tilde_t (``variance="beta_tilde"``, Eq. 7) or beta_t
    (``variance="beta"``), or the variance fitted to the model (a
    :class:`~ddpm_lib.fitted_variance.VarianceFit`: beta_tilde_t + c_t^2 e_t, Bao et al. 2022), and no
    noise at the last step (t = 0 in code, t = 1 in the paper).

    ``clip_x0=True`` (as in Ho et al.'s released code) first predicts x_0 by Eq. 15, clips it
    to the data range [-1, 1] and takes the posterior mean of Eq. 7 instead; without clipping
    the two forms are algebraically identical.
    """
    fit = variance if isinstance(variance, VarianceFit) else None
    if fit is None:
        check_variance(variance)
    if not 0 <= t < schedule.T:
        raise InputError(f"t must lie in [0, {schedule.T}), got {t}")
    tt = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
    if clip_x0:
        x0 = predict_x0_from_eps(schedule, xt, tt, eps).clamp(-1, 1)
        mean = (gather(schedule.posterior_mean_coef_x0, tt, xt) * x0
                + gather(schedule.posterior_mean_coef_xt, tt, xt) * xt)
    else:
        beta_t = gather(schedule.betas, tt, xt)
        mean = (xt - beta_t / gather(schedule.sqrt_one_minus_alpha_bars, tt, xt) * eps) \
            / gather(schedule.alphas, tt, xt).sqrt()
    if t == 0:
        return mean  # Algorithm 2: z = 0 at the last step
    if noise is None:
        noise = torch.randn_like(xt)
    sigma2 = reverse_variance(schedule, variance) if fit is None else fit.ddpm_variances(schedule)
    return mean + gather(sigma2, tt, xt).sqrt() * noise


def ddim_timesteps(T: int, num_steps: int) -> List[int]:
    """The DDIM sub-sequence tau: ``num_steps`` distinct steps evenly spread from T-1 down to 0
    (both ends included), in sampling order."""
    if not isinstance(num_steps, int) or num_steps < 1:
        raise InputError(f"num_steps must be a positive integer, got {num_steps!r}")
    if num_steps > T:
        raise InputError(f"num_steps={num_steps} exceeds the model's T={T}: a sampler cannot "
                         f"take more steps than the forward process has; use num_steps <= {T}")
    if num_steps == 1:
        return [T - 1]
    span = (T - 1) / (num_steps - 1)
    return [int(T - 1 - i * span + 0.5) if i < num_steps - 1 else 0 for i in range(num_steps)]


def trailing_timesteps(T: int, num_steps: int) -> List[int]:
    """``num_steps`` steps ending one step-width above 0 ("trailing" spacing, Lin et al. 2024,
    diffusers' ``timestep_spacing="trailing"``): t_i = round(T - i T / num_steps) - 1, i = 0 ..
    num_steps - 1, so 999, 949, ..., 49 for T = 1000 and 20 steps. The sampler's last step goes from
    t = T / num_steps - 1 straight to the clean image, instead of calling the network at t = 0,
    where the noise (sigma = 0.01) is too small for the network to see."""
    ddim_timesteps(T, num_steps)  # the same checks
    return [int(round(T - i * T / num_steps)) - 1 for i in range(num_steps)]


def spaced_timesteps(T: int, num_steps: int, spacing: str) -> List[int]:
    """The sampler's path for a ``spacing`` of :data:`ddpm_lib.config.SPACINGS`: ``"even"``
    (:func:`ddim_timesteps`, T-1 .. 0) or ``"trailing"`` (:func:`trailing_timesteps`, T-1 .. T/num_steps - 1)."""
    if spacing == "even":
        return ddim_timesteps(T, num_steps)
    if spacing == "trailing":
        return trailing_timesteps(T, num_steps)
    raise InputError(f"unknown timestep spacing {spacing!r}; choose one of {SPACINGS}")


def ddim_step(schedule: Schedule, eps: Tensor, xt: Tensor, t: int, t_prev: int, *,
              eta: float = 0.0, noise: Optional[Tensor] = None, clip_x0: bool = True,
              fit: Optional[VarianceFit] = None) -> Tensor:
    """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, Eq. 12):

        x_prev = sqrt(alpha_bar_prev) * x0_pred
               + sqrt(1 - alpha_bar_prev - sigma^2) * eps + sigma * z,
        sigma  = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t))
                     * sqrt(1 - alpha_bar_t / alpha_bar_prev)              (Eq. 16)

    with x0_pred from Eq. 15 and alpha_bar_prev = 1 when t_prev = -1 (the end). eta = 0 is
    deterministic; eta = 1 with every step is DDPM with sigma^2 = beta_tilde. With
    ``clip_x0`` the predicted x_0 is clipped to [-1, 1] and eps re-derived from it.

    With ``fit`` (a :class:`~ddpm_lib.fitted_variance.VarianceFit` of this model) the mean stays that of
    the posterior with noise sigma^2 above, and the noise added is the variance that fits the model's
    error, sigma^2 + c^2 e_t (Bao et al. 2022; "Analytic-DDIM" for eta = 0): noise even where eta = 0.
    """
    if not 0 <= eta < float("inf"):  # NaN too: it would turn every image into NaN
        raise InputError(f"eta must be a finite number >= 0, got {eta}")
    if not (0 <= t < schedule.T and -1 <= t_prev < t):
        raise InputError(f"need 0 <= t < T={schedule.T} and -1 <= t_prev < t, got t={t}, t_prev={t_prev}")
    tt = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
    x0 = predict_x0_from_eps(schedule, xt, tt, eps)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = predict_eps_from_x0(schedule, xt, tt, x0)
    # 1 - alpha_bar from the float64-derived sqrt(1 - alpha_bar): 1 - alpha_bar computed in
    # float32 keeps only ~3 digits near t = 0
    one = torch.ones((), device=xt.device, dtype=xt.dtype)
    zero = torch.zeros((), device=xt.device, dtype=xt.dtype)
    a_t = schedule.alpha_bars[t].to(xt.device, xt.dtype)
    m_t = schedule.sqrt_one_minus_alpha_bars[t].to(xt.device, xt.dtype) ** 2  # 1 - alpha_bar_t
    a_prev = schedule.alpha_bars[t_prev].to(xt.device, xt.dtype) if t_prev >= 0 else one
    m_prev = schedule.sqrt_one_minus_alpha_bars[t_prev].to(xt.device, xt.dtype) ** 2 if t_prev >= 0 else zero
    # 1 - a_t/a_prev = (a_prev - a_t)/a_prev = (m_t - m_prev)/a_prev: take the form without cancellation
    gap = (a_prev - a_t) if float(a_prev) < 0.5 else (m_t - m_prev)
    sigma = eta * (m_prev / m_t * gap / a_prev).sqrt()  # Eq. 16
    x_prev = a_prev.sqrt() * x0 + (m_prev - sigma**2).clamp(min=0).sqrt() * eps
    if fit is not None and t_prev >= 0:
        sigma = torch.tensor(fit.variance(schedule, t, t_prev, float(sigma) ** 2), dtype=xt.dtype).sqrt()
    if (eta > 0 or fit is not None) and t_prev >= 0:
        if noise is None:
            noise = torch.randn_like(xt)
        x_prev = x_prev + sigma.to(xt.device) * noise
    return x_prev


class SampleTrajectory(NamedTuple):
    """What a sampler returns when ``trajectory_at`` is given: the final images and
    ``{t: x_t}`` for the steps asked for (x_t is the image entering step t, on the CPU)."""

    images: Tensor
    trajectory: Dict[int, Tensor]


SampleResult = Union[Tensor, SampleTrajectory]  # images, or images and trajectory when asked for


# how many image-sized float32 tensors a sampler holds at once (x_t, the noise, the network's output,
# x0, a solver's previous x0, temporaries of a step's arithmetic): sizes beyond memory are refused
# up front (:func:`check_sample_count`), before any noise is drawn
COPIES_WHILE_SAMPLING = 8


def available_memory(device: torch.device) -> Optional[int]:
    """Bytes a sampler may use on ``device``: a GPU's free memory, else the memory the operating system
    reports as available (Linux ``MemAvailable``, else all physical memory); None where unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_sample_count(n: Any, image_shape: Sequence[int], device: torch.device) -> int:
    """Return ``n`` as an int if a sampler can draw that many images of ``image_shape`` on ``device``;
    raise :class:`InputError` for a count that is not a whole number >= 1, or one whose images
    (:data:`COPIES_WHILE_SAMPLING` float32 copies) need more memory than is available, naming the limit."""
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)  # int, numpy or one-element integer tensor; 2.5 and True are not counts
    except TypeError:
        raise InputError(f"n must be a whole number of images to sample, got {n!r}") from None
    if n < 1:
        raise InputError(f"n must be >= 1 (number of images to sample), got {n}")
    per_image = COPIES_WHILE_SAMPLING * 4 * math.prod(image_shape)
    free = available_memory(device)
    if free is not None and n * per_image > free:
        shape = "x".join(str(d) for d in image_shape)
        raise InputError(f"n={n} images of {shape} need about {n * per_image / 2**30:.3g} GiB while sampling, more "
                         f"than the {free / 2**30:.3g} GiB available on {device.type}: sample at most "
                         f"{free // per_image} at a time, in several calls")
    return n


def _start(n: int, generator: Optional[torch.Generator], seed: Optional[int]) -> torch.Generator:
    """The sampler's noise source: the given generator, a CPU one seeded with ``seed``, or
    (neither given) one seeded from torch's global RNG."""
    if generator is not None and seed is not None:
        raise InputError("pass either generator or seed, not both")
    if generator is not None:
        return generator
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)))
    return torch.Generator().manual_seed(seed)


def _randn(shape: Sequence[int], generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randn(tuple(shape), generator=generator, device=generator.device).to(device)


def _check_trajectory(trajectory_at: Optional[Iterable[int]], path: Sequence[int]) -> set:
    wanted = set(int(t) for t in trajectory_at or ())
    missing = wanted - set(path)
    if missing:
        raise InputError(f"trajectory_at asks for steps {sorted(missing)} that this sampler never "
                         f"visits; pick from its path (first {list(path)[:5]}...)")
    return wanted


# step(eps, x_t, t, t_prev, noise) -> x_{t_prev}; noise is None where the step adds none
StepFn = Callable[[Tensor, Tensor, int, int, Optional[Tensor]], Tensor]


def _chunked(model: torch.nn.Module, y: Optional[Tensor], guidance: float, n: int, device: torch.device,
             chunk: int) -> Callable[[Tensor, Tensor], Tensor]:
    """eps_function for n samples that calls the network on at most ``chunk`` of them at a time;
    only the network calls are split, so the noise and the images are those of one batch."""
    predict = eps_function(model, y, guidance, n, device)  # checks the labels once, for all n
    if n <= chunk:
        return predict
    labels = None if y is None else check_labels(y, n, model.null_label)
    parts = [eps_function(model, None if labels is None else labels[i:i + chunk], guidance,
                          min(chunk, n - i), device) for i in range(0, n, chunk)]
    return lambda x, t: torch.cat([p(xc, tc) for p, xc, tc in zip(parts, x.split(chunk), t.split(chunk))])


def reverse_loop(model: torch.nn.Module, schedule: Schedule, n: int, path: Sequence[int], step: StepFn, *,
                 noisy: Callable[[int, int], bool], image_shape: Optional[Sequence[int]] = None,
                 y: Optional[Tensor] = None, guidance: float = 0.0,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 x_T: Optional[Tensor] = None, trajectory_at: Optional[Iterable[int]] = None,
                 progress: bool = True, desc: str = "sampling",
                 cpu_batch: int = SamplerConfig.cpu_batch) -> SampleResult:
    """The loop every sampler shares: x_T ~ N(0, I) (or the given ``x_T``), then for each t of
    ``path`` (decreasing; t_prev is the next entry, -1 after the last) x <- step(eps_theta(x, t),
    x, t, t_prev, z) with fresh noise z where ``noisy(t, t_prev)``. A network that predicts x0 or
    v (``schedule.prediction``) has its output turned into eps first (:func:`eps_and_x0`). The model runs in eval mode
    under ``torch.no_grad``; noise comes from ``generator`` (or a CPU one seeded with ``seed``). On a
    CPU the network sees at most ``cpu_batch`` images per call (the noise and the images are those of
    one batch)."""
    if isinstance(cpu_batch, bool) or not isinstance(cpu_batch, int) or cpu_batch < 1:
        raise InputError(f"cpu_batch must be a positive integer, got {cpu_batch!r}")
    device = model_device(model)
    image_shape = image_shape_of(model, image_shape)
    n = check_sample_count(n, image_shape, device)  # before anything is built for n images
    gen = _start(n, generator, seed)
    check_model_schedule(model, schedule)  # once per call: the schedule it was trained with, if it remembers one
    path = list(path)
    if not path or any(b >= a for a, b in zip(path, path[1:])) or not 0 <= path[-1] <= path[0] < schedule.T:
        raise InputError(f"timesteps must be strictly decreasing within [0, {schedule.T}), got {path[:5]}...")
    wanted = _check_trajectory(trajectory_at, path)
    predict = _chunked(model, y, guidance, n, device, cpu_batch if device.type == "cpu" else n)
    if x_T is not None:
        if tuple(x_T.shape) != (n, *image_shape):
            raise InputError(f"x_T must have shape {[n, *image_shape]}, got {list(x_T.shape)}")
        if not torch.isfinite(x_T).all():
            raise InputError("x_T contains NaN or inf; start from torch.randn noise")
    x = _randn((n, *image_shape), gen, device) if x_T is None else x_T.to(device)
    trajectory: Dict[int, Tensor] = {}
    with torch.no_grad(), eval_mode(model), cpu_channels_last(model):
        for i, t in enumerate(tqdm(path, desc=desc, disable=not progress, leave=False)):
            if t in wanted:
                trajectory[t] = x.cpu()
            t_prev = path[i + 1] if i + 1 < len(path) else -1
            tt = torch.full((n,), t, dtype=torch.long, device=device)
            noise = _randn(x.shape, gen, device) if noisy(t, t_prev) else None
            out = predict(x, tt)  # the network's (guided) output: eps, x0 or v
            eps = out if schedule.prediction == "eps" else eps_and_x0(schedule, x, tt, out)[0]
            x = step(eps, x, t, t_prev, noise)
    if not torch.isfinite(x).all():  # once per call: NaN images are never what was asked for
        raise InputError("sampling gave NaN or inf images: the model's weights or outputs are not finite "
                         "(a diverged training run?); sample an earlier checkpoint or the shipped weights")
    return SampleTrajectory(x, trajectory) if trajectory_at is not None else x


def ddpm_sample(model: torch.nn.Module, schedule: Schedule, n: int, *,
                image_shape: Optional[Sequence[int]] = None, y: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                guidance: float = 0.0, variance: Union[str, VarianceFit] = "beta_tilde", clip_x0: bool = True,
                trajectory_at: Optional[Iterable[int]] = None, progress: bool = True,
                cpu_batch: int = SamplerConfig.cpu_batch) -> SampleResult:
    """Ancestral sampling, Algorithm 2: x_T ~ N(0, I), then :func:`ddpm_step` for
    t = T-1 .. 0 (code indices). Returns images in about [-1, 1], shape [n, *image_shape]; the
    shape is the model's own (its config's ``in_channels`` and ``image_size``) unless given.

    ``y`` (labels, or one int for all) conditions a class-conditional model, with
    classifier-free ``guidance`` weight w (:func:`guided_eps`). With ``trajectory_at``
    (steps t), returns a :class:`SampleTrajectory` (images, {t: x_t}). ``cpu_batch``: see
    :func:`reverse_loop`. ``variance``: see :func:`ddpm_step`."""
    if not isinstance(variance, VarianceFit):
        check_variance(variance)
    schedule = schedule.to(model_device(model))

    def step(eps: Tensor, x: Tensor, t: int, t_prev: int, noise: Optional[Tensor]) -> Tensor:
        return ddpm_step(schedule, eps, x, t, noise=noise, variance=variance, clip_x0=clip_x0)

    return reverse_loop(model, schedule, n, range(schedule.T - 1, -1, -1), step,
                        noisy=lambda t, t_prev: t > 0, image_shape=image_shape, y=y, guidance=guidance,
                        generator=generator, seed=seed, trajectory_at=trajectory_at,
                        progress=progress, desc="DDPM sampling", cpu_batch=cpu_batch)


def ddim_sample(model: torch.nn.Module, schedule: Schedule, n: int, *, steps: int = SamplerConfig.steps,
                eta: float = 0.0, timesteps: Optional[Sequence[int]] = None,
                image_shape: Optional[Sequence[int]] = None, y: Optional[Tensor] = None,
                guidance: float = 0.0, generator: Optional[torch.Generator] = None,
                seed: Optional[int] = None, clip_x0: bool = True, x_T: Optional[Tensor] = None,
                trajectory_at: Optional[Iterable[int]] = None, progress: bool = True,
                cpu_batch: int = SamplerConfig.cpu_batch, fit: Optional[VarianceFit] = None) -> SampleResult:
    """DDIM sampling (Song et al. 2021) over ``steps`` steps spread by :func:`ddim_timesteps`
    (or an explicit decreasing ``timesteps`` list), with :func:`ddim_step` between consecutive
    steps and a final step to t_prev = -1. ``x_T`` fixes the starting noise (e.g. for
    interpolation). Returns like :func:`ddpm_sample`.

    ``eta`` is 0 unless given: deterministic DDIM as the paper defines it. :func:`sample`, the
    project's default way to sample, uses eta = 1 (:class:`SamplerConfig`, measured better). ``fit``: the
    variance fitted to the model (:func:`ddim_step`)."""
    if not 0 <= eta < float("inf"):  # NaN too: it would turn every image into NaN
        raise InputError(f"eta must be a finite number >= 0, got {eta}")
    schedule = schedule.to(model_device(model))
    path = list(timesteps) if timesteps is not None else ddim_timesteps(schedule.T, steps)

    def step(eps: Tensor, x: Tensor, t: int, t_prev: int, noise: Optional[Tensor]) -> Tensor:
        return ddim_step(schedule, eps, x, t, t_prev, eta=eta, noise=noise, clip_x0=clip_x0, fit=fit)

    return reverse_loop(model, schedule, n, path, step,
                        noisy=lambda t, t_prev: (eta > 0 or fit is not None) and t_prev >= 0,
                        image_shape=image_shape, y=y, guidance=guidance, generator=generator, seed=seed,
                        x_T=x_T, trajectory_at=trajectory_at, progress=progress, desc="DDIM sampling",
                        cpu_batch=cpu_batch)


def _log_snr(schedule: Schedule, t: int) -> float:
    """lambda_t = log(alpha_t / sigma_t), half the log-SNR, in float64 (a Python float), with
    alpha_t = sqrt(alpha_bar_t) and sigma_t = sqrt(1 - alpha_bar_t) taken from the stored square roots
    (derived in float64, so sigma_t keeps its digits near t = 0); lambda_{-1} = +inf (sigma = 0)."""
    if t < 0:
        return math.inf
    return math.log(float(schedule.sqrt_alpha_bars[t])) - math.log(float(schedule.sqrt_one_minus_alpha_bars[t]))


def dpm_solver_step(schedule: Schedule, x0: Tensor, xt: Tensor, t: int, t_prev: int, *,
                    x0_prev: Optional[Tensor] = None, t_last: Optional[int] = None,
                    noise: Optional[Tensor] = None) -> Tensor:
    """One DPM-Solver++(2M) step x_t -> x_{t_prev} (Lu et al. 2022, Algorithm 2), given the data
    prediction x0 = x_theta(x_t, t) and, for the second-order update, the previous step's
    prediction ``x0_prev`` made at time ``t_last`` (> t):

        lambda = log(alpha / sigma),  alpha = sqrt(alpha_bar),  sigma = sqrt(1 - alpha_bar)
        h      = lambda_{t_prev} - lambda_t
        x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (e^{-h} - 1) D
        D      = x0                                                   first order (= DDIM, eta = 0)
        D      = (1 + 1/(2r)) x0 - 1/(2r) x0_prev,  r = h_last / h    second order,
                 h_last = lambda_t - lambda_{t_last}

    With ``noise`` z the step is the SDE form, SDE-DPM-Solver++(2M) (Lu et al. 2022, the solver
    for the reverse diffusion SDE; diffusers' ``algorithm_type="sde-dpmsolver++"``), with the same D:

        x_prev = (sigma_prev / sigma_t) e^{-h} x_t + alpha_prev (1 - e^{-2h}) D
                 + sigma_prev sqrt(1 - e^{-2h}) z

    whose first-order step (D = x0) is DDIM with eta = 1 (:func:`ddim_step`).

    The last step, to t_prev = -1 (alpha_prev = 1, sigma_prev = 0, h = inf), is first order and
    returns x0 whatever ``x0_prev`` or ``noise`` is (r = 0 there), as diffusers' DPMSolverMultistepScheduler
    does with its default final_sigmas_type="zero". Coefficients are computed in float64.
    """
    if not (0 <= t < schedule.T and -1 <= t_prev < t):
        raise InputError(f"need 0 <= t < T={schedule.T} and -1 <= t_prev < t, got t={t}, t_prev={t_prev}")
    if (x0_prev is None) != (t_last is None):
        raise InputError("the second-order step needs both x0_prev and t_last (the step x0_prev was "
                         "predicted at); pass neither for a first-order step")
    if t_last is not None and not t < t_last < schedule.T:
        raise InputError(f"t_last must be an earlier step of the path, t < t_last < T={schedule.T}; "
                         f"got t={t}, t_last={t_last}")
    for name, other in (("x0", x0), ("x0_prev", x0_prev), ("noise", noise)):
        if other is not None and other.shape != xt.shape:
            raise InputError(f"{name} must have the shape of x_t {list(xt.shape)}, got {list(other.shape)}")
    lam_t, lam_prev = _log_snr(schedule, t), _log_snr(schedule, t_prev)
    h = lam_prev - lam_t
    alpha_prev = float(schedule.sqrt_alpha_bars[t_prev]) if t_prev >= 0 else 1.0
    sigma_prev = float(schedule.sqrt_one_minus_alpha_bars[t_prev]) if t_prev >= 0 else 0.0
    sigma_t = float(schedule.sqrt_one_minus_alpha_bars[t])
    D = x0
    if x0_prev is not None and t_prev >= 0:
        r = (lam_t - _log_snr(schedule, t_last)) / h  # r = h_last / h
        D = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
    if noise is None:
        # -alpha_prev (e^{-h} - 1) = -alpha_prev expm1(-h), exact also for small h
        return (sigma_prev / sigma_t) * xt - alpha_prev * math.expm1(-h) * D
    one_minus_e2h = -math.expm1(-2 * h)  # 1 - e^{-2h}, exact also for small h
    return ((sigma_prev / sigma_t) * math.exp(-h)) * xt + (alpha_prev * one_minus_e2h) * D \
        + (sigma_prev * math.sqrt(one_minus_e2h)) * noise


def dpm_solver_sample(model: torch.nn.Module, schedule: Schedule, n: int, *, steps: int = SamplerConfig.steps,
                      timesteps: Optional[Sequence[int]] = None, image_shape: Optional[Sequence[int]] = None,
                      y: Optional[Tensor] = None, guidance: float = 0.0,
                      generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                      clip_x0: bool = True, x_T: Optional[Tensor] = None, stochastic: bool = False,
                      trajectory_at: Optional[Iterable[int]] = None, progress: bool = True,
                      cpu_batch: int = SamplerConfig.cpu_batch) -> SampleResult:
    """DPM-Solver++(2M) sampling (Lu et al. 2022, Algorithm 2) over ``steps`` steps spread by
    :func:`ddim_timesteps` (or an explicit decreasing ``timesteps`` list) and a final step to
    t_prev = -1. The first step is first order, later ones second order with the x0 predicted one
    step earlier; the last step returns the final x0 prediction. Each x0 = x_theta(x_t, t) comes
    from the network's eps (Eq. 15), clipped to [-1, 1] with ``clip_x0``.

    Deterministic by default (the first step is DDIM with eta = 0); ``stochastic=True`` takes the
    SDE form, fresh noise at every step but the last (the first step is DDIM with eta = 1): see
    :func:`dpm_solver_step`. Other arguments and the result are as for :func:`ddim_sample`."""
    schedule = schedule.to(model_device(model))
    path = list(timesteps) if timesteps is not None else ddim_timesteps(schedule.T, steps)
    x0_last: Optional[Tensor] = None  # x_theta at the previous step of the path, and its time
    t_last: Optional[int] = None

    def step(eps: Tensor, x: Tensor, t: int, t_prev: int, noise: Optional[Tensor]) -> Tensor:
        nonlocal x0_last, t_last
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0 = predict_x0_from_eps(schedule, x, tt, eps)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        x_prev = dpm_solver_step(schedule, x0, x, t, t_prev, x0_prev=x0_last, t_last=t_last, noise=noise)
        x0_last, t_last = x0, t
        return x_prev

    return reverse_loop(model, schedule, n, path, step, noisy=lambda t, t_prev: stochastic and t_prev >= 0,
                        image_shape=image_shape, y=y, guidance=guidance, generator=generator, seed=seed,
                        x_T=x_T, trajectory_at=trajectory_at, progress=progress,
                        desc=f"{'SDE-' if stochastic else ''}DPM-Solver++ sampling", cpu_batch=cpu_batch)


def default_guidance(y: Optional[Tensor], config: Optional[SamplerConfig] = None) -> float:
    """The guidance weight w used when none is given: ``config.guidance`` (the measured choice for
    the shipped class-conditional U-Net) when labels ``y`` are asked for, else 0."""
    return (config or SamplerConfig()).guidance if y is not None else 0.0


_FROM_CONFIG: Any = object()  # a keyword of sample() left out: the config's value is used


def sample(model: torch.nn.Module, schedule: Schedule, n: int, config: Optional[SamplerConfig] = None, *,
           sampler: str = _FROM_CONFIG, steps: int = _FROM_CONFIG, eta: float = _FROM_CONFIG,
           spacing: str = _FROM_CONFIG, seed: Optional[int] = _FROM_CONFIG,
           y: Optional[Tensor] = None, guidance: Optional[float] = None,
           image_shape: Optional[Sequence[int]] = None, progress: bool = True) -> Tensor:
    """n images from ``model`` with the sampler ``config`` describes (:class:`SamplerConfig`, whose
    defaults are the best measured at about 20 network calls). A keyword overrides one field:
    ``sample(model, schedule, 64, steps=50)`` is ``sample(model, schedule, 64, SamplerConfig(steps=50))``.

    ``sampler`` names the method: ``"dpm++sde"`` (SDE-DPM-Solver++(2M), ``steps``), ``"dpm++"``
    (DPM-Solver++(2M), deterministic, ``steps``), ``"ddim"`` (``steps``, ``eta``) or ``"ddpm"`` (all
    T steps). The steps of the first three are spread by ``spacing`` (:func:`spaced_timesteps`).
    ``seed=None`` draws fresh noise. ``guidance=None`` is :func:`default_guidance`: the config's
    ``guidance`` when labels ``y`` are given, 0 for an unconditional draw. Images have the model's
    shape (its config's ``in_channels`` and ``image_size``, else MNIST's 1x28x28); ``image_shape=(C, H,
    W)`` sets it for a network of your own without such a config. The command line samples through this."""
    overrides = {k: v for k, v in dict(sampler=sampler, steps=steps, eta=eta, spacing=spacing,
                                       seed=seed).items() if v is not _FROM_CONFIG}
    cfg = dataclasses.replace(config or SamplerConfig(), **overrides)
    guidance = default_guidance(y, cfg) if guidance is None else guidance
    if cfg.sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {cfg.sampler!r}; choose one of {SAMPLERS}")
    common = dict(seed=cfg.seed, y=y, guidance=guidance, progress=progress, cpu_batch=cfg.cpu_batch,
                  image_shape=image_shape)
    if cfg.sampler == "ddpm":
        return ddpm_sample(model, schedule, n, **common)
    path = spaced_timesteps(schedule.T, cfg.steps, cfg.spacing)
    if cfg.sampler == "ddim":
        return ddim_sample(model, schedule, n, timesteps=path, eta=cfg.eta, **common)
    return dpm_solver_sample(model, schedule, n, timesteps=path, stochastic=cfg.sampler == "dpm++sde", **common)
