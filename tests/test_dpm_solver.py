"""DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): every intermediate x equals diffusers'
DPMSolverMultistepScheduler with its defaults, the step is Algorithm 2 written out, its first
(and last) step is DDIM, a perfect x0 predictor gives back its image, every prediction type
takes the same path, and bad requests fail clearly. Only the parity tests need diffusers."""

import math

import pytest
import torch
from helpers import DummyEps, Oracle, assert_close, float64

from ddpm_lib import (PREDICTIONS, ddim_sample, ddim_step, ddim_timesteps, dpm_solver_sample, dpm_solver_step,
                      linear_betas, make_schedule, predict_x0_from_eps, prediction_target, trailing_timesteps)


@pytest.fixture(scope="module")
def diffusers():
    """The reference implementation; without it only the parity tests are skipped."""
    return pytest.importorskip("diffusers")


def _inputs(seed, shape=(4, 1, 28, 28)):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g) for _ in range(3))


@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize("prediction,theirs", [("eps", "epsilon"), ("x0", "sample"), ("v", "v_prediction")])
def test_every_step_equals_diffusers_dpm_solver_multistep(diffusers, steps, prediction, theirs):
    """Same linear betas, same time path, same network outputs, no clipping: the x entering
    each step and the result agree. diffusers' defaults are the solver we implement; its
    lower_order_final changes nothing here, since final_sigmas_type="zero" already makes the
    last step (to sigma = 0) first order."""
    s = make_schedule(prediction=prediction)
    ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                                beta_schedule="linear", prediction_type=theirs)
    c = ref.config
    assert (c.algorithm_type, c.solver_order, c.solver_type, c.lower_order_final, c.final_sigmas_type,
            c.thresholding) == ("dpmsolver++", 2, "midpoint", True, "zero", False)
    path = ddim_timesteps(s.T, steps)
    float64(ref).set_timesteps(timesteps=path)  # its sigmas from a float64 alpha_bar (see float64)
    assert ref.timesteps.tolist() == path
    model = DummyEps()
    x_T = torch.randn((3, 1, 28, 28), generator=torch.Generator().manual_seed(steps))
    x, theirs_at = x_T, {}
    with torch.no_grad():
        for t in path:
            theirs_at[t] = x
            x = ref.step(model(x, torch.full((3,), t)), t, x).prev_sample
    ours, ours_at = dpm_solver_sample(model, s, 3, timesteps=path, x_T=x_T, clip_x0=False,
                                      trajectory_at=path, progress=False)
    for t in path:
        assert_close(ours_at[t], theirs_at[t])
    assert_close(ours, x)


def _alpha_sigma_lambda():
    """alpha_t, sigma_t and lambda_t = log(alpha_t / sigma_t) of the linear schedule, from alpha_bar
    in float64, without the schedule's stored coefficients."""
    alpha_bar = torch.cumprod(1 - linear_betas(1000), 0)
    alpha, sigma = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    return alpha, sigma, torch.log(alpha / sigma)


def test_a_step_is_algorithm_2_written_out():
    """Lines of Algorithm 2 from alpha_bar in float64, without the schedule's stored coefficients."""
    s = make_schedule()
    alpha, sigma, lam = _alpha_sigma_lambda()
    x0_prev, x0, xt = _inputs(0)
    t_last, t, t_prev = 600, 400, 200
    h, h_last = lam[t_prev] - lam[t], lam[t] - lam[t_last]
    r = h_last / h
    D = (1 + 1 / (2 * r)) * x0.double() - 1 / (2 * r) * x0_prev.double()
    expected = sigma[t_prev] / sigma[t] * xt.double() - alpha[t_prev] * (torch.exp(-h) - 1) * D
    ours = dpm_solver_step(s, x0, xt, t, t_prev, x0_prev=x0_prev, t_last=t_last)
    assert_close(ours, expected)
    # with the same x0 twice there is no slope to extrapolate: D = x0, the first-order step
    assert_close(dpm_solver_step(s, x0, xt, t, t_prev, x0_prev=x0, t_last=t_last),
                 dpm_solver_step(s, x0, xt, t, t_prev))


@pytest.mark.parametrize("t,t_prev", [(999, 899), (500, 480), (20, 0), (1, 0), (10, -1), (0, -1)])
def test_first_order_step_is_ddim_with_eta_0(t, t_prev):
    s = make_schedule()
    xt, eps, _ = _inputs(t)
    x0 = predict_x0_from_eps(s, xt, t, eps)
    assert_close(dpm_solver_step(s, x0, xt, t, t_prev), ddim_step(s, eps, xt, t, t_prev, eta=0.0, clip_x0=False))


