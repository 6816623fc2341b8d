"""Noise-prediction networks eps_theta(x_t, t): an MLP and a U-Net, plus a builder from a saved config."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict
from typing import Iterator, Optional, Sequence, Tuple, Union

import torch

from ..errors import InputError, InputTypeError
from ..config import MLPConfig, UNetConfig
from ..data import MNIST_SHAPE
from .embeddings import TimeEmbedding, sinusoidal_embedding
from .mlp import MLPNoisePredictor
from .unet import UNet

ModelConfig = Union[UNetConfig, MLPConfig]


def build_model(config: ModelConfig) -> torch.nn.Module:
    """Instantiate the model a config describes."""
    if isinstance(config, UNetConfig):
        return UNet(config)
    if isinstance(config, MLPConfig):
        return MLPNoisePredictor(config)
    raise InputTypeError(f"expected a UNetConfig or MLPConfig, got {type(config).__name__}")


def config_to_dict(config: ModelConfig) -> dict:
    """A plain dict (safe for ``torch.load(weights_only=True)``) naming the config's kind."""
    kind = "unet" if isinstance(config, UNetConfig) else "mlp"
    d = asdict(config)
    return {"kind": kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}


def config_from_dict(d: dict) -> ModelConfig:
    """Inverse of :func:`config_to_dict`."""
    d = dict(d)
    kind = d.pop("kind", None)
    cls = {"unet": UNetConfig, "mlp": MLPConfig}.get(kind)
    if cls is None:
        raise InputError(f"unknown model kind {kind!r} in checkpoint config")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


CUSTOM_KIND = "custom"  # a checkpoint's model_config "kind" for a network of the user's own


def is_library_model(model: torch.nn.Module) -> bool:
    """Whether ``model`` is one of ddpm_lib's networks, rebuilt from its config (:func:`build_model`)."""
    return isinstance(getattr(model, "config", None), (UNetConfig, MLPConfig))


def describe_model(model: torch.nn.Module) -> dict:
    """What a checkpoint stores to say which network it holds: one of ours, its config
    (:func:`config_to_dict`); a network of your own, ``{"kind": "custom", "class": "module.Class"}``
    (rebuilding it needs your class: the checkpoint holds its weights, not its code)."""
    if is_library_model(model):
        return config_to_dict(model.config)
    cls = type(model)
    return {"kind": CUSTOM_KIND, "class": f"{cls.__module__}.{cls.__qualname__}"}


def remember_image_shape(model: torch.nn.Module, shape: Sequence[int]) -> None:
    """Let ``model`` carry the (C, H, W) of the images it was trained on (``model.image_shape``), so that
    samplers draw that shape for a network without a config saying it (:func:`image_shape_of`)."""
    object.__setattr__(model, "image_shape", tuple(int(s) for s in shape))


def image_shape_of(model: torch.nn.Module, image_shape: Optional[Sequence[int]] = None) -> Tuple[int, ...]:
    """The (C, H, W) of the images ``model`` works on: ``image_shape`` when given, else read from the
    model's config (``in_channels``, ``image_size``), as diffusers' pipelines read ``unet.config``, else
    the shape it was trained on (``model.image_shape``, set by the Trainer and :func:`load_model`); a
    model with none of these is taken to make MNIST's 1x28x28 images."""
    if image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"image_shape must be (channels, height, width), got {tuple(image_shape)}")
        return shape
    config = getattr(model, "config", None)
    channels, size = getattr(config, "in_channels", None), getattr(config, "image_size", None)
    if channels is not None and size is not None:
        return (int(channels), int(size), int(size))
    trained_on = getattr(model, "image_shape", None)
    return tuple(trained_on) if trained_on is not None else MNIST_SHAPE


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters, frozen ones included: an EMA copy (``trainer.ema.model``) counts as its model."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["TimeEmbedding", "sinusoidal_embedding", "MLPNoisePredictor", "UNet", "build_model", "CUSTOM_KIND",
           "config_to_dict", "config_from_dict", "count_parameters", "describe_model", "is_library_model",
           "image_shape_of", "remember_image_shape", "cpu_channels_last", "eval_mode", "model_device"]


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's weights (or buffers) live on; CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block with ``model`` in eval mode, then restore the mode it had (also on errors)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def cpu_channels_last(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block with ``model``'s convolution weights in channels-last layout when it is on a CPU,
    then put them back as they were (also on errors). oneDNN's convolutions run natively in that
    layout, so inference is faster (benchmarks/RESULTS.md, "Sampling time"); the values do not
    change. A model on another device, one without 4-D weights, or one already channels-last is
    left alone."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    already = any(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in weights)
    if not weights or already or model_device(model).type != "cpu":
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)
