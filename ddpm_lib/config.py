"""Configuration dataclasses, the device helper and the seeding helper.

Every knob a reader may want to turn lives in a small dataclass with visible defaults. The
defaults are the paper's (Ho et al. 2020, Sec. 4: T = 1000, beta_1 = 1e-4 -> beta_T = 0.02);
``*.quick()`` presets shrink a run for tests, never the code path.
"""

from __future__ import annotations

import math
import numbers
import os
import random
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from .errors import InputError, InputTypeError, SetupError

DEVICE_ENV = "DDPM_DEVICE"
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16", "auto")  # TrainConfig.precision, the CLI's --precision
T_DISTRIBUTIONS = ("uniform", "laplace")  # TrainConfig.t_distribution, the CLI's --t-distribution
SAMPLERS = ("dpm++sde", "dpm++", "ddim", "ddpm")  # SamplerConfig.sampler, the CLI's --sampler, ddpm_lib.sample()
SPACINGS = ("trailing", "even")  # SamplerConfig.spacing, the CLI's --spacing


# the largest seed: NumPy's range, far inside torch's 64 bits, so that the seeds a run derives from it
# (the batch order's seed * 100_003 + epoch) fit too
MAX_SEED = 2 ** 32 - 1


def check_integers(config: object, *names: str) -> None:
    """Check that the fields ``names`` of a config dataclass hold integers (None where the field is
    Optional; each item for a tuple field), turning an integral float (``steps=1e4``) into an int. A
    bool, or a value that is not a number, raises :class:`InputTypeError`; a number that is not
    whole (2.5, nan, inf) :class:`InputError`; one line naming the config, the field and the value."""
    cls = type(config).__name__

    def integer(name: str, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputTypeError(f"{cls}: {name} must be an integer, got {value!r} "
                                 f"({'a bool' if isinstance(value, bool) else type(value).__name__})")
        if isinstance(value, numbers.Integral):
            return int(value)
        if not (math.isfinite(value) and float(value).is_integer()):
            raise InputError(f"{cls}: {name} must be a whole number, got {value!r}")
        return int(value)

    for name in names:
        value = getattr(config, name)
        if value is None and _optional(type(config), name):
            continue
        if isinstance(value, (tuple, list)):
            value = tuple(integer(f"{name}[{i}]", v) for i, v in enumerate(value))
        else:
            value = integer(name, value)
        setattr(config, name, value)


def _optional(cls: type, name: str) -> bool:
    """Whether the dataclass field ``name`` of ``cls`` may be None (annotated ``Optional[...]``)."""
    annotation = str(cls.__dataclass_fields__[name].type)
    return "Optional[" in annotation or "None" in annotation


@dataclass
class DiffusionConfig:
    """The forward process: number of steps T and the beta schedule."""

    T: int = 1000
    schedule: str = "linear"  # "linear" (Ho et al. 2020) or "cosine" (Nichol & Dhariwal 2021)
    beta_start: float = 1e-4  # linear schedule only
    beta_end: float = 0.02  # linear schedule only
    cosine_s: float = 0.008  # cosine schedule only
    # what the network predicts: "eps" the noise (Ho et al. 2020), "x0" the clean image, or
    # "v" = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022)
    prediction: str = "eps"

    def __post_init__(self) -> None:
        check_integers(self, "T")


@dataclass
class UNetConfig:
    """A U-Net for ``in_channels`` x ``image_size`` x ``image_size`` images; the defaults are MNIST's
    1x28x28: 28x28 -> 14x14 -> 7x7 and back, no padding to 32.

    For images of another size, change ``in_channels``, ``image_size`` and, where needed,
    ``channel_mults`` and ``attn_resolutions``: e.g. 3x32x32 keeps three levels (32, 16, 8) with
    ``attn_resolutions=(8,)``; 1x8x8 works with ``channel_mults=(1, 2)`` and ``attn_resolutions=(4,)``.

    Fields:
        in_channels: image channels (1 grey, 3 RGB).
        base_channels: the width of the first level; each level's width is base_channels * its mult.
        channel_mults: one entry per level (the first at full size, each next at half the size before
            it), so ``image_size`` must halve evenly ``len(channel_mults) - 1`` times (refused otherwise,
            naming the sizes that work).
        num_res_blocks: ResBlocks per level on the way down (one more on the way up).
        attn_resolutions: the sizes in pixels whose level gets self-attention (one matching no level warns).
        num_heads: attention heads.
        groups: GroupNorm groups (widths must be multiples of it).
        dropout: dropout in the ResBlocks.
        time_emb_mult: the time embedding's width is base_channels * time_emb_mult.
        num_classes: None = unconditional; 10 = class-conditional on MNIST's digits.
        image_size: the images' height and width in pixels.
    """

    in_channels: int = 1
    base_channels: int = 32
    channel_mults: Tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    attn_resolutions: Tuple[int, ...] = (7,)
    num_heads: int = 4
    groups: int = 8
    dropout: float = 0.0
    time_emb_mult: int = 4
    num_classes: Optional[int] = None
    image_size: int = 28

    def __post_init__(self) -> None:
        check_integers(self, "in_channels", "base_channels", "channel_mults", "num_res_blocks", "attn_resolutions",
                       "num_heads", "groups", "time_emb_mult", "num_classes", "image_size")

    @classmethod
    def small(cls, **overrides) -> "UNetConfig":
        """Half the widths (16, 32, 64): a quarter of the default's FLOPs and parameters, the same
        architecture, meant for CPU budgets of tens of minutes. The shipped ``unet_mnist.pt`` is this
        preset; how it compares with the default width in quality and speed is measured in
        benchmarks/RESULTS.md, "A smaller, faster U-Net"."""
        base = dict(base_channels=16)
        base.update(overrides)
        return cls(**base)


def unet_for_budget(minutes: Optional[float], steps: Optional[int], **overrides) -> UNetConfig:
    """The U-Net a new run trains when its width is not given: :meth:`UNetConfig.small` for a wall-clock
    budget (``minutes`` without ``steps``), measured the better one for CPU budgets of 5 and 20 minutes (in each
    of three training seeds) and at 60 level with the default width in two training seeds and ahead in the third
    (benchmarks/RESULTS.md, "Minute budgets as typed"); otherwise the default width, so that a seeded step budget
    trains the same model as before."""
    wall_clock = minutes is not None and steps is None
    return UNetConfig.small(**overrides) if wall_clock else UNetConfig(**overrides)


@dataclass
class MLPConfig:
    """A residual MLP on flattened 28*28 = 784-d images."""

    image_size: int = 28
    in_channels: int = 1
    # the best width at equal CPU time (benchmarks/RESULTS.md, "The MLP: predict x0, at width 512")
    hidden: int = 512
    num_blocks: int = 3
    time_emb_dim: int = 128
    dropout: float = 0.0
    num_classes: Optional[int] = None

    def __post_init__(self) -> None:
        check_integers(self, "image_size", "in_channels", "hidden", "num_blocks", "time_emb_dim", "num_classes")


@dataclass
class TrainConfig:
    """The training loop (Algorithm 1) and its bookkeeping. Values are checked when the config
    is made: a bad one raises ValueError naming it (TypeError for a bool or a non-number where an
    integer belongs, :func:`check_integers`).

    Budget: ``steps`` optimizer steps, or ``max_minutes`` of wall-clock time, or both (whichever
    ends first); a budget in minutes alone needs ``steps=None``, since ``steps`` has a default.

    Fields:
        steps: optimizer steps in all; None = until ``max_minutes``.
        max_minutes: wall-clock budget in minutes; None = no limit.
        batch_size: images per step.
        lr: the learning rate after warm-up (AdamW).
        lr_schedule: after warm-up, "constant", or "cosine" decay to 0 at the end of the budget (steps,
            else max_minutes); it helps the MLP, not the U-Net (benchmarks/RESULTS.md, "Studies that set
            the defaults").
        min_snr_gamma: min-SNR-gamma loss weighting (Hang et al. 2023): each t's loss weighted as if the
            x0 error counted min(SNR(t), gamma); None = unweighted L_simple. 5 is the measured best change
            to the recipe (benchmarks/RESULTS.md, "The training recipe at the 20-minute budget").
        t_distribution: how training draws t: "uniform" (Algorithm 1), or "laplace": a share of each batch
            (``diffusion.LAPLACE_UNIFORM_SHARE``) uniform, the rest by a Laplace draw of the log-SNR (Hang et al.
            2024, :func:`ddpm_lib.diffusion.sample_timesteps_laplace`), more steps on the middle noise levels;
            measured worse than uniform with min-SNR-5 at 20 minutes (benchmarks/RESULTS.md, "Minute budgets
            as typed").
        precision: the forward pass and loss in "fp32", or in bfloat16 autocast ("bf16"; weights,
            optimizer and EMA stay float32), or "auto": bf16 for a budget in minutes alone on a CPU with
            native bfloat16 instructions (benchmarks/RESULTS.md, "Training in bfloat16 on the CPU"), fp32
            otherwise, so a step budget gives the same model anywhere. Decided at a run's first step and
            kept by a resume.
        weight_decay: AdamW's weight decay.
        warmup_steps: steps of linear learning-rate warm-up.
        grad_clip: the largest global gradient norm; 0 = no clipping.
        ema_decay: the decay of the weights' moving average (the EMA weights are the ones sampled).
        label_dropout: class-conditional models only: the probability that a label becomes the null
            label (classifier-free guidance needs it).
        checkpoint_every: steps between checkpoints; 0 = only at the end.
        seed: seeds t, the noise, label dropout and the batch order (0..MAX_SEED).
        subset: train on a seeded draw of this many images (``load_mnist(subset=...)`` or
            ``load_images(data, subset=...)``, the CLI's --subset); None = all. Saved with the run, so a
            resume gets the same images.
        data: where the images come from: None = MNIST; a path = the CLI's --data (a folder of PNG/JPEG
            images or a .npy / .pt array, :func:`ddpm_lib.image_files.load_images`), saved with the run so
            that a resume reads it again. Set it when you train on images of your own, so that evaluation
            does not score them with MNIST's judges.
    """

    steps: Optional[int] = 10_000
    max_minutes: Optional[float] = None
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"
    min_snr_gamma: Optional[float] = 5.0
    t_distribution: str = T_DISTRIBUTIONS[0]
    precision: str = "auto"
    weight_decay: float = 0.0
    warmup_steps: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    checkpoint_every: int = 500
    seed: int = 0
    subset: Optional[int] = None
    data: Optional[str] = None

    def __post_init__(self) -> None:
        check_integers(self, "steps", "batch_size", "warmup_steps", "checkpoint_every", "seed", "subset")
        if isinstance(self.data, os.PathLike):  # stored as text: a checkpoint holds no Path objects
            self.data = os.fspath(self.data)

        def finite(x) -> bool:
            return isinstance(x, numbers.Real) and math.isfinite(x)

        checks = [
            ("steps", self.steps is None or (finite(self.steps) and self.steps >= 0), "an integer >= 0 or None"),
            ("max_minutes", self.max_minutes is None or (finite(self.max_minutes) and self.max_minutes >= 0),
             "a finite number >= 0 or None"),
            ("batch_size", finite(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("lr", finite(self.lr) and self.lr > 0, "a finite number > 0"),
            ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
            ("min_snr_gamma", self.min_snr_gamma is None or (finite(self.min_snr_gamma) and self.min_snr_gamma > 0),
             "a finite number > 0 or None (unweighted)"),
            ("t_distribution", self.t_distribution in T_DISTRIBUTIONS, f"one of {T_DISTRIBUTIONS}"),
            ("precision", self.precision in PRECISIONS, f"one of {PRECISIONS}"),
            ("weight_decay", finite(self.weight_decay) and self.weight_decay >= 0, "a finite number >= 0"),
            ("warmup_steps", finite(self.warmup_steps) and self.warmup_steps >= 0, "an integer >= 0"),
            ("grad_clip", finite(self.grad_clip) and self.grad_clip >= 0, "a finite number >= 0 (0: off)"),
            ("ema_decay", finite(self.ema_decay) and 0 <= self.ema_decay <= 1, "in [0, 1]"),
            ("label_dropout", finite(self.label_dropout) and 0 <= self.label_dropout <= 1, "in [0, 1]"),
            ("checkpoint_every", finite(self.checkpoint_every) and self.checkpoint_every >= 0,
             "an integer >= 0 (0: only at the end)"),
            ("subset", self.subset is None or (finite(self.subset) and self.subset >= 1), "an integer >= 1 or None"),
            ("seed", 0 <= self.seed <= MAX_SEED, f"an integer 0..{MAX_SEED}"),
            ("data", self.data is None or (isinstance(self.data, str) and self.data != ""),
             "a path to the training images or None (MNIST)"),
        ]
        bad = [f"{name} must be {want}, got {getattr(self, name)!r}" for name, ok, want in checks if not ok]
        if bad:
            raise InputError("TrainConfig: " + "; ".join(bad))

    @classmethod
    def quick(cls, **overrides) -> "TrainConfig":
        """A tiny preset for tests and quick notebook runs (same code path)."""
        base = dict(steps=60, batch_size=32, warmup_steps=10, checkpoint_every=0)
        base.update(overrides)
        return cls(**base)


@dataclass
class SamplerConfig:
    """How images are drawn from a trained model: DPM-Solver++(2M) (Lu et al. 2022) in its
    stochastic (SDE) or deterministic form, or DDIM (Song et al. 2021) with noise level ``eta``,
    each over ``steps`` steps spread by ``spacing``; or ancestral DDPM (Algorithm 2, all T steps);
    classifier-free ``guidance`` weight w for class-conditional models."""

    # the defaults are the best measured at about 20 network calls, on the shipped U-Net and on a
    # 20-minute one (benchmarks/RESULTS.md, "The default sampler: SDE-DPM-Solver++ with trailing steps")
    sampler: str = "dpm++sde"  # "dpm++sde", "dpm++" (deterministic), "ddim" or "ddpm"
    steps: int = 20  # steps of every sampler but DDPM (which always takes T)
    eta: float = 1.0  # DDIM only: 0 deterministic, 1 as much noise as DDPM
    # where the steps sit: "trailing" ends at t = T/steps - 1 and never calls the network at t = 0
    # (999, 949, ..., 49), "even" spreads them over T-1 .. 0 (ddpm_lib.samplers.spaced_timesteps)
    spacing: str = "trailing"
    # classifier-free guidance weight w, used only when labels are asked for: the smallest w at
    # which the shipped class-conditional U-Net draws the requested digit at least 98% of the time
    # and 95% for every digit (benchmarks/RESULTS.md, "New shipped weights")
    guidance: float = 0.5
    # on a CPU the network sees at most this many images per call (the noise and the result are
    # the same as in one batch): smaller batches stay in cache and run faster (benchmarks/RESULTS.md,
    # "New shipped weights")
    cpu_batch: int = 125
    seed: Optional[int] = 0  # None: fresh noise at every call


@dataclass
class EvalConfig:
    """How ``python -m ddpm_lib evaluate`` measures a model (notebook 04)."""

    n: int = 1000  # samples; MNIST-FID compares only at equal n
    bpd_images: int = 0  # test images for the variational bound in bits/dim (0: skip it)
    t_samples: int = 100  # stratified t draws per image for bits/dim


def get_device(prefer: Optional[str] = None) -> torch.device:
    """Pick a device: ``prefer`` if given, else the ``DDPM_DEVICE`` environment variable,
    else the first available of CUDA, Apple MPS, CPU."""
    name = prefer or os.environ.get(DEVICE_ENV)
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SetupError(f"device {name!r} was asked for but CUDA is not available; "
                               f"unset {DEVICE_ENV} or use 'cpu'")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise SetupError(f"device {name!r} was asked for but MPS is not available; "
                               f"unset {DEVICE_ENV} or use 'cpu'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU ``torch.Generator`` seeded
    the same way, for code that wants its own stream of random numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