def test_last_step_returns_x0_as_diffusers_does():
    """To t_prev = -1 (alpha = 1, sigma = 0, h = inf) the step is first order and gives x0,
    with or without a previous x0."""
    s = make_schedule()
    x0_prev, x0, xt = _inputs(1)
    assert torch.equal(dpm_solver_step(s, x0, xt, 0, -1), x0)
    assert torch.equal(dpm_solver_step(s, x0, xt, 50, -1, x0_prev=x0_prev, t_last=100), x0)


def test_two_steps_are_ddim_and_loops_are_deterministic():
    """With two steps both are first order (the first has no history, the last goes to -1):
    DDIM with eta = 0, clipping on. Repeated calls give the same images (no state kept)."""
    model, s = DummyEps(), make_schedule()
    a = dpm_solver_sample(model, s, 3, steps=2, seed=5, progress=False)
    assert_close(a, ddim_sample(model, s, 3, steps=2, seed=5, progress=False))
    b = dpm_solver_sample(model, s, 3, steps=20, seed=5, progress=False)
    assert torch.equal(b, dpm_solver_sample(model, s, 3, steps=20, seed=5, progress=False))
    assert not torch.allclose(b, ddim_sample(model, s, 3, steps=20, seed=5, progress=False), atol=1e-3)


# sum and sum of |x| of DummyEps' images, 20 steps, seed 5: recorded once the loop matched diffusers
GOLDEN = (19.006094789598137, 2183.044177019503)


def test_full_loop_reproduces_golden_values():
    """Pinned without diffusers, like test_samplers' GOLDEN: the sum and sum of |x| of the images."""
    x = dpm_solver_sample(DummyEps(), make_schedule(), 3, steps=20, seed=5, progress=False).double()
    assert x.sum().item() == pytest.approx(GOLDEN[0], rel=1e-5, abs=1e-4)
    assert x.abs().sum().item() == pytest.approx(GOLDEN[1], rel=1e-6)


def test_a_perfect_x0_predictor_gives_back_its_image():
    x0 = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    s = make_schedule()
    for steps in (1, 2, 10, 20):
        x = dpm_solver_sample(Oracle(x0, s), s, 2, steps=steps, seed=0, progress=False)
        assert torch.allclose(x, x0.expand_as(x), atol=1e-4), steps


class GaussianData(torch.nn.Module):
    """The exact denoiser for data x0 ~ N(mu, std^2 I), in the schedule's parameterization:
    E[x0 | x_t] = mu + a std^2 / (a^2 std^2 + s^2) (x_t - a mu), a = sqrt(alpha_bar_t),
    s = sqrt(1 - alpha_bar_t). Its probability-flow ODE is solved in closed form by
    x_t = a mu + sqrt(a^2 std^2 + s^2) z with z fixed, so a sample's end point is known."""

    def __init__(self, mu, std, schedule):
        super().__init__()
        self.register_buffer("mu", mu)
        self.std, self.schedule = std, schedule

    def coefficients(self, t):
        s = self.schedule
        return (s.sqrt_alpha_bars.double()[t].view(-1, 1, 1, 1),
                s.sqrt_one_minus_alpha_bars.double()[t].view(-1, 1, 1, 1))

    def forward(self, xt, t, y=None):
        a, s = self.coefficients(t)
        xt = xt.double()
        x0 = self.mu + a * self.std**2 / (a**2 * self.std**2 + s**2) * (xt - a * self.mu)
        return prediction_target(self.schedule, x0.float(), t, ((xt - a * x0) / s).float())

    def ode_solution(self, x_T):
        a, s = self.coefficients(torch.tensor([self.schedule.T - 1]))
        return self.mu + self.std * (x_T.double() - a * self.mu) / (a**2 * self.std**2 + s**2).sqrt()


def test_each_prediction_type_takes_the_same_path():
    """The same exact denoiser read as eps, x0 or v (reverse_loop converts it) gives the same
    samples, close to the ODE's exact end point with enough steps."""
    g = torch.Generator().manual_seed(0)
    mu, x_T = torch.rand(1, 1, 28, 28, generator=g).double() - 0.5, torch.randn(2, 1, 28, 28, generator=g)
    out = {}
    for prediction in PREDICTIONS:
        s = make_schedule(prediction=prediction)
        model = GaussianData(mu, 0.5, s)
        out[prediction] = [dpm_solver_sample(model, s, 2, steps=steps, x_T=x_T, clip_x0=False, progress=False)
                           for steps in (10, 100)]
    for prediction in ("x0", "v"):
        for ours, reference in zip(out[prediction], out["eps"]):
            assert torch.allclose(ours, reference, atol=1e-3), prediction
    exact = model.ode_solution(x_T)
    assert math.sqrt((out["eps"][1] - exact).pow(2).mean().item()) < 0.02


