"""The checkpoint format, owned here: what a checkpoint holds (:func:`to_state` writes it,
:func:`from_state` reads its configs back), how files written before a setting existed are read
(:data:`MIGRATIONS`), its file name in a run's folder (:data:`CHECKPOINT_NAME`), loading a model
from it and exporting a sampling-only copy.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:
``format, model_config, diffusion_config, train_config, model, ema, optimizer, step, history,
rng, elapsed_s, note``, optionally ``variance_fit`` (:data:`VARIANCE_KEY`: the reverse variance fitted to
its EMA weights, :func:`store_variance_fit`), and ``weights_sha256``: the sha256 of the ``model`` and ``ema`` weights
(:data:`WEIGHT_KEYS`), added by :func:`save_checkpoint` to every checkpoint and export it writes
and checked whenever one is read, so that a changed bit is refused as damage instead of sampled
from. Checkpoints written before checksums existed carry none and still load, unchecked (re-save
one to add them). How it is written and read safely (atomic replace, Ctrl-C held back,
``weights_only`` reads, checksums, the output-folder lock) lives in :mod:`ddpm_lib.files`; the
names are re-exported here for code that imported them from this module.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch

from .config import DiffusionConfig, MLPConfig, TrainConfig, UNetConfig, get_device
from .fitted_variance import VarianceFit
from .files import (LOCK_NAME, CheckpointError, OutputLock, check_writable, first_line, read_weights_file,
                    remove_partial_saves, replace_atomically, signals_deferred, with_checksums, write_weights_file)
from .models import (CUSTOM_KIND, ModelConfig, build_model, config_from_dict, config_to_dict, describe_model,
                     remember_image_shape)
from .schedules import Schedule, make_schedule, remember_diffusion

__all__ = ["FORMAT", "CHECKPOINT_NAME", "REQUIRED_KEYS", "WEIGHT_KEYS", "MIGRATIONS", "CheckpointError",
           "save_checkpoint", "load_checkpoint", "to_state", "from_state", "migrated", "check_compatible", "is_export",
           "check_resumable", "export_pretrained", "load_model", "VARIANCE_KEY", "store_variance_fit",
           # from ddpm_lib.files, where they live now
           "LOCK_NAME", "OutputLock", "check_writable", "read_weights_file", "remove_partial_saves",
           "replace_atomically", "signals_deferred"]

FORMAT = "ddpm_lib.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"  # a training run's checkpoint in its output folder
REQUIRED_KEYS = ("format", "model_config", "diffusion_config", "model", "step")
WEIGHT_KEYS = ("model", "ema")  # the weights whose sha256 every checkpoint written carries
VARIANCE_KEY = "variance_fit"  # the reverse variance fitted to the weights (ddpm_lib.fitted_variance)
PathLike = Union[str, Path]

# What a file written before a setting existed lacks, and the value its run had: read back, such a
# file takes the value here, not today's default (a run from before min-SNR weighting resumes
# unweighted); a missing setting not listed takes its dataclass default. Every reader goes through
# it (:func:`migrated`): loading, resuming, comparing, the command line's resume checks.
MIGRATIONS: Dict[str, Dict[str, Any]] = {
    "diffusion_config": {"prediction": "eps"},  # added with x0 and v prediction; earlier models predict the noise
    "train_config": {"lr_schedule": "constant", "min_snr_gamma": None,  # added with cosine decay and min-SNR
                     "precision": "fp32",  # added with bfloat16 autocast; earlier runs trained in float32
                     "t_distribution": "uniform"},  # added with the Laplace draw of t; earlier runs drew t uniformly
}
# not listed: train_config.subset, added when runs began to record their data; an older file does not
# say which images it trained on, so the library takes the data it is given (None) and the command
# line takes --subset


def save_checkpoint(state: Dict[str, Any], path: PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (:func:`ddpm_lib.files.write_weights_file`) with the
    sha256 of its weights (:data:`WEIGHT_KEYS`, :func:`ddpm_lib.files.with_checksums`, computed from
    what is written now): a temporary file is written, fsync'ed and renamed over ``path``, Ctrl-C and
    SIGTERM held back meanwhile. If anything fails (disk full, no permission), the previous checkpoint
    at ``path`` stays intact and :class:`CheckpointError` says why (``disk full while writing ...``)."""
    return write_weights_file(with_checksums(state, WEIGHT_KEYS), path, name_in_folder=CHECKPOINT_NAME)


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``, see :func:`ddpm_lib.files.read_weights_file`) onto
    ``map_location``, check the sha256 of its weights (if it carries them) and that it is one of ours;
    raise :class:`CheckpointError` saying what is wrong otherwise (a damaged file: use another copy)."""
    path = Path(path)
    state = read_weights_file(path, "ddpm_lib checkpoint", map_location, name_in_folder=CHECKPOINT_NAME)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ddpm_lib checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it may be from an older version")
    return state


def to_state(model_config: Union[ModelConfig, dict], diffusion: DiffusionConfig, train: TrainConfig, *,
             model: Dict[str, torch.Tensor], step: int, history: Union[Sequence[float], torch.Tensor] = (),
             ema: Optional[Dict[str, torch.Tensor]] = None, optimizer: Optional[Dict[str, Any]] = None,
             rng: Optional[Dict[str, torch.Tensor]] = None, elapsed_s: float = 0.0, note: str = "",
             precision_used: Optional[str] = None, data_shape: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """The checkpoint of a run: its three configs as plain dicts and its state (``weights_only``-loadable).
    A sampling-only export has no ``ema``, ``optimizer`` or ``rng`` (:func:`is_export`). ``precision_used``
    ("fp32" or "bf16") is what the run trains in, decided once at its first fit (``precision="auto"``
    resolved, :class:`ddpm_lib.training.Trainer`) and kept by a resume; None where not decided.
    ``model_config``: one of ours, or the dict :func:`ddpm_lib.models.describe_model` gives for a network
    of your own. ``data_shape``: the (C, H, W) of the images trained on (None: not recorded)."""
    described = model_config if isinstance(model_config, dict) else config_to_dict(model_config)
    return {"format": FORMAT, "model_config": described, "diffusion_config": asdict(diffusion),
            "train_config": asdict(train), "model": model, "ema": ema, "optimizer": optimizer, "step": step,
            "history": torch.as_tensor(history, dtype=torch.float32), "rng": rng, "elapsed_s": elapsed_s, "note": note,
            "precision_used": precision_used, "data_shape": None if data_shape is None else [int(d) for d in data_shape]}


def migrated(state: Dict[str, Any], key: str) -> Dict[str, Any]:
    """The settings a checkpoint stores under ``key``, with what an older file lacks filled from
    :data:`MIGRATIONS` (not a dict: returned as it is, for :func:`from_state` to refuse)."""
    saved = state.get(key, {})
    return {**MIGRATIONS.get(key, {}), **saved} if isinstance(saved, dict) else saved


def from_state(state: Dict[str, Any], key: str, path: PathLike = "checkpoint", **overrides) -> Any:
    """Rebuild the config a checkpoint stores under ``key`` (``model_config``, ``diffusion_config``
    or ``train_config``; what an older file lacks is filled from :data:`MIGRATIONS`, else the
    default), with ``overrides``. A setting this version does not know, or a value the config
    refuses, raises :class:`CheckpointError` naming the file and what to do."""
    saved = migrated(state, key)
    kind = saved.get("kind") if isinstance(saved, dict) else None
    if key == "model_config" and kind == CUSTOM_KIND:
        raise CheckpointError(f"checkpoint {path} holds the weights of a network of your own "
                              f"({saved.get('class', '?')}), not its code: build it as you did for training and "
                              f"pass it, load_model({str(path)!r}, model=YourNet(...)) or "
                              f"Trainer.from_checkpoint({str(path)!r}, model=YourNet(...))")
    cls = {"diffusion_config": DiffusionConfig, "train_config": TrainConfig,
           "model_config": {"unet": UNetConfig, "mlp": MLPConfig}.get(kind)}[key]
    if not isinstance(saved, dict) or cls is None:
        raise CheckpointError(f"checkpoint {path} has a damaged {key} ({str(saved)[:80]}); use another copy of it")
    unknown = sorted(set(saved) - {f.name for f in fields(cls)} - {"kind"})
    if unknown:
        raise CheckpointError(f"checkpoint {path} has {key} settings this ddpm_lib does not know "
                              f"({', '.join(unknown)}): it was written by another version; update ddpm_lib, "
                              f"or remove those keys")
    try:
        return config_from_dict({**saved, **overrides}) if key == "model_config" else cls(**{**saved, **overrides})
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: its {key} cannot be used ({first_line(err)}); "
                              f"use another copy of it") from err


def check_compatible(state: Dict[str, Any], model_config: Union[ModelConfig, dict], diffusion: DiffusionConfig) -> None:
    """Raise :class:`CheckpointError` naming every setting in which a checkpoint differs
    from the model/diffusion it is loaded into (T, schedule, model size, the class of a network of
    your own...). ``model_config``: a config of ours or :func:`ddpm_lib.models.describe_model`'s dict."""
    mine = model_config if isinstance(model_config, dict) else config_to_dict(model_config)
    saved = migrated(state, "model_config")
    custom = isinstance(saved, dict) and CUSTOM_KIND in (saved.get("kind"), mine.get("kind"))
    theirs = saved if custom else config_to_dict(from_state(state, "model_config"))
    diffs = []
    for section, theirs, mine in (
            ("diffusion", asdict(from_state(state, "diffusion_config")), asdict(diffusion)),
            ("model", theirs, mine)):
        for key in sorted(set(theirs) | set(mine)):
            if theirs.get(key) != mine.get(key):
                diffs.append(f"{section}.{key}: checkpoint {theirs.get(key)!r} vs now {mine.get(key)!r}")
    if diffs:
        raise CheckpointError("checkpoint does not match this setup: " + "; ".join(diffs)
                              + ". Build the model from the checkpoint (load_model / Trainer.from_checkpoint) "
                                "or train a new one")


