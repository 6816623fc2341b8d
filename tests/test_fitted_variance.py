"""The reverse variance fitted to a model (ddpm_lib.fitted_variance): the identities it rests on, the
closed form it must reproduce on Gaussian data, and the bound it must lower."""

import math

import pytest
import torch

from helpers import DummyEps, Oracle

from ddpm_lib import load_mnist, make_schedule
from ddpm_lib.errors import InputError
from ddpm_lib.fitted_variance import VarianceFit, alpha_bars, fit_variance, x0_coefficient
from ddpm_lib.metrics.likelihood import bits_per_dim


def test_the_x0_weight_of_the_generalized_posterior_is_eq7s_for_ddpm(linear_schedule):
    s = linear_schedule
    for t in (1, 10, 500, 999):
        c = x0_coefficient(s, t, t - 1, float(s.beta_tilde[t]))
        assert c == pytest.approx(float(s.posterior_mean_coef_x0[t]), rel=1e-4)
    assert x0_coefficient(s, 0, -1, 0.0) == pytest.approx(1.0)  # the decoder: x_{-1} is x_0
    assert x0_coefficient(s, 300, -1, 0.0) == pytest.approx(1.0)  # DDIM's last jump lands on x0_hat
    with pytest.raises(InputError, match="exceeds"):
        x0_coefficient(s, 300, 200, 1.0)


def test_a_perfect_mean_leaves_the_fixed_beta_tilde(linear_schedule):
    """With no error in x0_hat the optimum is the posterior's own variance, beta_tilde (Ho et al.'s choice)."""
    T = linear_schedule.T
    fit = VarianceFit(torch.zeros(T, dtype=torch.float64), torch.ones(T, dtype=torch.float64), images=2)
    v = fit.ddpm_variances(linear_schedule)
    assert v[0] == 0
    assert torch.allclose(v[1:].float(), linear_schedule.beta_tilde[1:], rtol=1e-4)
    torch.manual_seed(0)
    x0 = torch.rand(1, 1, 28, 28) * 2 - 1
    s = make_schedule(T=50)
    measured = fit_variance(Oracle(x0, s), s, x0, images_per_t=4, progress=False)
    assert measured.x0_mse.max() < 1e-8  # the oracle's x0_hat is x_0 to rounding


class GaussianPosteriorMean(torch.nn.Module):
    """The best eps-predictor for data x_0 ~ N(0, s^2 I): E[eps | x_t] = sqrt(1 - a) x_t / (a s^2 + 1 - a)."""

    def __init__(self, schedule, s):
        super().__init__()
        self.a, self.s2 = alpha_bars(schedule).float(), s * s

    def forward(self, xt, t, y=None):
        a = self.a[t].view(-1, 1, 1, 1)
        return (1 - a).sqrt() * xt / (a * self.s2 + 1 - a)