def test_bad_requests_give_clear_errors():
    model, s = DummyEps(), make_schedule()
    with pytest.raises(ValueError, match="exceeds the model's T=1000"):
        dpm_solver_sample(model, s, 1, steps=1001, progress=False)
    with pytest.raises(ValueError, match="positive integer"):
        dpm_solver_sample(model, s, 1, steps=0, progress=False)
    with pytest.raises(ValueError, match="strictly decreasing"):
        dpm_solver_sample(model, s, 1, timesteps=[10, 20, 0], progress=False)
    with pytest.raises(ValueError, match="n must be >= 1"):
        dpm_solver_sample(model, s, 0, progress=False)
    x0, xt, _ = _inputs(0)
    with pytest.raises(ValueError, match="t_prev < t"):
        dpm_solver_step(s, x0, xt, 10, 10)
    with pytest.raises(ValueError, match="0 <= t < T=1000"):
        dpm_solver_step(s, x0, xt, 1000, 0)
    with pytest.raises(ValueError, match="both x0_prev and t_last"):
        dpm_solver_step(s, x0, xt, 10, 0, x0_prev=x0)
    with pytest.raises(ValueError, match="t < t_last < T"):
        dpm_solver_step(s, x0, xt, 10, 0, x0_prev=x0, t_last=5)
    with pytest.raises(ValueError, match="shape of x_t"):
        dpm_solver_step(s, x0[:1], xt, 10, 0)


def test_sample_names_each_sampler_and_defaults_to_the_measured_winner():
    """ddpm_lib.sample (the CLI's sampler) dispatches by name; with no sampler given it is
    SamplerConfig's choice, SDE-DPM-Solver++(2M) with 20 trailing steps (benchmarks/studies/samplers.json,
    RESULTS "The default sampler: SDE-DPM-Solver++ with trailing steps"); spacing applies to every sampler but DDPM."""
    from ddpm_lib import SamplerConfig, ddpm_sample, sample
    model, s = DummyEps(), make_schedule()
    d = SamplerConfig()
    assert (d.sampler, d.steps, d.spacing) == ("dpm++sde", 20, "trailing")
    trailing = trailing_timesteps(1000, 20)
    assert torch.equal(sample(model, s, 2, seed=3, progress=False),
                       dpm_solver_sample(model, s, 2, timesteps=trailing, stochastic=True, seed=3, progress=False))
    assert torch.equal(sample(model, s, 2, sampler="dpm++", steps=10, spacing="even", seed=3, progress=False),
                       dpm_solver_sample(model, s, 2, steps=10, seed=3, progress=False))
    assert torch.equal(sample(model, s, 2, sampler="ddim", eta=1.0, seed=3, progress=False),
                       ddim_sample(model, s, 2, timesteps=trailing, eta=1.0, seed=3, progress=False))
    assert torch.equal(sample(model, make_schedule(T=20), 2, sampler="ddpm", seed=3, progress=False),
                       ddpm_sample(model, make_schedule(T=20), 2, seed=3, progress=False))
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        sample(model, s, 2, sampler="euler")
    with pytest.raises(ValueError, match="unknown timestep spacing 'leading'"):
        sample(model, s, 2, spacing="leading")


# ----------------------------------------------------------------------------- the SDE form
@pytest.mark.parametrize("spacing", ["trailing", "linspace"])
@pytest.mark.parametrize("prediction,theirs", [("eps", "epsilon"), ("v", "v_prediction")])
def test_sde_form_equals_diffusers_sde_dpmsolver_step_by_step(diffusers, spacing, prediction, theirs):
    """SDE-DPM-Solver++(2M) against diffusers' algorithm_type="sde-dpmsolver++", with the noise our
    sampler draws handed to it as variance_noise: the x entering every step and the result agree,
    on our trailing path (diffusers' own timestep_spacing="trailing" gives the same steps) and on the even one."""
    s = make_schedule(prediction=prediction)
    ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                                beta_schedule="linear", prediction_type=theirs,
                                                algorithm_type="sde-dpmsolver++", timestep_spacing=spacing)
    ref.set_timesteps(20)
    path = trailing_timesteps(s.T, 20) if spacing == "trailing" else ddim_timesteps(s.T, 20)
    if spacing == "trailing":
        assert ref.timesteps.tolist() == path
    float64(ref).set_timesteps(timesteps=path)
    model, n, seed = DummyEps(), 3, 11
    x_T = torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(seed)  # the sampler's noise: one draw per step but the last
    x, theirs_at = x_T, {}
    with torch.no_grad():
        for i, t in enumerate(path):
            theirs_at[t] = x
            z = torch.randn(x.shape, generator=gen) if i + 1 < len(path) else torch.zeros_like(x)
            x = ref.step(model(x, torch.full((n,), t)), t, x, variance_noise=z).prev_sample
    ours, ours_at = dpm_solver_sample(model, s, n, timesteps=path, x_T=x_T, clip_x0=False, stochastic=True,
                                      seed=seed, trajectory_at=path, progress=False)
    for t in path:
        assert_close(ours_at[t], theirs_at[t])
    assert_close(ours, x)