def is_export(state: Dict[str, Any]) -> bool:
    """Whether a checkpoint is a sampling-only copy (:func:`export_pretrained`, like the shipped
    weights: EMA weights in float16, no optimizer or random-number states)."""
    return any(state.get(k) is None for k in ("ema", "optimizer", "rng"))


def check_resumable(state: Dict[str, Any], path: PathLike = "the checkpoint") -> None:
    """Raise :class:`CheckpointError` if training cannot continue from ``state``: a sampling-only
    export can be sampled (:func:`load_model`) but holds no optimizer state to resume."""
    if is_export(state):
        raise CheckpointError(f"{path} is a sampling-only export (EMA weights, no optimizer state): it can be "
                              f"sampled (load_model), not resumed; resume from "
                              f"the run's own {CHECKPOINT_NAME}, or train a new run")


def export_pretrained(checkpoint: PathLike, out: PathLike, *, dtype: torch.dtype = torch.float16,
                      note: str = "") -> Path:
    """Write a small sampling-only checkpoint: the EMA weights (stored as ``dtype``, float16 by
    default: half the size, no visible change in samples), the configs, the step count and
    the loss history. :func:`load_model` reads it like any checkpoint."""
    state = load_checkpoint(checkpoint)
    weights = state.get("ema") or state["model"]
    described = migrated(state, "model_config")
    custom = isinstance(described, dict) and described.get("kind") == CUSTOM_KIND
    model_config = described if custom else from_state(state, "model_config", checkpoint)
    small = to_state(model_config, *(from_state(state, key, checkpoint) for key in ("diffusion_config", "train_config")),
                     model={k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()},
                     step=state["step"], history=state.get("history", ()), elapsed_s=state.get("elapsed_s", 0.0),
                     note=note, data_shape=state.get("data_shape"))
    if state.get(VARIANCE_KEY) is not None:  # fitted to these EMA weights: float16 leaves it as good
        small[VARIANCE_KEY] = state[VARIANCE_KEY]
    return save_checkpoint(small, out)


