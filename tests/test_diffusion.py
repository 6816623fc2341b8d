"""The forward process: Eq. 4 equals the iterated chain, variance is preserved, x0 comes back
from the true noise, the posterior is Bayes' rule, and the loss samples every t."""

import pytest
import torch
from scipy import stats

from ddpm_lib import (linear_betas, make_schedule, predict_eps_from_x0, predict_x0_from_eps, q_posterior, q_sample,
                      q_sample_iterated, simple_loss)
from ddpm_lib.diffusion import (LAPLACE_B, LAPLACE_MU, LAPLACE_UNIFORM_SHARE, check_timesteps, sample_timesteps,
                                sample_timesteps_laplace)


@pytest.mark.parametrize("t", [0, 10, 250, 999])
def test_closed_form_equals_iterated_chain_in_distribution(linear_schedule, t):
    """Eq. 4 (one jump) and t+1 applications of q(x_t | x_{t-1}) give the same Gaussian."""
    n = 20_000
    g = torch.Generator().manual_seed(t)
    x0 = torch.full((n, 1), 0.7)  # one "pixel", many independent chains
    jump = q_sample(linear_schedule, x0, t, noise=torch.randn(x0.shape, generator=g))
    chain = q_sample_iterated(linear_schedule, x0, t, generator=g)
    ab = linear_schedule.alpha_bars[t].item()
    # both match the closed form's moments ...
    for x in (jump, chain):
        assert x.mean().item() == pytest.approx(ab ** 0.5 * 0.7, abs=4 * (1 / n) ** 0.5)
        assert x.var().item() == pytest.approx(1 - ab, rel=0.05, abs=1e-5)
    # ... and each other's distribution (two-sample Kolmogorov-Smirnov)
    assert stats.ks_2samp(jump.flatten().numpy(), chain.flatten().numpy()).pvalue > 1e-3


def test_ks_test_detects_a_wrong_chain(linear_schedule):
    """The test above has power: a chain without the sqrt(1 - beta) shrinkage differs."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20_000, 1), 0.7)
    x = x0
    for s in range(100):
        x = x + linear_schedule.betas[s].sqrt() * torch.randn(x.shape, generator=g)
    jump = q_sample(linear_schedule, x0, 99)
    assert stats.ks_2samp(jump.flatten().numpy(), x.flatten().numpy()).pvalue < 1e-6


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_variance_is_preserved(name):
    """Unit-variance data stay unit-variance at every t: alpha_bar + (1 - alpha_bar) = 1."""
    s = make_schedule(schedule=name)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(20_000, 4, generator=g)
    for t in (0, 100, 500, 900, 999):
        xt = q_sample(s, x0, t, noise=torch.randn(x0.shape, generator=g))
        assert xt.var().item() == pytest.approx(1.0, abs=0.03)
    # x_T carries (almost) nothing of x_0
    xT = q_sample(s, x0, 999, noise=torch.randn(x0.shape, generator=g))
    assert abs(torch.corrcoef(torch.stack([x0.flatten(), xT.flatten()]))[0, 1].item()) < 0.02


def test_x0_recovered_exactly_from_true_noise(linear_schedule):
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(64, 1, 28, 28, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (64,), generator=g)
    xt = q_sample(linear_schedule, x0, t, eps)
    assert torch.allclose(predict_x0_from_eps(linear_schedule, xt, t, eps), x0, atol=2e-4)
    assert torch.allclose(predict_eps_from_x0(linear_schedule, xt, t, x0), eps, atol=2e-4)
    small = t < 800  # away from alpha_bar -> 0, float32 recovery is near-exact
    assert torch.allclose(predict_x0_from_eps(linear_schedule, xt, t, eps)[small], x0[small], atol=1e-5)


@pytest.mark.parametrize("t", [1, 5, 500, 999])
def test_posterior_is_bayes_rule_on_gaussians(linear_schedule, t):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): product of two Gaussians."""
    s = linear_schedule
    x0 = torch.tensor([[0.3], [-0.8]])
    xt = torch.tensor([[1.1], [0.2]])
    betas = linear_betas(1000)  # float64 reference
    ab_prev = torch.cumprod(1 - betas, 0)[t - 1]
    a_t, b_t = 1 - betas[t], betas[t]
    # prior N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood of x_t: N(sqrt(a_t) x_{t-1}, b_t)
    precision = 1 / (1 - ab_prev) + a_t / b_t
    var = 1 / precision
    mean = var * (ab_prev.sqrt() * x0.double() / (1 - ab_prev) + a_t.sqrt() * xt.double() / b_t)
    mu, beta_tilde = q_posterior(s, x0, xt, t)
    assert torch.allclose(mu.double(), mean, rtol=1e-4, atol=1e-6)
    assert beta_tilde.flatten()[0].item() == pytest.approx(var.item(), rel=1e-4)


def test_posterior_matches_simulation(linear_schedule):
    """Empirically: sample x_{t-1} | x_0 then x_t | x_{t-1}; regress x_{t-1} on x_t."""
    s, t, n = linear_schedule, 300, 200_000
    g = torch.Generator().manual_seed(3)
    x0 = torch.full((n, 1), 0.5)
    x_prev = q_sample(s, x0, t - 1, torch.randn(x0.shape, generator=g))
    xt = s.alphas[t].sqrt() * x_prev + s.betas[t].sqrt() * torch.randn(x0.shape, generator=g)
    mu, beta_tilde = q_posterior(s, x0, xt, t)
    resid = x_prev - mu
    assert resid.mean().item() == pytest.approx(0.0, abs=5 * (beta_tilde[0].item() / n) ** 0.5)
    assert resid.var().item() == pytest.approx(beta_tilde[0].item(), rel=0.02)


