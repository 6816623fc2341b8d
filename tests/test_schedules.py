"""Schedules: the paper's numbers, derived coefficients, and parity with diffusers."""

import math

import pytest
import torch

from ddpm_lib import DiffusionConfig, cosine_betas, linear_betas, make_schedule
from ddpm_lib.schedules import schedule_from_betas


def test_linear_matches_paper(linear_schedule):
    s = linear_schedule
    assert s.T == 1000
    assert s.betas[0].item() == pytest.approx(1e-4)
    assert s.betas[-1].item() == pytest.approx(0.02)
    assert torch.all(s.betas[1:] > s.betas[:-1])
    # alpha_bar_T is near 0: x_T is (almost) pure noise; Ho et al. report L_T ~ 1e-5 bits/dim
    assert s.alpha_bars[-1].item() < 1e-4
    assert s.alpha_bars[0].item() == pytest.approx(1 - 1e-4)


def test_cosine_matches_nichol_dhariwal(cosine_schedule):
    s = cosine_schedule
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    f = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    expected = (f(t) / f(torch.zeros(1, dtype=torch.float64))).float()
    # up to the clip of beta at 0.999 (last step only)
    assert torch.allclose(s.alpha_bars[:-1], expected[:-1], atol=1e-6)
    assert s.betas.max().item() <= 0.999 + 1e-7
    assert s.alpha_bars[-1].item() < 1e-4


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_derived_coefficients_are_consistent(name):
    s = make_schedule(T=1000, schedule=name)
    ab = torch.cumprod(1 - s.betas.double(), 0)
    assert torch.allclose(s.alpha_bars.double(), ab, rtol=1e-5)
    assert s.alpha_bars_prev[0].item() == 1.0
    assert torch.equal(s.alpha_bars_prev[1:], s.alpha_bars[:-1])
    assert torch.allclose(s.sqrt_alpha_bars ** 2 + s.sqrt_one_minus_alpha_bars ** 2, torch.ones(1000), atol=1e-6)
    # Eq. 7: beta_tilde = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t, beta_tilde_0 = 0
    assert s.beta_tilde[0].item() == 0.0
    assert torch.all(s.beta_tilde[1:] <= s.betas[1:])
    # SNR decreases monotonically
    snr = s.snr()
    assert torch.all(snr[1:] < snr[:-1])
    # SNR splits x_t's unit variance into signal alpha_bar and noise 1 - alpha_bar: SNR / (1 + SNR) = alpha_bar
    assert torch.allclose(snr / (1 + snr), s.alpha_bars, rtol=1e-5, atol=0)
    assert s.snr(5) == snr[5]
    for field in ("betas", "alpha_bars", "beta_tilde", "posterior_mean_coef_x0"):
        assert getattr(s, field).dtype == torch.float32


def test_to_device_moves_every_tensor(linear_schedule):
    """Moved to the "meta" device (shapes without storage, available everywhere), every tensor
    field goes along and the original stays where it was."""
    from dataclasses import fields

    moved = linear_schedule.to("meta")
    tensors = [f.name for f in fields(moved) if isinstance(getattr(moved, f.name), torch.Tensor)]
    assert len(tensors) >= 10
    for name in tensors:
        assert getattr(moved, name).device.type == "meta", name
        assert getattr(moved, name).shape == getattr(linear_schedule, name).shape
        assert getattr(linear_schedule, name).device.type == "cpu"
    assert moved.T == linear_schedule.T


def test_bad_schedule_and_T_give_clear_errors():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'"):
        make_schedule(schedule="quadratic")
    with pytest.raises(ValueError, match="positive integer"):
        make_schedule(T=0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        schedule_from_betas(torch.tensor([0.1, 1.5]))


def test_config_object_and_overrides_agree():
    assert torch.equal(make_schedule(DiffusionConfig(T=50)).betas, make_schedule(T=50).betas)
    assert torch.allclose(linear_betas(10).float(), make_schedule(T=10).betas)
    assert torch.allclose(cosine_betas(10).float(), make_schedule(T=10, schedule="cosine").betas)


@pytest.mark.parametrize("ours,theirs", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_schedules_equal_diffusers(ours, theirs):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=theirs)
    s = make_schedule(T=1000, schedule=ours)
    assert torch.allclose(s.betas, ref.betas.float(), atol=1e-5)
    assert torch.allclose(s.alphas, ref.alphas.float(), atol=1e-5)
    assert torch.allclose(s.alpha_bars, ref.alphas_cumprod.float(), atol=1e-5)