def store_variance_fit(path: PathLike, fit: VarianceFit) -> Path:
    """Add ``fit``, measured on the model :func:`load_model` gives for ``path`` (its EMA weights), to that
    checkpoint, atomically (:func:`save_checkpoint`); from then on :func:`load_model` hands it to the model
    as ``model.variance_fit``. It is tied to the checkpoint's step: a run trained further drops it."""
    state = load_checkpoint(path)
    state[VARIANCE_KEY] = {**fit.state(), "step": state["step"]}
    return save_checkpoint(state, path)


def load_model(path: PathLike, *, ema: bool = True, device: Union[str, torch.device, None] = None,
               model: Optional[torch.nn.Module] = None) -> Tuple[torch.nn.Module, Schedule]:
    """Rebuild a trained model (EMA weights by default) and its schedule from a checkpoint,
    on ``device`` (default: :func:`get_device`), in eval mode. The model remembers its
    ``diffusion_config`` (:func:`ddpm_lib.schedules.remember_diffusion`): samplers refuse another schedule;
    and the shape of the images it was trained on, which samplers draw; and, where the checkpoint holds
    one for these weights, the reverse variance fitted to them (``model.variance_fit``, a
    :class:`~ddpm_lib.fitted_variance.VarianceFit`).

    A checkpoint of a network of your own holds its weights, not its code: pass ``model``, built as
    for training (the same class and arguments), and the weights are loaded into it."""
    device = torch.device(device) if device is not None else get_device()
    state = load_checkpoint(path)
    if model is None:
        model = build_model(from_state(state, "model_config", path))
    else:
        check_compatible(state, describe_model(model), from_state(state, "diffusion_config", path))
    weights = state["ema"] if ema and state.get("ema") is not None else state["model"]
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the model its config describes "
                              f"({first_line(err)}); the file is damaged or was edited: use another copy") from err
    diffusion = from_state(state, "diffusion_config", path)
    remember_diffusion(model, diffusion)  # a sampler given another schedule then says so
    if state.get("data_shape") is not None:
        remember_image_shape(model, state["data_shape"])
    fit = state.get(VARIANCE_KEY)
    if isinstance(fit, dict) and fit.get("step") == state["step"] and (ema or state.get("ema") is None):
        model.variance_fit = VarianceFit.from_state(fit)  # fitted to these weights (store_variance_fit)
    return model.to(device).eval(), make_schedule(diffusion).to(device)