def test_on_gaussian_data_both_kinds_give_the_minimum_mean_squared_error():
    """x_0 ~ N(0, s^2 I) has E ||x_0 - E[x_0|x_t]||^2 / d = s^2 (1 - a) / (a s^2 + 1 - a) in closed form;
    the measured error ("fitted") and Analytic-DPM's from Gamma_t ("analytic", Theorem 1) must both find it."""
    schedule, s = make_schedule(T=40), 0.5
    x0 = torch.randn(512, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * s
    fit = fit_variance(GaussianPosteriorMean(schedule, s), schedule, x0, images_per_t=256, clip_x0=False,
                       progress=False)
    a = alpha_bars(schedule)
    mmse = s * s * (1 - a) / (a * s * s + 1 - a)
    assert torch.allclose(fit.x0_error(schedule), mmse, rtol=0.02)
    analytic = fit.with_kind("analytic").x0_error(schedule)
    assert torch.allclose(analytic[5:], mmse[5:], rtol=0.05)  # at tiny t, 1 - Gamma_t is a small difference


@pytest.mark.slow
def test_the_fitted_variance_lowers_the_bound_and_is_the_minimum():
    """sigma*^2 minimises each KL term: the bound with it is below the fixed beta_tilde's and below that of
    the same fit with its error halved or doubled (same noise draws)."""
    schedule = make_schedule(T=100)
    model = DummyEps()  # a poor predictor: its x0_hat is far off, so the fixed variance is far too small
    images = load_mnist(train=False, subset=16).tensors[0]
    fit = fit_variance(model, schedule, images, images_per_t=16, progress=False)
    bound = {name: bits_per_dim(model, schedule, images, t_samples=None, variance=v, progress=False).total
             for name, v in {"fitted": fit, "beta_tilde": "beta_tilde",
                             "half": VarianceFit(fit.x0_mse / 2, fit.eps_power, fit.images),
                             "double": VarianceFit(fit.x0_mse * 2, fit.eps_power, fit.images)}.items()}
    assert bound["fitted"] < min(bound["half"], bound["double"]), bound
    assert bound["fitted"] < bound["beta_tilde"] - 0.5, bound


@pytest.mark.slow
def test_the_decoder_takes_the_variance_its_discrete_likelihood_prefers():
    """L_0 integrates over 8-bit bins, so its variance is picked by that likelihood, not by e_0: it is never
    worse than e_0 on the images it was picked on; images that are not 8-bit get none."""
    schedule = make_schedule(T=100)
    model = DummyEps()
    images = load_mnist(train=False, subset=16).tensors[0]
    fit = fit_variance(model, schedule, images, images_per_t=4, decoder_images=256, progress=False)
    assert fit.decoder_variance is not None and fit.ddpm_variances(schedule)[0] == fit.decoder_variance
    plain = VarianceFit(fit.x0_mse, fit.eps_power, fit.images)
    decoder = {name: bits_per_dim(model, schedule, images, t_samples=4, variance=v, progress=False).terms["L_0"]
               for name, v in {"picked": fit, "e_0": plain}.items()}
    assert decoder["picked"] <= decoder["e_0"] + 1e-9, decoder
    assert fit_variance(model, schedule, images + 0.001, images_per_t=2, progress=False).decoder_variance is None


def test_a_fit_goes_through_plain_values_and_refuses_another_chain(linear_schedule):
    T = linear_schedule.T
    fit = VarianceFit(torch.linspace(0, 1, T, dtype=torch.float64), torch.rand(T, dtype=torch.float64), images=8)
    back = VarianceFit.from_state(fit.state())
    assert torch.equal(back.x0_mse, fit.x0_mse) and torch.equal(back.eps_power, fit.eps_power)
    assert (back.images, back.clip_x0, back.kind, back.decoder_variance) == (8, True, "fitted", None)
    with pytest.raises(InputError, match="T=1000 steps, the schedule has T=50"):
        fit.ddpm_variances(make_schedule(T=50))
    with pytest.raises(InputError, match="kind must be one of"):
        fit.with_kind("learned")
    assert math.isfinite(fit.variance(linear_schedule, 500, 480, 0.0))


def test_samplers_with_a_perfect_fit_take_the_fixed_steps_and_add_noise_where_the_model_errs(linear_schedule):
    from ddpm_lib.samplers import ddim_step, ddpm_step

    s, T = linear_schedule, linear_schedule.T
    g = torch.Generator().manual_seed(0)
    xt, eps, z = (torch.randn(2, 1, 28, 28, generator=g) for _ in range(3))
    perfect = VarianceFit(torch.zeros(T, dtype=torch.float64), torch.ones(T, dtype=torch.float64), images=2)
    for t in (1, 400, 999):
        assert torch.allclose(ddpm_step(s, eps, xt, t, noise=z, variance=perfect),
                              ddpm_step(s, eps, xt, t, noise=z), atol=1e-5)
    assert torch.allclose(ddim_step(s, eps, xt, 600, 500, eta=1.0, noise=z, fit=perfect),
                          ddim_step(s, eps, xt, 600, 500, eta=1.0, noise=z), atol=1e-5)
    erring = VarianceFit(torch.full((T,), 0.01, dtype=torch.float64), torch.ones(T, dtype=torch.float64), images=2)
    deterministic = ddim_step(s, eps, xt, 600, 500, eta=0.0, noise=z)
    noisy = ddim_step(s, eps, xt, 600, 500, eta=0.0, noise=z, fit=erring)  # Analytic-DDIM: noise c^2 e_t
    c = x0_coefficient(s, 600, 500, 0.0)
    assert torch.allclose(noisy - deterministic, math.sqrt(c * c * 0.01) * z, atol=1e-5)
    assert torch.equal(ddim_step(s, eps, xt, 600, -1, eta=0.0, noise=z, fit=erring),
                       ddim_step(s, eps, xt, 600, -1, eta=0.0, noise=z))  # the last step adds no noise


@pytest.mark.slow
def test_fit_variance_stores_the_fit_with_the_weights_it_fits(tmp_path, tiny_unet_config, capsys):
    """``python -m ddpm_lib fit-variance`` writes the fit into the checkpoint (weights and checksums as they
    were); load_model hands it to the model, an export carries it, training further drops it, and the
    shipped weights are refused without --replace-shipped."""
    from helpers import tiny_trainer

    from ddpm_lib import export_pretrained, load_checkpoint, load_model, pretrained_path
    from ddpm_lib.__main__ import main

    trainer = tiny_trainer(tiny_unet_config, tmp_path / "run", steps=2, batch_size=8, subset=64)
    trainer.fit(load_mnist(subset=64), progress=False)
    ckpt = trainer.save()
    before = load_checkpoint(ckpt)
    assert not hasattr(load_model(ckpt, device="cpu")[0], "variance_fit")
    assert main(["fit-variance", str(ckpt), "--images-per-t", "2"]) == 0
    assert "stored in" in capsys.readouterr().out
    after = load_checkpoint(ckpt)
    assert all(torch.equal(before["ema"][k], after["ema"][k]) for k in before["ema"])
    assert after["weights_sha256"] == before["weights_sha256"]
    model, schedule = load_model(ckpt, device="cpu")
    assert model.variance_fit.T == schedule.T and model.variance_fit.decoder_variance is not None
    assert not hasattr(load_model(ckpt, ema=False, device="cpu")[0], "variance_fit")  # fitted to the EMA weights
    exported = export_pretrained(ckpt, tmp_path / "small.pt")
    assert torch.equal(load_model(exported, device="cpu")[0].variance_fit.x0_mse, model.variance_fit.x0_mse)
    trainer.config = type(trainer.config)(**{**trainer.config.__dict__, "steps": 3})
    trainer.fit(load_mnist(subset=64), progress=False)
    assert not hasattr(load_model(trainer.save(), device="cpu")[0], "variance_fit")  # other weights now
    assert main(["fit-variance", str(pretrained_path("unet_mnist"))]) == 1
    assert "--replace-shipped" in capsys.readouterr().err
