"""Helpers several test files share (fixtures live in conftest.py)."""

import torch

from ddpm_lib import DiffusionConfig, TrainConfig, Trainer, UNet, prediction_target

DIFF = DiffusionConfig(T=200)  # a short chain: tiny training runs in seconds


def tiny_trainer(cfg, out_dir=None, **train) -> Trainer:
    """A seeded trainer of a U-Net with config ``cfg`` on the CPU, TrainConfig.quick(**train)."""
    torch.manual_seed(0)
    return Trainer(UNet(cfg), DIFF, TrainConfig.quick(**train), out_dir=out_dir, device="cpu")


def one_line_error(capsys, code_expected, code):
    """The command's stderr, asserted to be one ``error:`` line (no traceback) with exit ``code_expected``."""
    err = capsys.readouterr().err.strip()
    assert code == code_expected, err
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


class DummyEps(torch.nn.Module):
    """A deterministic stand-in for a trained eps-model (depends on x and t)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x, t, y=None):
        return self.w * x + 0.05 * torch.sin(t.float() / 100).view(-1, 1, 1, 1)


def assert_close(ours, theirs, tol=1e-5):
    """Within tol, relative to the output's scale: without clipping, x0 = x_t / sqrt(alpha_bar)
    reaches ~100 near t = T, where diffusers' float32 cumprod and our float64-derived
    coefficients differ in the 6th digit."""
    scale = max(1.0, theirs.abs().max().item())
    err = (ours - theirs).abs().max().item()
    assert err <= tol * scale, f"max abs difference {err:.3g} at scale {scale:.3g}"


def float64(ref):
    """Run diffusers' own step code in float64: its float32 cumprod loses ~4 digits in
    1 - alpha_bar at small t, which would otherwise dominate the comparison. diffusers has no
    public switch for this, so the scheduler's tensors are replaced; requirements.txt pins the
    diffusers range this was tested with."""
    ref.betas = ref.betas.double()
    ref.alphas = 1.0 - ref.betas
    ref.alphas_cumprod = torch.cumprod(ref.alphas, dim=0)
    if hasattr(ref, "final_alpha_cumprod"):
        ref.final_alpha_cumprod = ref.final_alpha_cumprod.double()
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    return ref


class Oracle(torch.nn.Module):
    """A perfect predictor for a data set of one image x0: the true eps / x0 / v for any x_t."""

    def __init__(self, x0, schedule):
        super().__init__()
        self.register_buffer("x0", x0)
        self.schedule = schedule

    def forward(self, xt, t, y=None):
        s = self.schedule
        a = s.sqrt_alpha_bars[t].view(-1, 1, 1, 1)
        m = s.sqrt_one_minus_alpha_bars[t].view(-1, 1, 1, 1)
        x0 = self.x0.expand_as(xt)
        eps = (xt - a * x0) / m
        return prediction_target(s, x0, t, eps)
