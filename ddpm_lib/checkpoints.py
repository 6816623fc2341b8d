"""Checkpoints: written atomically (temporary file, fsync, rename), read with
``torch.load(weights_only=True)`` so a foreign pickle cannot run code, mapped to any device.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:
``format, model_config, diffusion_config, train_config, model, ema, optimizer, step,
history, rng, elapsed_s``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

from .config import DiffusionConfig, get_device
from .models import build_model, config_from_dict
from .schedules import Schedule, make_schedule

FORMAT = "ddpm_lib.checkpoint/1"
REQUIRED_KEYS = ("format", "model_config", "diffusion_config", "model", "step")
PathLike = Union[str, Path]


class CheckpointError(RuntimeError):
    """A file is not a readable ddpm_lib checkpoint, or does not fit the model at hand."""


def save_checkpoint(state: Dict[str, Any], path: PathLike) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder is written
    and fsync'ed, then renamed over ``path``. If anything fails (disk full, no permission),
    the temporary file is removed and the previous checkpoint at ``path`` stays intact."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise CheckpointError(f"cannot write a checkpoint in {path.parent}: {err.strerror or err}. "
                              f"Choose a writable output folder.") from err
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise CheckpointError(f"writing checkpoint {path} failed ({err.strerror or err}); "
                                  f"the previous checkpoint there, if any, is intact") from err
        raise
    return path


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) onto ``map_location`` and check that
    it is one of ours; raise :class:`CheckpointError` saying what is wrong otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError,
            AttributeError, TypeError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable ddpm_lib checkpoint (corrupted, "
                              f"truncated or another kind of file): {str(err).splitlines()[0][:200]}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ddpm_lib checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it may be from an older version")
    return state


def check_compatible(state: Dict[str, Any], model_config: Any, diffusion: DiffusionConfig) -> None:
    """Raise :class:`CheckpointError` naming every setting in which a checkpoint differs
    from the model/diffusion it is loaded into (T, schedule, model size...)."""
    from .models import config_to_dict

    diffs = []
    for section, mine in (("diffusion", asdict(diffusion)), ("model", config_to_dict(model_config))):
        saved = state[f"{section}_config"]
        for key in sorted(set(saved) | set(mine)):
            if saved.get(key) != mine.get(key):
                diffs.append(f"{section}.{key}: checkpoint {saved.get(key)!r} vs now {mine.get(key)!r}")
    if diffs:
        raise CheckpointError("checkpoint does not match this setup: " + "; ".join(diffs)
                              + ". Build the model from the checkpoint (load_model / Trainer.from_checkpoint) "
                                "or train a new one")


def export_pretrained(checkpoint: PathLike, out: PathLike, *, dtype: torch.dtype = torch.float16,
                      note: str = "") -> Path:
    """Write a small sampling-only checkpoint: the EMA weights (stored as ``dtype``, float16 by
    default: half the size, no visible change in samples), the configs, the step count and
    the loss history. :func:`load_model` reads it like any checkpoint."""
    state = load_checkpoint(checkpoint)
    weights = state.get("ema") or state["model"]
    small = {
        "format": FORMAT,
        "model_config": state["model_config"],
        "diffusion_config": state["diffusion_config"],
        "train_config": state.get("train_config", {}),
        "model": {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()},
        "ema": None,
        "step": state["step"],
        "history": state.get("history", torch.zeros(0)),
        "elapsed_s": state.get("elapsed_s", 0.0),
        "note": note,
    }
    return save_checkpoint(small, out)


def load_model(path: PathLike, *, ema: bool = True, device: Union[str, torch.device, None] = None
               ) -> Tuple[torch.nn.Module, Schedule]:
    """Rebuild a trained model (EMA weights by default) and its schedule from a checkpoint,
    on ``device`` (default: :func:`get_device`), in eval mode."""
    device = torch.device(device) if device is not None else get_device()
    state = load_checkpoint(path)
    model = build_model(config_from_dict(state["model_config"]))
    weights = state["ema"] if ema and state.get("ema") is not None else state["model"]
    model.load_state_dict(weights)
    schedule = make_schedule(DiffusionConfig(**state["diffusion_config"]))
    return model.to(device).eval(), schedule.to(device)
