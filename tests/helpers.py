"""Helpers several test files share (fixtures live in conftest.py)."""

import torch

from ddpm_lib import DiffusionConfig, TrainConfig, Trainer, UNet

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