@pytest.mark.parametrize("t,t_prev", [(999, 899), (500, 480), (20, 0), (1, 0)])
def test_first_order_sde_step_is_ddim_with_eta_1(t, t_prev):
    """Without a previous x0 the SDE step is DDIM (Eq. 12) with eta = 1 and the same noise."""
    s = make_schedule()
    xt, eps, z = _inputs(t)
    x0 = predict_x0_from_eps(s, xt, t, eps)
    assert_close(dpm_solver_step(s, x0, xt, t, t_prev, noise=z),
                 ddim_step(s, eps, xt, t, t_prev, eta=1.0, noise=z, clip_x0=False))


def test_sde_step_written_out_and_its_last_step_returns_x0():
    """The second-order SDE step from alpha_bar in float64; to t_prev = -1 it returns x0, noise or not."""
    s = make_schedule()
    alpha, sigma, lam = _alpha_sigma_lambda()
    x0_prev, x0, xt = _inputs(2)
    z = _inputs(3)[0]
    t_last, t, t_prev = 600, 400, 200
    h, r = lam[t_prev] - lam[t], (lam[t] - lam[t_last]) / (lam[t_prev] - lam[t])
    D = x0.double() + 0.5 / r * (x0.double() - x0_prev.double())
    expected = (sigma[t_prev] / sigma[t] * torch.exp(-h) * xt.double() + alpha[t_prev] * (1 - torch.exp(-2 * h)) * D
                + sigma[t_prev] * torch.sqrt(1 - torch.exp(-2 * h)) * z.double())
    assert_close(dpm_solver_step(s, x0, xt, t, t_prev, x0_prev=x0_prev, t_last=t_last, noise=z), expected)
    assert torch.equal(dpm_solver_step(s, x0, xt, 49, -1, x0_prev=x0_prev, t_last=99, noise=z), x0)


def test_sde_sampler_is_seeded_noisy_and_a_perfect_predictor_still_lands():
    """Seeded: the same seed gives the same images, another seed others; the deterministic form
    does not depend on the seed once x_T is fixed, the SDE form does. A perfect x0 predictor lands
    on its image whatever the noise, on both spacings."""
    model, s = DummyEps(), make_schedule()
    a = dpm_solver_sample(model, s, 2, steps=20, stochastic=True, seed=1, progress=False)
    assert torch.equal(a, dpm_solver_sample(model, s, 2, steps=20, stochastic=True, seed=1, progress=False))
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    sde = [dpm_solver_sample(model, s, 2, steps=20, stochastic=True, seed=k, x_T=x_T, progress=False) for k in (1, 2)]
    ode = [dpm_solver_sample(model, s, 2, steps=20, seed=k, x_T=x_T, progress=False) for k in (1, 2)]
    assert torch.equal(ode[0], ode[1]) and not torch.allclose(sde[0], sde[1], atol=1e-3)
    x0 = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    for path in (ddim_timesteps(1000, 20), trailing_timesteps(1000, 20), trailing_timesteps(1000, 3)):
        x = dpm_solver_sample(Oracle(x0, s), s, 2, timesteps=path, stochastic=True, seed=0, progress=False)
        assert torch.allclose(x, x0.expand_as(x), atol=1e-4), path


def test_trailing_timesteps_match_diffusers_rule_without_it():
    """round(T - i T / k) - 1: 999, 949, ..., 49 for 20 of 1000; the path never reaches t = 0
    unless every step is taken; the same checks as ddim_timesteps."""
    assert trailing_timesteps(1000, 20) == list(range(999, 48, -50))
    assert trailing_timesteps(1000, 3) == [999, 666, 332]
    assert trailing_timesteps(10, 10) == list(range(9, -1, -1))
    assert trailing_timesteps(1000, 1) == [999]
    with pytest.raises(ValueError, match="exceeds the model's T=1000"):
        trailing_timesteps(1000, 1001)
