"""Shared fixtures: small models that keep the unit tests fast on 2 CPU cores."""

import os
from types import MappingProxyType

import pytest
import torch

from ddpm_lib import UNetConfig, make_schedule

os.environ.setdefault("DDPM_DEVICE", "cpu")


@pytest.fixture(scope="session")
def tiny_unet_settings() -> MappingProxyType:
    """The settings of ``tiny_unet_config`` (read-only), for fixtures that outlive one test."""
    return MappingProxyType({"base_channels": 8, "channel_mults": (1, 2, 2), "num_heads": 2, "groups": 4})


@pytest.fixture
def tiny_unet_config(tiny_unet_settings) -> UNetConfig:
    """Same architecture as the default U-Net (attention at 7x7, skips), narrower."""
    return UNetConfig(**tiny_unet_settings)


@pytest.fixture
def linear_schedule():
    return make_schedule(T=1000, schedule="linear")


@pytest.fixture
def cosine_schedule():
    return make_schedule(T=1000, schedule="cosine")


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session")
def shipped_evaluator():
    """One evaluator with the shipped judges for the whole run (building one scores 10,000 test
    images with both judges)."""
    from ddpm_lib.metrics import SampleEvaluator

    return SampleEvaluator(device="cpu")
