"""Inputs that once passed silently or failed deep inside torch: counts that are not counts, sizes that
cannot fit in memory, images in [0, 1] where [-1, 1] belongs. Each is refused (or, where the data could
be right, said) in one line before any work is done."""

import warnings

import pytest
import torch

from ddpm_lib import MLPConfig, MLPNoisePredictor, make_schedule, sample
from ddpm_lib.errors import InputError
from ddpm_lib.config import DiffusionConfig
from ddpm_lib.diffusion import q_sample
from ddpm_lib.samplers import COPIES_WHILE_SAMPLING, available_memory, check_sample_count


@pytest.fixture(scope="module")
def tiny():
    model = MLPNoisePredictor(MLPConfig(hidden=32, num_blocks=1)).eval()
    return model, make_schedule(DiffusionConfig(T=50))


@pytest.mark.parametrize("n", [2.5, True, "4", None, torch.tensor(2.0)])
def test_sample_count_must_be_a_whole_number(tiny, n):
    with pytest.raises(InputError, match=r"n must be a whole number") as err:
        sample(*tiny, n, steps=2, progress=False)
    assert "\n" not in str(err.value)


def test_integer_like_counts_are_accepted(tiny):
    import numpy as np
    assert sample(*tiny, np.int64(2), steps=2, seed=0, progress=False).shape == (2, 1, 28, 28)
    assert sample(*tiny, torch.tensor(3), steps=2, seed=0, progress=False).shape == (3, 1, 28, 28)


def test_a_count_that_cannot_fit_is_refused_up_front_with_the_limit(tiny, monkeypatch):
    """10^11 images once grew the process to 24 GB before failing: now refused before any allocation,
    with the largest count that fits."""
    import tracemalloc
    tracemalloc.start()
    with pytest.raises(InputError, match=r"n=100000000000 images of 1x28x28 need about .* GiB.*at most \d+ at a time"):
        sample(*tiny, 100_000_000_000, steps=2, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20, f"the refusal allocated {peak / 2**20:.0f} MiB first"


def test_the_limit_follows_available_memory(monkeypatch):
    import ddpm_lib.samplers as samplers
    monkeypatch.setattr(samplers, "available_memory", lambda device: 1000 * COPIES_WHILE_SAMPLING * 4 * 64)
    assert check_sample_count(1000, (1, 8, 8), torch.device("cpu")) == 1000
    with pytest.raises(InputError, match=r"at most 1000 at a time"):
        check_sample_count(1001, (1, 8, 8), torch.device("cpu"))
    assert available_memory(torch.device("cpu")) is None or available_memory(torch.device("cpu")) > 2**20


def test_q_sample_says_when_data_look_like_zero_to_one_images(tiny):
    _, schedule = tiny
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match=r"like images in \[0, 1\].*to_model_range"):
        q_sample(schedule, images, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # data in [-1, 1] (and constants, as identities use) pass silently
        q_sample(schedule, images * 2 - 1, 3)
        q_sample(schedule, torch.full((2, 1, 4, 4), 0.5), 3)


def test_q_sample_still_refuses_nan_and_raw_pixels(tiny):
    _, schedule = tiny
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        q_sample(schedule, x, 3)
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        q_sample(schedule, torch.full((2, 1, 4, 4), 200.0), 3)


def test_evaluator_refuses_samples_in_zero_to_one(shipped_evaluator):
    """Samples mapped to [0, 1] (with a sampler's small overshoot below 0) once scored FID 146 instead of
    17 without a word: they are refused, naming the fix; the same samples in [-1, 1] are scored."""
    from ddpm_lib import load_mnist
    real = load_mnist(train=False, subset=200, seed=0).tensors[0]
    samples = real + 0.02 * torch.randn(real.shape, generator=torch.Generator().manual_seed(1))
    with pytest.raises(InputError, match=r"like images in \[0, 1\].*to_model_range"):
        shipped_evaluator.evaluate((samples + 1) / 2)
    assert shipped_evaluator.fid(samples) >= 0
