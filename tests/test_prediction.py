"""Prediction types (eps, x0, v): the conversions are exact, a perfect predictor of each type
takes the same reverse steps, the loss targets are right, checkpoints remember the type, and
diffusers' schedulers agree for "sample" and "v_prediction"."""

import pytest
import torch

from helpers import Oracle

from ddpm_lib import (PREDICTIONS, DiffusionConfig, TrainConfig, Trainer, UNet, ddim_sample, ddpm_sample,
                      eps_and_x0, load_mnist, load_model, make_schedule, predict_v, prediction_target, q_sample,
                      simple_loss)
from ddpm_lib.metrics import loss_per_t


def _truth(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    eps = torch.randn(n, 1, 28, 28, generator=g)
    t = torch.tensor([0, 1, 100, 500, 900, 999])[:n]
    return x0, eps, t


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_conversions_recover_eps_and_x0_from_each_target(prediction):
    s = make_schedule(prediction=prediction)
    x0, eps, t = _truth()
    xt = q_sample(s, x0, t, eps)
    eps_hat, x0_hat = eps_and_x0(s, xt, t, prediction_target(s, x0, t, eps))
    # exact algebra, float32 arithmetic: x0 from eps divides by sqrt(alpha_bar) ~ 1/157 at t = 999
    assert torch.allclose(eps_hat, eps, atol=1e-4)
    assert torch.allclose(x0_hat, x0, atol=2e-3 if prediction == "eps" else 1e-4)


def test_v_is_the_rotation_of_eps_and_x0():
    """Salimans & Ho 2022: with a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar), (x_t, v) is
    (eps, x0) rotated by the angle phi with cos phi = a: their norms agree sample by sample."""
    s = make_schedule()
    x0, eps, t = _truth()
    xt, v = q_sample(s, x0, t, eps), predict_v(s, x0, t, eps)
    assert torch.allclose(xt.pow(2) + v.pow(2), x0.pow(2) + eps.pow(2), atol=1e-4)


def test_a_perfect_predictor_of_each_type_takes_the_same_reverse_steps():
    x0 = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    out = {}
    for prediction in PREDICTIONS:
        s = make_schedule(T=100, prediction=prediction)
        oracle = Oracle(x0, s)
        out[prediction] = (ddim_sample(oracle, s, 2, steps=10, seed=0, progress=False),
                           ddim_sample(oracle, s, 2, steps=10, eta=1.0, seed=0, progress=False),
                           ddpm_sample(oracle, s, 2, seed=0, progress=False))
    for prediction in ("x0", "v"):
        for ours, reference in zip(out[prediction], out["eps"]):
            assert torch.allclose(ours, reference, atol=1e-3), prediction
    for x in out["x0"]:  # and the samples are the one training image
        assert torch.allclose(x, x0.expand_as(x), atol=1e-3)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_loss_is_zero_for_a_perfect_predictor_and_its_own_target_otherwise(prediction):
    s = make_schedule(T=100, prediction=prediction)
    x0, eps, _ = _truth(n=4)
    t = torch.tensor([0, 10, 50, 99])
    oracle = Oracle(x0[:1], s)
    assert simple_loss(oracle, s, x0[:1].expand(4, -1, -1, -1), t=t, noise=eps).item() < 1e-8
    zero = lambda x, t, y=None: torch.zeros_like(x)  # noqa: E731
    target = prediction_target(s, x0, t, eps)
    assert simple_loss(zero, s, x0, t=t, noise=eps).item() == pytest.approx(target.pow(2).mean().item(), rel=1e-5)


class Zero(torch.nn.Module):
    def forward(self, x, t, y=None):
        return torch.zeros_like(x)


def test_error_per_t_in_image_space_is_the_x0_error():
    s = make_schedule(T=100)
    x0, _, _ = _truth(n=4)
    zero = Zero()  # predicts eps = 0, so x0_hat = x_t / sqrt(alpha_bar)
    ts, eps_err = loss_per_t(zero, s, x0, timesteps=[0, 99], space="eps")
    _, x0_err = loss_per_t(zero, s, x0, timesteps=[0, 99], space="x0")
    assert eps_err[0] == pytest.approx(1.0, abs=0.1)  # ||eps||^2 per pixel
    ratio = (1 - s.alpha_bars[99]) / s.alpha_bars[99]  # the x0 error is the eps error times (1 - a)/a
    assert x0_err[1].item() == pytest.approx(eps_err[1].item() * ratio.item(), rel=0.01)
    with pytest.raises(ValueError, match="space must be"):
        loss_per_t(zero, s, x0, space="v")


def test_a_checkpoint_remembers_its_prediction_type(tmp_path, tiny_unet_config):
    trainer = Trainer(UNet(tiny_unet_config), DiffusionConfig(T=50, prediction="v"),
                      TrainConfig(steps=2, batch_size=8), out_dir=tmp_path, device="cpu")
    assert trainer.schedule.prediction == "v"
    trainer.fit(load_mnist(subset=16), progress=False)
    model, schedule = load_model(tmp_path / "checkpoint.pt", device="cpu")
    assert schedule.prediction == "v"
    resumed = Trainer.from_checkpoint(tmp_path / "checkpoint.pt", device="cpu")
    assert resumed.schedule.prediction == "v"
    with pytest.raises(ValueError, match="prediction must be one of"):
        make_schedule(prediction="score")


def test_old_checkpoints_without_a_prediction_type_are_eps(tmp_path, tiny_unet_config):
    from ddpm_lib import load_checkpoint, save_checkpoint

    trainer = Trainer(UNet(tiny_unet_config), DiffusionConfig(T=50), TrainConfig(steps=1, batch_size=8),
                      out_dir=tmp_path, device="cpu")
    trainer.fit(load_mnist(subset=16), progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    del state["diffusion_config"]["prediction"]
    save_checkpoint(state, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt", device="cpu")[1].prediction == "eps"
    assert Trainer.from_checkpoint(tmp_path / "old.pt", device="cpu").step == 1


class Linear(torch.nn.Module):
    """A deterministic stand-in network whose output is read as eps, x0 or v."""

    def forward(self, x, t, y=None):
        return 0.3 * x + 0.05 * torch.sin(t.float() / 100).view(-1, 1, 1, 1)


@pytest.mark.parametrize("prediction,theirs", [("x0", "sample"), ("v", "v_prediction")])
def test_ddpm_and_ddim_loops_equal_diffusers_for_other_prediction_types(prediction, theirs):
    diffusers = pytest.importorskip("diffusers")
    model, s = Linear(), make_schedule(prediction=prediction)
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=True, prediction_type=theirs)
    g = torch.Generator().manual_seed(11)
    x = torch.randn((2, 1, 28, 28), generator=g)
    with torch.no_grad():
        for t in range(999, -1, -1):
            x = ref.step(model(x, torch.full((2,), t)), t, x, generator=g).prev_sample
    ours = ddpm_sample(model, s, 2, seed=11, progress=False)
    assert (ours - x).abs().max().item() < 1e-3

    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, clip_sample=True, prediction_type=theirs)
    ref.set_timesteps(50)
    x = torch.randn((2, 1, 28, 28), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for t in ref.timesteps.tolist():
            x = ref.step(model(x, torch.full((2,), t)), t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    ours = ddim_sample(model, s, 2, timesteps=ref.timesteps.tolist(), seed=5, progress=False)
    assert (ours - x).abs().max().item() < 1e-3