def test_timesteps_cover_0_and_T_minus_1():
    t = sample_timesteps(200_000, 1000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert t.min().item() == 0 and t.max().item() == 999
    counts = torch.bincount(t, minlength=1000).float()
    assert counts.min() > 120 and counts.max() < 290  # uniform: 200 expected each


def test_laplace_timesteps_draw_the_log_snr_from_a_laplace_and_keep_a_uniform_share(linear_schedule):
    """Hang et al. 2024: the log-SNR of the drawn t is Laplace(mu, b) (median mu, mean |lambda - mu| = b);
    the uniform share still reaches every t, the last one the samplers start from included."""
    log_snr, T = torch.log(linear_schedule.snr().double()), linear_schedule.T
    for mu, b in ((LAPLACE_MU, LAPLACE_B), (-2.0, 1.0)):
        t = sample_timesteps_laplace(linear_schedule, 100_000, torch.Generator().manual_seed(0), mu=mu, b=b,
                                     uniform_share=0.0)
        lam = log_snr[t]
        assert lam.median().item() == pytest.approx(mu, abs=0.02)
        assert (lam - mu).abs().mean().item() == pytest.approx(b, abs=0.02)
    t = sample_timesteps_laplace(linear_schedule, 100_000, torch.Generator().manual_seed(0), uniform_share=0.0)
    assert (t >= 700).sum().item() < 20  # lambda(700) is about -5, ten b below mu: 2e-5 of the draws, 2 expected
    mixed = sample_timesteps_laplace(linear_schedule, 100_000, torch.Generator().manual_seed(1))
    assert mixed.min().item() == 0 and mixed.max().item() == T - 1
    uniform_above_700 = (T - 700) / T  # the Laplace part has (almost) none
    assert (mixed >= 700).float().mean().item() == pytest.approx(LAPLACE_UNIFORM_SHARE * uniform_above_700, abs=0.01)
    again = sample_timesteps_laplace(linear_schedule, 100_000, torch.Generator().manual_seed(1))
    assert torch.equal(mixed, again) and mixed.dtype == torch.int64
    with pytest.raises(ValueError, match="uniform_share .* must be in"):
        sample_timesteps_laplace(linear_schedule, 4, uniform_share=1.5)
    with pytest.raises(ValueError, match="scale, so it must be > 0"):
        sample_timesteps_laplace(linear_schedule, 4, b=0.0)


def test_simple_loss_is_eq_14(linear_schedule):
    model = lambda x, t: 0.5 * x  # noqa: E731
    g = torch.Generator().manual_seed(4)
    x0 = torch.rand(8, 1, 28, 28, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    xt = linear_schedule.sqrt_alpha_bars[t].view(-1, 1, 1, 1) * x0 \
        + linear_schedule.sqrt_one_minus_alpha_bars[t].view(-1, 1, 1, 1) * eps
    expected = ((eps - 0.5 * xt) ** 2).mean()
    loss = simple_loss(model, linear_schedule, x0, t=t, noise=eps)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    per = simple_loss(model, linear_schedule, x0, t=t, noise=eps, reduction="none")
    assert per.shape == (8,) and per.mean().item() == pytest.approx(loss.item(), rel=1e-6)


def test_bad_timesteps_give_clear_errors(linear_schedule):
    x0 = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match=r"\[0, T\) = \[0, 1000\)"):
        q_sample(linear_schedule, x0, 1000)
    with pytest.raises(ValueError, match=r"\[0, T\)"):
        q_sample(linear_schedule, x0, torch.tensor([0, 1, -1, 2]))
    with pytest.raises(ValueError, match="shape"):
        q_sample(linear_schedule, x0, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer steps"):
        check_timesteps(torch.tensor([0.5] * 4), 4, 1000, x0.device)


def test_bool_t_pixels_and_nan_are_refused_naming_the_fix(linear_schedule):
    """Issue 16: q_sample and simple_loss took a bool t as steps 0/1, uint8 pixels (every
    coefficient cast to uint8: x_t all zeros), [0, 255] floats and NaN, without a word. The
    values are read in one device-to-host transfer with t's range (q_sample runs every step)."""
    from ddpm_lib.data import to_model_range

    model = lambda x, t: 0.5 * x  # noqa: E731
    x0 = torch.zeros(4, 1, 28, 28)
    with pytest.raises(TypeError, match="got a bool"):
        q_sample(linear_schedule, x0, True)
    with pytest.raises(TypeError, match="got a bool"):
        q_sample(linear_schedule, x0, torch.tensor([True, False, True, False]))
    with pytest.raises(TypeError, match="got a bool"):
        simple_loss(model, linear_schedule, x0, t=torch.ones(4, dtype=torch.bool))
    pixels = torch.randint(0, 256, (4, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    pixels[0, 0, 0, :2] = torch.tensor([0, 255])
    for forward in (lambda x: q_sample(linear_schedule, x, 10), lambda x: simple_loss(model, linear_schedule, x)):
        with pytest.raises(TypeError, match=r"float tensor.*uint8.*to_model_range"):
            forward(pixels.to(torch.uint8))
        with pytest.raises(ValueError, match=r"\[-1, 1\], got values in \[0, 255\].*to_model_range"):
            forward(pixels.float())
        with pytest.raises(ValueError, match="NaN or inf"):
            forward(torch.full_like(x0, float("nan")))
        assert forward(to_model_range(pixels.to(torch.uint8))).isfinite().all()  # the fix named works
    scaled = to_model_range(pixels.float(), max_value=255)
    assert scaled.min() == -1 and scaled.max() == 1 and torch.equal(scaled, to_model_range(pixels.to(torch.uint8)))
    assert q_sample(linear_schedule, torch.randn(20_000, 4), 5).isfinite().all()  # unit-Gaussian data pass
