"""Command line: ``python -m ddpm_lib [train|sample|evaluate|fit-variance|export|classifier] ...``; with no command, a short demo:
samples of the shipped U-Net, a 3-minute training run of the x0-predicting MLP, and the
evaluator's numbers for both (``runs/demo/``, replacing only an earlier demo there, never a run of yours).
No command replaces an earlier output without ``--overwrite`` (or ``train --resume``), or writes into
the shipped weights folder (``data/pretrained/``) without ``--replace-shipped``. Errors are one line;
Ctrl-C ends a command with exit code 130."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, Iterable, List, NoReturn, Optional, Tuple

import torch
from torch.utils.data import TensorDataset

from .checkpoints import (CHECKPOINT_NAME, CheckpointError, check_resumable, export_pretrained, is_export,
                          load_checkpoint, load_model, migrated, store_variance_fit)
from .config import (LR_SCHEDULES, MAX_SEED, PRECISIONS, SAMPLERS, SPACINGS, T_DISTRIBUTIONS, DiffusionConfig,
                     EvalConfig, MLPConfig, SamplerConfig, TrainConfig, UNetConfig, get_device, seed_everything,
                     unet_for_budget)
from .data import MNIST_SHAPE, load_mnist, pretrained_dir, pretrained_path
from .fitted_variance import IMAGES_PER_T
from .errors import DDPMError, InputError
from .files import (OutputLock, check_writable, file_digest, first_line, read_weights_file, remove_partial_saves,
                    replace_atomically)
from .image_files import FoundImages, load_images, split
from .metrics.classifier import ARCHS, DEFAULT_EPOCHS, MIN_ACCURACY, ClassifierConfig
from .metrics.likelihood import MIN_T_SAMPLES
from .models import ModelConfig, build_model, config_to_dict, count_parameters, image_shape_of
from .plotting import save_grid
from .samplers import check_sample_count, default_guidance, sample
from .schedules import PREDICTIONS
from .training import Trainer

DEBUG_ENV = "DDPM_DEBUG"  # =1: every error with its traceback (the library's own errors are one line otherwise)
MIN_FID_SAMPLES = 100  # evaluate warns below this --n: MNIST-FID is biased and noisy with few samples
SAMPLE_FILES = ("samples.png", "samples.pt")  # what `sample` (and `train`, at its end) writes into its --out


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (no usage block) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def _number(text: str, kind: Callable, ok: Callable, want: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}") from None
    if not ((kind is not float or math.isfinite(value)) and ok(value)):  # an int of 400 digits is no float
        raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (nan and inf refused)."""
    return _number(text, float, lambda v: v > 0, "a finite number > 0")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (nan and inf refused)."""
    return _number(text, float, lambda v: v >= 0, "a finite number >= 0")


def seed(text: str) -> int:
    """argparse type: a random seed 0..MAX_SEED."""
    return _number(text, int, lambda v: 0 <= v <= MAX_SEED, f"an integer 0..{MAX_SEED}")


def t_samples(text: str) -> int:
    """argparse type: t draws per image for bits/dim, at least MIN_T_SAMPLES (one per quarter of t)."""
    return _number(text, int, lambda v: v >= MIN_T_SAMPLES, f"an integer >= {MIN_T_SAMPLES} (one t in each "
                   f"quarter of the diffusion)")


def digit(text: str) -> int:
    """argparse type: a digit class 0..9."""
    return _number(text, int, lambda v: 0 <= v <= 9, "a digit 0..9")


def channels(text: str) -> int:
    """argparse type: a U-Net width, a positive multiple of its GroupNorm groups."""
    groups = UNetConfig().groups
    return _number(text, int, lambda v: v >= 1 and v % groups == 0, f"a positive multiple of {groups} "
                   f"(the U-Net's GroupNorm groups)")


def _sampler_config(args: argparse.Namespace) -> SamplerConfig:
    """The SamplerConfig the sampler flags describe (_add_sampler_args: one flag per field)."""
    return SamplerConfig(sampler=args.sampler, steps=args.steps, eta=args.eta, spacing=args.spacing, seed=args.seed)


# ---------------------------------------------------------------- what a command may write (and read)

def shipped_folder() -> Path:
    """The folder of the shipped weights: ``data/pretrained/`` (under ``$DDPM_DATA`` when it is set)."""
    return pretrained_dir()


def refuse_shipped(path: Path, replace_shipped: bool, flag: str, *, folder: bool = False) -> bool:
    """The one guard of the shipped weights, for every command that writes: ``path`` (a file, or with
    ``folder`` a folder written into) in :func:`shipped_folder` or below it, however reached (symbolic
    links followed), is refused unless ``--replace-shipped`` was given. Returns whether it lies there."""
    path = Path(path)
    # a link at a file's own path is replaced, never written through: only its folder is followed
    where = path.resolve() if folder else path.parent.resolve() / path.name
    shipped = shipped_folder().resolve()
    if where != shipped and shipped not in where.parents:
        return False
    if not replace_shipped:
        raise InputError(f"{flag} {path} is in {shipped_folder()}, the shipped weights the notebooks and the metrics "
                         f"use; choose another {flag}, or add --replace-shipped to write there on purpose")
    return True


def _check_output_file(path: Path, flag: str, overwrite: bool) -> None:
    """Refuse, before any work, an output file that a folder stands in the way of, or that exists
    already while ``--overwrite`` was not given."""
    if path.is_dir() and not path.is_symlink():
        raise CheckpointError(f"{path} is a folder, not a file, so nothing can be written there; move that folder "
                              f"away, or choose another {flag}")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise CheckpointError(f"{path} exists already: replace it with --overwrite, or choose another {flag}")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through symbolic or hard links too), as ``cp`` asks."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def remove_stale_temporaries(paths: Iterable[Path]) -> List[Path]:
    """Delete what writes of these outputs, killed before their final rename, left beside them
    (:func:`ddpm_lib.files.remove_partial_saves`); returns what was removed. Called before a command
    writes there (``train`` does so under its folder's lock)."""
    return [tmp for path in paths for tmp in remove_partial_saves(path)]


def _report_removed(removed: List[Path], folder: Path) -> None:
    if removed:
        print(f"removed {len(removed)} unfinished file(s) that a killed write left in {folder}")


def _load_for_sampling(args: argparse.Namespace, device: torch.device):
    """``load_model`` for ``sample`` and ``evaluate``; ``--raw`` on an export (which holds only the EMA
    weights) is refused rather than quietly sampling the EMA weights."""
    if args.raw and is_export(load_checkpoint(args.checkpoint)):
        raise InputError(f"--raw: {args.checkpoint} is a sampling-only export, which holds only the EMA weights; "
                         f"leave out --raw, or give the run's own {CHECKPOINT_NAME} for its raw weights")
    return load_model(args.checkpoint, ema=not args.raw, device=device)


def _check_labels_wanted(model, digit: Optional[int], guidance: Optional[float]) -> None:
    """--digit and --guidance need a class-conditional model: say so for any other, before sampling."""
    if getattr(model, "null_label", None) is not None:
        return
    fix = (f"or sample a class-conditional model (train one with --model cond-unet, or use the shipped "
           f"{pretrained_path('cond_unet_mnist')})")
    if digit is not None:
        raise InputError(f"--digit {digit}: this model is unconditional (not class-conditional), so it cannot draw a "
                         f"chosen digit; leave out --digit, {fix}")
    if guidance:
        raise InputError(f"--guidance {guidance:g}: this model is unconditional (not class-conditional), so it "
                         f"cannot be guided; leave out --guidance, {fix}")


def _sample(model, schedule, n: int, config: SamplerConfig, digit: Optional[int] = None,
            guidance: Optional[float] = None):
    """Draw n samples; returns (images, requested labels or None, guidance weight used, seconds)."""
    t0 = time.perf_counter()
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if digit is not None and not 0 <= digit <= 9:
        raise InputError(f"--digit must be 0..9, got {digit}")
    _check_labels_wanted(model, digit, guidance)
    if getattr(model, "null_label", None) is not None and digit is None:
        y = torch.arange(n) % 10  # a conditional model without --digit: every digit in turn
    else:
        y = None if digit is None else torch.full((n,), digit)
    w = default_guidance(y, config) if guidance is None else guidance
    x = sample(model, schedule, n, config, y=y, guidance=w)
    return x.cpu(), y, w, time.perf_counter() - t0


def _sample_and_save(model, schedule, out: Path, n: int, config: SamplerConfig, digit: Optional[int] = None,
                     guidance: Optional[float] = None) -> Path:
    x, _, w, seconds = _sample(model, schedule, n, config, digit, guidance)
    out.mkdir(parents=True, exist_ok=True)
    png, pt = (out / name for name in SAMPLE_FILES)
    replace_atomically(png, lambda tmp: save_grid(x, str(tmp), nrow=max(1, int(n ** 0.5))))
    replace_atomically(pt, lambda tmp: torch.save(x, tmp))
    c = config
    print(f"sampled {n} images ({c.sampler}{'' if c.sampler == 'ddpm' else f'-{c.steps}, {c.spacing} steps'}"
          f"{f', guidance w = {w}' if w else ''}) in {seconds:.1f}s -> {png}")
    return png


def _stop_on_sigterm(signum, frame):  # a killed run saves its checkpoint like Ctrl-C does
    raise KeyboardInterrupt


# --model: each kind and the model config a new run of it trains on MNIST (_model_kind reads a saved one
# back; _sized_for fits it to --data's images)
MODEL_KINDS: Dict[str, Callable[[argparse.Namespace], ModelConfig]] = {
    "unet": lambda args: unet_for_budget(args.minutes, args.steps, **_width(args)),
    "cond-unet": lambda args: unet_for_budget(args.minutes, args.steps, num_classes=10, **_width(args)),
    "mlp": lambda args: MLPConfig(),
}

def _width(args: argparse.Namespace) -> dict:
    """--base-channels as a UNetConfig field, when typed (else unet_for_budget chooses by the budget)."""
    return {} if args.base_channels is None else {"base_channels": args.base_channels}


# train's flags that set a config field: (section of a checkpoint, field). A new run builds its
# configs from them; a resumed run keeps the checkpoint's, so typing one with another value is refused.
FLAG_FIELDS: Dict[str, Tuple[str, str]] = {
    **{flag: ("diffusion_config", flag) for flag in ("schedule", "T", "prediction")},
    "base_channels": ("model_config", "base_channels"),
    **{flag: ("train_config", flag) for flag in ("batch_size", "lr", "lr_schedule", "min_snr_gamma", "t_distribution",
                                                 "precision", "checkpoint_every", "seed", "subset", "data")},
}


def _model_kind(model_config: dict) -> str:
    """The --model name (a key of MODEL_KINDS) of a saved model config."""
    return "mlp" if model_config.get("kind") == "mlp" else ("cond-unet" if model_config.get("num_classes") else "unet")


def _flag_value(args: argparse.Namespace, flag: str):
    """A FLAG_FIELDS flag's value as its config field holds it (--min-snr-gamma 0: None, unweighted;
    --data ./images/: "images")."""
    value = getattr(args, flag)
    if flag == "data":
        return None if value is None else os.path.normpath(value)
    return (value or None) if flag == "min_snr_gamma" else value


def _same_setting(flag: str, asked, saved) -> bool:
    """Whether a flag typed with --resume asks for what the checkpoint holds (--data: the same file or
    folder, however the path is written)."""
    if flag == "data" and asked is not None and saved is not None:
        return Path(asked).resolve() == Path(saved).resolve()
    return asked == saved


def _fields_from_flags(args: argparse.Namespace, section: str) -> dict:
    """The config fields of one checkpoint section that train's flags set."""
    return {field: _flag_value(args, flag) for flag, (sec, field) in FLAG_FIELDS.items() if sec == section}


def _resume_conflicts(args: argparse.Namespace, state: dict) -> List[str]:
    """The flags typed with --resume whose value differs from the checkpoint's: a resumed run
    keeps the checkpoint's model, schedule, data and optimiser settings (only --steps and
    --minutes change)."""
    # settings added since a checkpoint was written take the values its run had (checkpoints.MIGRATIONS)
    sections = {"model_config": state["model_config"], "diffusion_config": migrated(state, "diffusion_config"),
                "train_config": migrated(state, "train_config")}
    saved = {"model": _model_kind(sections["model_config"]),
             **{flag: sections[sec].get(field) for flag, (sec, field) in FLAG_FIELDS.items()
                if sec != "train_config" or field in sections[sec]}}  # an old file may not record its subset
    asked = {flag: args.model if flag == "model" else _flag_value(args, flag) for flag in saved if flag in args.given}
    shown = {**saved, **({"data": saved["data"] or "MNIST"} if "data" in saved else {})}
    return [f"--{flag.replace('_', '-')} {getattr(args, flag)} (checkpoint: {shown[flag]})"
            for flag, value in asked.items() if not _same_setting(flag, value, saved[flag])]


def _budget_left(trainer: Trainer, ckpt: Path) -> None:
    """Refuse a resume whose --steps / --minutes budget the checkpoint has already used up."""
    cfg = trainer.config
    if cfg.steps is not None and trainer.step >= cfg.steps:
        raise InputError(f"{ckpt} is at step {trainer.step} already, its budget of {cfg.steps} steps; give more "
                         f"--steps (e.g. --steps {trainer.step + max(cfg.steps, 1)}) to train on")
    if cfg.max_minutes is not None and trainer.elapsed_s >= cfg.max_minutes * 60:
        raise InputError(f"{ckpt} has trained {trainer.elapsed_s / 60:.1f} minutes already, its budget of "
                         f"{cfg.max_minutes:g}; give a larger --minutes (it counts earlier time) to train on")


def cmd_train(args: argparse.Namespace) -> int:
    handlers = {signal.SIGTERM: signal.signal(signal.SIGTERM, _stop_on_sigterm),  # a killed run saves too
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}  # also in the background
    try:
        return _locked_train(args)
    finally:
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)


OwnImages = Tuple[TensorDataset, FoundImages]  # --data's images, as load_images reads them


def _own_images(args: argparse.Namespace, state: Optional[dict]) -> Optional[OwnImages]:
    """The images of ``--data`` (a resumed run: the path and --subset saved with it), read and checked
    (:func:`ddpm_lib.image_files.load_images`); None for a run on MNIST. Called before the output folder
    is made or locked, so that missing, empty or unreadable data leaves nothing behind."""
    path, subset = _flag_value(args, "data"), args.subset
    if state is not None:
        saved = migrated(state, "train_config")
        if "data" in saved:  # older files do not record it: the --data given, like --subset
            path = saved["data"]
        if "subset" in saved:
            subset = saved["subset"]
    if path is None:
        return None
    if args.download:  # --download with --data is a bad command line (_ignored_flag); here a resumed run's data
        raise InputError(f"--download fetches MNIST, and this run trains on {path}; drop --download")
    if state is not None and not Path(path).exists():
        raise InputError(f"this run trained on {path} (its TrainConfig.data), which is not there (seen from "
                         f"{Path.cwd()}); put the images back, or resume from the folder it was trained in")
    return load_images(path, subset=subset)  # seed 0 draws the subset, as for MNIST (load_mnist)


def _sized_for(config: ModelConfig, found: FoundImages) -> ModelConfig:
    """A model config fitted to ``found``'s images: their channels and size (square images only); a U-Net
    keeps its levels and puts its self-attention at the smallest one, as MNIST's at 7x7."""
    c, h, w = found.shape
    if h != w:
        side = min(h, w)
        raise InputError(f"{found.source} holds {h}x{w} images (height x width), and the models take square ones; "
                         f"crop them to {side}x{side} (or pad them to a square)")
    if isinstance(config, MLPConfig):
        return replace(config, in_channels=c, image_size=h)
    smallest = h // 2 ** (len(config.channel_mults) - 1)
    return replace(config, in_channels=c, image_size=h, attn_resolutions=(smallest,))


def _new_model(args: argparse.Namespace, own: Optional[OwnImages]) -> torch.nn.Module:
    """The network a new run trains: --model's, sized for --data's images when given, its weights
    initialised from --seed. A U-Net whose levels cannot halve the images is refused, with the sizes
    that work (the U-Net's own words)."""
    seed_everything(args.seed)
    config = MODEL_KINDS[args.model](args)
    if own is None:
        return build_model(config)
    config = _sized_for(config, own[1])
    try:
        return build_model(config)
    except InputError as err:
        size = config.image_size
        raise InputError(f"--data {own[1].source}: the U-Net cannot take {size}x{size} images: {first_line(err)}; "
                         f"resize the images to such a size, or train --model mlp, which takes any size") from err


def _locked_train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    refuse_shipped(out, args.replace_shipped, "--out", folder=True)  # before the folder or its lock is made
    state, resume_from = None, None
    if args.resume:  # refused before anything is created or locked
        resume_from = out / CHECKPOINT_NAME if args.resume == "auto" else Path(args.resume)
        if not resume_from.exists():
            raise CheckpointError(f"--resume: there is no checkpoint at {resume_from}; leave out --resume to start "
                                  f"a new run, or give the checkpoint's path (--resume PATH)")
        state = load_checkpoint(resume_from)
        check_resumable(state, resume_from)
        conflicts = _resume_conflicts(args, state)
        if conflicts:
            raise InputError(f"--resume continues with the checkpoint's settings, but {'; '.join(conflicts)}; "
                             f"drop those flags, or start a new run with another --out")
    own = _own_images(args, state)  # bad data, or a network that cannot take it: refused before anything is made
    model = None if resume_from is not None else _new_model(args, own)
    existed = out.exists()
    lock = OutputLock(out).acquire()  # also finds an unwritable --out now, not at the first checkpoint
    try:
        return _train(args, out, state, resume_from, own, model)
    finally:
        lock.release()
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a refused run leaves nothing behind


def _new_trainer(args: argparse.Namespace, out: Path, model: torch.nn.Module, device: torch.device) -> Trainer:
    """A new run: ``model`` (:func:`_new_model`), its configs from train's flags (FLAG_FIELDS)."""
    steps = args.steps if args.steps is not None else (None if args.minutes else TrainConfig().steps)
    config = TrainConfig(steps=steps, max_minutes=args.minutes, **_fields_from_flags(args, "train_config"))
    diffusion = DiffusionConfig(**_fields_from_flags(args, "diffusion_config"))
    return Trainer(model, diffusion, config, out_dir=out, device=device)


def _resumed_trainer(args: argparse.Namespace, out: Path, state: dict, resume_from: Path,
                     device: torch.device) -> Trainer:
    """A resumed run: the checkpoint's settings, with only --steps and --minutes changed."""
    overrides = {k: v for k, v in (("steps", args.steps), ("max_minutes", args.minutes)) if v is not None}
    for field in ("subset", "data"):
        if field not in state.get("train_config", {}):  # written before runs recorded their data
            overrides[field] = _flag_value(args, field)
    trainer = Trainer.from_checkpoint(resume_from, out_dir=out, device=device, **overrides)
    _budget_left(trainer, resume_from)
    return trainer


def _unet_levels(model: torch.nn.Module) -> str:
    """How a U-Net sized for --data's images is built, for the start line (empty for any other model)."""
    cfg = model.config
    if not isinstance(cfg, UNetConfig):
        return ""
    levels = [cfg.image_size // 2 ** i for i in range(len(cfg.channel_mults))]
    attention = ", ".join(f"{a}x{a}" for a in cfg.attn_resolutions) or "none"
    return f" (levels {', '.join(map(str, levels))} pixels, self-attention at {attention})"


def _train(args: argparse.Namespace, out: Path, state: Optional[dict], resume_from: Optional[Path],
           own: Optional[OwnImages], model: Optional[torch.nn.Module]) -> int:
    """cmd_train's work, while it holds the lock on ``out``: a resumed run (``state``) or a new one
    (``model``), on MNIST or on ``own`` images."""
    ckpt = out / CHECKPOINT_NAME
    samples = [out / name for name in SAMPLE_FILES] if args.n_samples > 0 else []
    _report_removed(remove_stale_temporaries([ckpt, *samples]), out)
    if ckpt.is_dir() and not ckpt.is_symlink():
        raise CheckpointError(f"{ckpt} is a folder, not a checkpoint, so the run could not be saved there; move "
                              f"that folder away, or choose another --out")
    if ckpt.exists() and not args.overwrite and (resume_from is None or resume_from.resolve() != ckpt.resolve()):
        try:
            held = f" (step {load_checkpoint(ckpt)['step']})"
        except CheckpointError:
            held = " (unreadable)"
        raise CheckpointError(f"{ckpt} holds an earlier run{held}: continue it with --resume, start over with "
                              f"--overwrite (replaces it), or choose another --out")
    for path in samples:  # a new run's samples never replace others' unasked; a resumed run renews its own
        _check_output_file(path, "--out", args.overwrite or resume_from is not None)
    device = get_device(args.device)
    if resume_from is not None:
        seed_everything(args.seed)
        trainer = _resumed_trainer(args, out, state, resume_from, device)
    else:  # seeded when its model was made (_new_model)
        trainer = _new_trainer(args, out, model, device)
    trainer.on_interrupt = lambda _: print(f"Continue with: python -m ddpm_lib train --out {out} --resume")
    if args.n_samples > 0:  # a count that cannot fit is refused now, not after the training
        check_sample_count(args.n_samples, image_shape_of(trainer.model), device)
    if own is None:
        data = load_mnist(subset=trainer.config.subset, download=args.download)
        what, arch = f"{len(data)} images", ""
    else:
        data, found = own
        what, arch = str(found), _unet_levels(trainer.model)
    if trainer.config.batch_size > len(data):
        raise InputError(f"--batch-size {trainer.config.batch_size} is larger than the {len(data)} training "
                         f"images; lower it" + (", or raise --subset" if trainer.config.subset else ""))
    kind = _model_kind(config_to_dict(trainer.model.config))
    if resume_from is not None:
        d = trainer.diffusion
        print(f"resuming {resume_from} at step {trainer.step}: {kind}, T {d.T} ({d.schedule}, predicts "
              f"{d.prediction}), batch {trainer.config.batch_size}, lr {trainer.config.lr:g}, seed "
              f"{trainer.config.seed}")
    print(f"training a {count_parameters(trainer.model) / 1e6:.2f}M-parameter {kind}{arch} on "
          f"{what}, device {device}, output {out}")
    if resume_from is None and args.model != "mlp" and args.base_channels is None and args.minutes and args.steps is None:
        print(f"width {trainer.model.config.base_channels} (UNetConfig.small()): measured the better U-Net for a "
              f"--minutes budget on a CPU (benchmarks/RESULTS.md, \"Minute budgets as typed\"); --base-channels "
              f"{UNetConfig().base_channels} trains the default width")
    trainer.fit(data)
    if trainer.interrupted:
        return 130
    rate = trainer.step * trainer.config.batch_size / max(trainer.elapsed_s, 1e-9)
    print(f"trained {trainer.step} steps in {trainer.elapsed_s / 60:.1f} min ({rate:.0f} images/s); "
          f"final loss {sum(trainer.history[-50:]) / len(trainer.history[-50:]):.4f}; "
          f"checkpoint {trainer.checkpoint_path}")
    if args.n_samples > 0:
        model, schedule = load_model(trainer.checkpoint_path, device=device)
        default = SamplerConfig()
        _sample_and_save(model, schedule, out, args.n_samples,
                         SamplerConfig(steps=min(default.steps, schedule.T), seed=args.seed))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    out = Path(args.out)
    # all before sampling, which can take minutes; --replace-shipped is the shipped folder's own --overwrite
    overwrite = refuse_shipped(out, args.replace_shipped, "--out", folder=True) or args.overwrite
    files = [out / name for name in SAMPLE_FILES]
    for path in files:
        _check_output_file(path, "--out", overwrite)
    check_writable(out, "--out")
    model, schedule = _load_for_sampling(args, get_device(args.device))
    _report_removed(remove_stale_temporaries(files), out)
    _sample_and_save(model, schedule, out, args.n, _sampler_config(args), args.digit, args.guidance)
    return 0


# evaluate on a run of your own images (--data): what the MNIST judges would say means nothing there
NOT_MNIST = "MNIST-FID and the digit judges would score nothing meaningful"
LOSS_PER_T_STEPS = 10  # t values, spread over [0, T), at which evaluate measures such a run's loss
LOSS_PER_T_IMAGES = 256  # at most this many images for it (each t passes them through the network at once)


def _run_images(data: str, subset: Optional[int],
                shape: Tuple[int, ...]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The images a run trained on and those its --subset left out (None if none), read again from its
    ``TrainConfig.data``; refused in one line if they are gone or are no longer the images it trained on."""
    if not Path(data).exists():
        raise InputError(f"this run was trained on {data} (its TrainConfig.data), which is not there (seen from "
                         f"{Path.cwd()}); put the images back, or evaluate from the folder it was trained in")
    images = load_images(data)[0].tensors[0]
    if tuple(images.shape[1:]) != tuple(shape):
        now, then = ("x".join(map(str, s)) for s in (images.shape[1:], shape))
        raise InputError(f"{data} now holds {now} images, but this run was trained on {then} ones from it; give "
                         f"back the images it was trained on")
    return split(images, subset)  # load_images(data, subset=...) drew the first part


def _sampling_fields(args: argparse.Namespace, schedule, guidance: float, seconds: float) -> dict:
    """evaluate's JSON fields that say how the samples were drawn."""
    return {"checkpoint": str(args.checkpoint), "sampler": args.sampler,
            "steps": schedule.T if args.sampler == "ddpm" else args.steps,
            **({} if args.sampler == "ddpm" else {"spacing": args.spacing}),
            **({"eta": args.eta} if args.sampler == "ddim" else {}),
            "guidance": guidance, "digit": args.digit, "sampling_s": round(seconds, 2)}


def _bits_per_dim_fields(args: argparse.Namespace, model, schedule, images: torch.Tensor) -> dict:
    """evaluate's JSON fields of the variational bound (bits/dim) on ``images``."""
    from .metrics import bits_per_dim

    fit = getattr(model, "variance_fit", None)  # stored by fit-variance; the JSON says which variance was used
    vlb = bits_per_dim(model, schedule, images, t_samples=args.t_samples, seed=args.seed,
                       variance="beta_tilde" if fit is None else fit)
    return dict(bits_per_dim=round(vlb.total, 5), bits_per_dim_stderr=round(vlb.stderr, 5),
                bits_per_dim_variance="beta_tilde" if fit is None else "fitted",
                bits_per_dim_terms={k: round(v, 5) for k, v in vlb.terms.items()},
                bits_per_dim_images=vlb.n, bits_per_dim_t_samples=vlb.t_samples)


def _evaluate_own_images(args: argparse.Namespace, model, schedule, data: Optional[str], subset: Optional[int]) -> int:
    """evaluate on a run trained on images other than MNIST's (``data``: its TrainConfig.data): the MNIST
    judges are left out (one ``note:`` line says why; --classifier is refused), and the measures that do not
    depend on MNIST are printed as one JSON line: bits/dim (--bpd-images) and the loss at LOSS_PER_T_STEPS
    values of t on the images its --subset left out (else on its training images, said so), and the
    memorisation check of the samples against the training images (only with held-out images to compare)."""
    from .metrics import loss_per_t, memorisation_check

    shape = image_shape_of(model)
    why = f"this run was trained on {data or 'x'.join(map(str, shape)) + ' images'}, not MNIST: {NOT_MNIST}"
    for flag in ("--classifier", "--second-classifier"):
        if getattr(args, flag[2:].replace("-", "_")) is not None:
            raise InputError(f"{flag}: {why}; drop {flag}")
    if data is None:
        if args.bpd_images:
            raise InputError(f"--bpd-images: {why}, and it records no path to its images (TrainConfig.data) to "
                             f"measure bits/dim on; drop --bpd-images")
        print(f"note: {why}, so they are left out; the run records no path to its images (TrainConfig.data), so "
              f"only the sampling is reported", file=sys.stderr)
        _, _, w, seconds = _sample(model, schedule, args.n, _sampler_config(args), args.digit, args.guidance)
        print(json.dumps({**_sampling_fields(args, schedule, w, seconds), "n": args.n, "image_shape": list(shape)}))
        return 0
    train, held = _run_images(data, subset, shape)
    unseen = train if held is None else held
    result = {"data": data, "image_shape": list(shape), "n": args.n,
              "eval_images": "training" if held is None else "held_out", "eval_images_available": len(unseen)}
    if args.bpd_images > 0:  # first: images that are not 8-bit pixels are refused before minutes of sampling
        try:
            result.update(_bits_per_dim_fields(args, model, schedule, unseen[:args.bpd_images]))
        except InputError as err:  # the library's words, and what to do here
            raise InputError(f"--bpd-images: the images of {data} cannot be measured in bits/dim "
                             f"({first_line(err)}); drop --bpd-images") from err
    if held is not None:
        print(f"note: {why}, so they are left out; bits/dim, loss per t and memorisation are measured against the "
              f"{len(held)} images of {data} that --subset {subset} left out", file=sys.stderr)
    else:
        print(f"note: {why}, so they are left out; the run trained on all {len(train)} images of {data}, so none "
              f"is held out: bits/dim and loss per t are measured on training images, and memorisation is not "
              f"checked (train with --subset to hold some out)", file=sys.stderr)
    x, _, w, seconds = _sample(model, schedule, args.n, _sampler_config(args), args.digit, args.guidance)
    if held is not None:
        memo = memorisation_check(x, train, held[:args.n])
        result.update(memorisation_ratio=round(memo.ratio, 4), copy_share=round(memo.copy_share, 4),
                      memorisation_reference_images=min(len(held), args.n))
    timesteps = torch.linspace(0, schedule.T - 1, LOSS_PER_T_STEPS).round().long().unique().tolist()
    ts, losses = loss_per_t(model, schedule, unseen[:LOSS_PER_T_IMAGES], timesteps=timesteps, seed=args.seed)
    result.update(loss_per_t={str(t): round(v, 5) for t, v in zip(ts.tolist(), losses.tolist())},
                  loss_per_t_images=min(len(unseen), LOSS_PER_T_IMAGES))
    print(json.dumps({**_sampling_fields(args, schedule, w, seconds), **result}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .metrics import SampleEvaluator, default_classifier_path, load_classifier, memorisation_check

    device = get_device(args.device)
    model, schedule = _load_for_sampling(args, device)
    _check_labels_wanted(model, args.digit, args.guidance)
    run = migrated(load_checkpoint(args.checkpoint), "train_config")
    run = run if isinstance(run, dict) else {}  # (a damaged one: its model, read above, says it trained on MNIST)
    if run.get("data") is not None or image_shape_of(model) != MNIST_SHAPE:
        return _evaluate_own_images(args, model, schedule, run.get("data"), run.get("subset"))
    if args.n < MIN_FID_SAMPLES:
        print(f"warning: MNIST-FID from --n {args.n} samples is unreliable (biased upwards and noisy below "
              f"{MIN_FID_SAMPLES}); compare FIDs only at equal n (default --n {EvalConfig().n})", file=sys.stderr)
    for path in (args.classifier or default_classifier_path("cnn"), args.second_classifier or default_classifier_path("mlp")):
        read_weights_file(path, "classifier file")  # one clear line for an empty, refused or foreign file
    judges = {"classifier": load_classifier(args.classifier, device=device, check_accuracy=True),
              "second": load_classifier(args.second_classifier or default_classifier_path("mlp"), device=device,
                                        check_accuracy=True)}
    evaluator = SampleEvaluator(judges["classifier"], second=judges["second"])
    x, y, w, seconds = _sample(model, schedule, args.n, _sampler_config(args), args.digit, args.guidance)
    report = evaluator.evaluate(x, digits=y)
    test = load_mnist(train=False).tensors[0]
    memo = memorisation_check(x, evaluator.train_images, test[:args.n])
    result = {**_sampling_fields(args, schedule, w, seconds),
              **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in report.as_dict().items()},
              "memorisation_ratio": round(memo.ratio, 4), "copy_share": round(memo.copy_share, 4),
              **{f"{name}_used": {"path": j.path, "kind": j.arch, "test_accuracy": round(j.test_accuracy, 4),
                                   "measured_accuracy": round(j.measured_accuracy, 4)}
                 for name, j in judges.items()}}
    if args.bpd_images > 0:
        result.update(_bits_per_dim_fields(args, model, schedule, test[:args.bpd_images]))
    print(json.dumps(result))
    return 0


def cmd_fit_variance(args: argparse.Namespace) -> int:
    from .fitted_variance import fit_variance

    checkpoint = Path(args.checkpoint)
    refuse_shipped(checkpoint, args.replace_shipped, "CHECKPOINT")
    model, schedule = load_model(checkpoint, device=get_device(args.device))
    run = migrated(load_checkpoint(checkpoint), "train_config")
    data = run.get("data") if isinstance(run, dict) else None
    if data is not None:
        images, labels = _run_images(data, run.get("subset"), image_shape_of(model))[0], None
    elif image_shape_of(model) != MNIST_SHAPE:
        raise InputError(f"{checkpoint} records no path to the images it was trained on (TrainConfig.data), and "
                         f"they are not MNIST's; train with --data to fit its variance here")
    else:
        images, labels = load_mnist().tensors
    labels = labels if getattr(model, "null_label", None) is not None else None
    t0 = time.perf_counter()
    fit = fit_variance(model, schedule, images, labels=labels, images_per_t=args.images_per_t, seed=args.seed)
    sigma2 = fit.ddpm_variances(schedule)
    path = store_variance_fit(checkpoint, fit)
    ratio = ", ".join(f"t={t}: {(sigma2[t] / schedule.beta_tilde[t].double()).item():.3g}"
                      for t in (1, 10, 100) if t < schedule.T)
    decoder = "none (not 8-bit images)" if fit.decoder_variance is None else f"{fit.decoder_variance:.3g}"
    print(f"fitted in {time.perf_counter() - t0:.0f}s on {args.images_per_t} images per t: sigma*^2 / beta_tilde "
          f"{ratio}; decoder variance {decoder}; stored in {path} (evaluate --bpd-images uses it)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    checkpoint, out = Path(args.checkpoint), Path(args.out)
    if _same_file(checkpoint, out):
        raise InputError(f"output file {out} is the same file as the checkpoint {checkpoint}: the export would replace "
                         f"what it is made from; give the export another name, e.g. "
                         f"{checkpoint.with_name(checkpoint.stem + '_export.pt')}")
    overwrite = refuse_shipped(out, args.replace_shipped, "output file") or args.overwrite
    if out.is_dir():
        raise InputError(f"{out} is a folder; give the export a file name, e.g. {out / 'model.pt'}")
    _check_output_file(out, "output file", overwrite)
    _report_removed(remove_stale_temporaries([out]), out.parent)
    path = export_pretrained(checkpoint, out, note=args.note)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, EMA weights in float16)")
    return 0


def cmd_classifier(args: argparse.Namespace) -> int:
    from .metrics.classifier import accuracy, default_classifier_path, save_classifier, train_classifier

    out = Path(args.out or f"runs/classifier/{args.arch}.pt")
    shipped = default_classifier_path(args.arch)
    # all before training; --replace-shipped is the shipped folder's own --overwrite
    overwrite = refuse_shipped(out, args.replace_shipped, "--out") or args.overwrite
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name such as {out / (args.arch + '.pt')}")
    _check_output_file(out, "--out", overwrite)
    check_writable(out.parent, "--out folder")
    _report_removed(remove_stale_temporaries([out]), out.parent)
    seed_everything(args.seed)
    t0 = time.perf_counter()
    config = ClassifierConfig(arch=args.arch, epochs=args.epochs, reject_share=args.reject_share, seed=args.seed)
    model = train_classifier(load_mnist(subset=args.subset), config, device=get_device(args.device))
    acc = accuracy(model, load_mnist(train=False))
    note = (f"python -m ddpm_lib classifier --arch {args.arch} --epochs {config.epochs} "
            f"--reject-share {args.reject_share} --seed {args.seed}")
    path = save_classifier(model.cpu(), out, test_accuracy=acc, config=config, note=note)
    print(f"test accuracy {acc:.4f} after {time.perf_counter() - t0:.0f}s -> {path}")
    if acc < MIN_ACCURACY[args.arch]:
        print(f"warning: below the {MIN_ACCURACY[args.arch]:.1%} the metrics assume for a {args.arch} judge; "
              f"train longer (--epochs)", file=sys.stderr)
    if out.resolve() != shipped.resolve():
        print(f"use it with `python -m ddpm_lib evaluate --classifier {path}`, or ship it with "
              f"--out {shipped} --replace-shipped")
    return 0


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    d = SamplerConfig()
    p.add_argument("--sampler", choices=SAMPLERS, default=d.sampler,
                   help="dpm++sde (SDE-DPM-Solver++(2M)), dpm++ (its deterministic form), ddim or ddpm "
                        "(all T steps) (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=d.steps,
                   help="steps of every sampler but ddpm (default: %(default)s)")
    p.add_argument("--spacing", choices=SPACINGS, default=d.spacing,
                   help="where those steps sit: trailing (999, 949, ..., 49 for 20) or even (999 .. 0) "
                        "(default: %(default)s)")
    p.add_argument("--eta", type=non_negative_float, default=d.eta,
                   help="DDIM noise: 0 deterministic, 1 as much as DDPM (default: %(default)s)")
    p.add_argument("--seed", type=seed, default=d.seed, help=f"0..{MAX_SEED} (default: %(default)s)")
    p.add_argument("--guidance", type=non_negative_float, default=None,
                   help=f"classifier-free guidance weight w (default: {d.guidance} for a class-conditional "
                        f"model, 0 without labels)")


RAW_HELP = "use the raw weights instead of the EMA (a run's checkpoint: an export holds only the EMA weights)"


def _add_replace_shipped(p: argparse.ArgumentParser, flag: str, replaces: bool = True) -> None:
    p.add_argument("--replace-shipped", action="store_true",
                   help=f"let {flag} be in the shipped weights folder ({shipped_folder()}), refused without it"
                        + (" (what is there is then replaced, --overwrite or not)" if replaces else ""))


def build_parser() -> argparse.ArgumentParser:
    """The command line; every default that a dataclass holds is read from it."""
    p = _Parser(prog="python -m ddpm_lib", description=__doc__, allow_abbrev=False)
    sub = p.add_subparsers(dest="command")
    train, diffusion = TrainConfig(), DiffusionConfig()

    t = sub.add_parser("train", help="train a noise predictor on MNIST or your own images (--data), write "
                                     "checkpoints and samples", allow_abbrev=False)
    t.add_argument("--model", choices=list(MODEL_KINDS), default="unet",
                   help="cond-unet: class-conditional U-Net trained with label dropout (for guidance; MNIST only)")
    t.add_argument("--data", default=train.data, metavar="PATH",
                   help="train on your own images instead of MNIST: a folder of PNG/JPEG files (grey or RGB, one "
                        "square size) or a .npy / .pt array [N, H, W] or [N, C, H, W] of uint8 pixels or floats in "
                        "[0, 1] or [-1, 1]; the model is sized for them (a U-Net needs sides divisible by 4, an "
                        "MLP takes any). Saved with the run: --resume reads it again")
    t.add_argument("--out", default="runs/unet", help=f"output folder ({CHECKPOINT_NAME}, samples.png)")
    t.add_argument("--schedule", choices=["linear", "cosine"], default=diffusion.schedule)
    t.add_argument("--T", type=positive_int, default=diffusion.T, help="diffusion steps (default: %(default)s)")
    t.add_argument("--prediction", choices=PREDICTIONS, default=diffusion.prediction,
                   help="what the network predicts: the noise eps, the clean image x0, or v (default: %(default)s)")
    t.add_argument("--steps", type=positive_int, default=None,
                   help=f"optimizer steps (default: {train.steps}, or until --minutes runs out)")
    t.add_argument("--minutes", type=positive_float, default=train.max_minutes, help="wall-clock training budget")
    t.add_argument("--batch-size", type=positive_int, default=train.batch_size, help="default: %(default)s")
    t.add_argument("--lr", type=positive_float, default=train.lr, help="default: %(default)s")
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=train.lr_schedule,
                   help="after warm-up: constant, or cosine decay to 0 over the budget (default: %(default)s)")
    t.add_argument("--min-snr-gamma", type=non_negative_float, default=train.min_snr_gamma,
                   help="Min-SNR-gamma loss weighting, 0: unweighted L_simple (default: %(default)s)")
    t.add_argument("--t-distribution", choices=T_DISTRIBUTIONS, default=train.t_distribution,
                   help="how t is drawn: uniform, or laplace: part of each batch by a Laplace draw of the log-SNR "
                        "(Hang et al. 2024), more steps on the middle noise levels; measured worse at 20 minutes "
                        "(default: %(default)s)")
    t.add_argument("--precision", choices=PRECISIONS, default=train.precision,
                   help="forward pass in fp32, bf16 (autocast; weights stay float32) or auto: bf16 for a --minutes "
                        "budget without --steps on a CPU with native bfloat16 instructions, else fp32 (default: %(default)s)")
    t.add_argument("--base-channels", type=channels, default=None,
                   help=f"U-Net width at full size, 28x28 for MNIST (default: {UNetConfig.small().base_channels}, "
                        f"UNetConfig.small(), for a --minutes budget without --steps, measured the better choice for "
                        f"CPU budgets of tens of minutes; {UNetConfig().base_channels} otherwise)")
    t.add_argument("--subset", type=positive_int, default=train.subset,
                   help="train on n random images (a resumed run keeps its own; with --data, evaluate measures "
                        "the model on the images left out)")
    t.add_argument("--seed", type=seed, default=train.seed, help=f"0..{MAX_SEED} (default: %(default)s)")
    t.add_argument("--checkpoint-every", type=non_negative_int, default=train.checkpoint_every,
                   help="steps between checkpoints, 0: only at the end (default: %(default)s)")
    t.add_argument("--resume", nargs="?", const="auto", default=None,
                   help=f"resume from OUT/{CHECKPOINT_NAME} (or the path given) with its settings; "
                        "only --steps and --minutes may change")
    t.add_argument("--overwrite", action="store_true",
                   help=f"start a new run even though OUT/{CHECKPOINT_NAME} exists (it is replaced)")
    _add_replace_shipped(t, "--out", replaces=False)
    t.add_argument("--n-samples", type=non_negative_int, default=64, help="images to sample at the end (0: none)")
    t.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    t.add_argument("--download", action="store_true", help="fetch MNIST from the network if missing (not with --data)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample images from a checkpoint", allow_abbrev=False)
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", default="runs/samples",
                   help=f"output folder ({', '.join(SAMPLE_FILES)}; earlier ones there are kept unless --overwrite)")
    s.add_argument("--overwrite", action="store_true", help="replace samples that --out holds already")
    _add_replace_shipped(s, "--out")
    s.add_argument("--n", type=positive_int, default=64)
    _add_sampler_args(s)
    s.add_argument("--digit", type=digit, default=None, help="generate this digit (class-conditional models)")
    s.add_argument("--raw", action="store_true", help=RAW_HELP)
    s.add_argument("--device", default=None)
    s.set_defaults(func=cmd_sample)

    evaluation = EvalConfig()
    v = sub.add_parser("evaluate", help="sample, then print MNIST-FID (two judges), precision, recall, "
                                        "confident share, class entropy, memorisation (and bits/dim) "
                                        "as one JSON line; for a run on your own images (train --data) "
                                        "no MNIST judge, but memorisation, loss per t (and bits/dim) "
                                        "measured against the images its --subset left out",
                       allow_abbrev=False)
    v.add_argument("--checkpoint", required=True)
    v.add_argument("--n", type=positive_int, default=evaluation.n,
                   help=f"samples (MNIST-FID is comparable only at equal n and unreliable below {MIN_FID_SAMPLES}; "
                        f"default: %(default)s)")
    _add_sampler_args(v)
    v.add_argument("--digit", type=digit, default=None, help="class-conditional models: only this digit")
    v.add_argument("--bpd-images", type=non_negative_int, default=evaluation.bpd_images,
                   help="also estimate the variational bound (bits/dim) on this many test images (a run on "
                        "your own images: on those its --subset left out, else on its training images, said so), "
                        "with the reverse variance `fit-variance` stored in the checkpoint, else the fixed beta_tilde")
    v.add_argument("--t-samples", type=t_samples, default=evaluation.t_samples,
                   help=f"stratified t draws per image for bits/dim, at least {MIN_T_SAMPLES} (default: %(default)s)")
    v.add_argument("--classifier", default=None, help="main judge's weights (default: the shipped CNN)")
    v.add_argument("--second-classifier", default=None,
                   help="second judge's weights, for the second MNIST-FID (default: the shipped MLP)")
    v.add_argument("--raw", action="store_true", help=RAW_HELP)
    v.add_argument("--device", default=None)
    v.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("fit-variance", help="fit the reverse variance to a trained model (Bao et al. 2022) and "
                                             "store it in its checkpoint, for bits/dim", allow_abbrev=False)
    f.add_argument("checkpoint", help=f"a run's {CHECKPOINT_NAME} or an export; rewritten in place, weights unchanged")
    f.add_argument("--images-per-t", type=positive_int, default=IMAGES_PER_T,
                   help="training images drawn at each t (default: %(default)s)")
    f.add_argument("--seed", type=seed, default=0, help=f"0..{MAX_SEED} (default: %(default)s)")
    f.add_argument("--device", default=None)
    _add_replace_shipped(f, "CHECKPOINT")
    f.set_defaults(func=cmd_fit_variance)

    e = sub.add_parser("export", help="write a small sampling-only copy of a checkpoint (EMA, float16)",
                       allow_abbrev=False)
    e.add_argument("checkpoint", help=f"the checkpoint to export (a run's {CHECKPOINT_NAME})")
    e.add_argument("out", help="the export's file, never CHECKPOINT itself")
    e.add_argument("--note", default="", help="free text stored with the weights (e.g. how they were trained)")
    e.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _add_replace_shipped(e, "OUT")
    e.set_defaults(func=cmd_export)
    c = sub.add_parser("classifier", help="train an MNIST judge (CNN or MLP) behind the quality metrics",
                       allow_abbrev=False)
    cdef = ClassifierConfig()
    c.add_argument("--arch", choices=ARCHS, default=cdef.arch,
                   help="cnn: the main judge; mlp: the second opinion (default: %(default)s)")
    c.add_argument("--out", default=None, help="default: runs/classifier/<arch>.pt")
    c.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_replace_shipped(c, "--out")
    c.add_argument("--epochs", type=positive_int, default=None,
                   help="default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_EPOCHS.items()))
    c.add_argument("--reject-share", type=non_negative_float, default=cdef.reject_share,
                   help="'not a digit' images per digit image in each batch (default: %(default)s)")
    c.add_argument("--subset", type=positive_int, default=None, help="train on n random images")
    c.add_argument("--seed", type=seed, default=cdef.seed, help=f"0..{MAX_SEED} (default: %(default)s)")
    c.add_argument("--device", default=None)
    c.set_defaults(func=cmd_classifier)
    return p


def _given(parser: argparse.ArgumentParser, command: Optional[str], argv: List[str]) -> set:
    """The destinations of the options typed on the command line (not left at their default)."""
    if command is None:
        return set()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {a.dest for a in sub._actions for o in a.option_strings
            if any(tok == o or tok.startswith(o + "=") for tok in argv)}


def _ignored_flag(args: argparse.Namespace) -> Optional[str]:
    """Why a flag typed on the command line would change nothing, or cannot work with another (None if
    every one counts): such a command is refused rather than run without it."""
    given, command = args.given, args.command
    if command == "train" and args.model == "mlp" and "base_channels" in given:
        return "--base-channels sets a U-Net's width, and --model mlp trains an MLP; drop it, or train a U-Net"
    if command == "train" and args.data is not None:
        if args.download:
            return "--download fetches MNIST, and --data trains on your own images instead; drop --download"
        if args.model == "cond-unet":
            return ("--model cond-unet learns from digit labels, and --data images have no labels; train --model "
                    "unet or mlp on them, or the cond-unet on MNIST (without --data)")
    if command in ("sample", "evaluate"):
        if "eta" in given and args.sampler != "ddim":
            return (f"--eta sets DDIM's noise, and --sampler {args.sampler} has none to set; drop --eta, or sample "
                    f"with --sampler ddim")
        for flag in ("steps", "spacing"):
            if flag in given and args.sampler == "ddpm":
                return (f"--{flag} does not apply to --sampler ddpm, which takes all T steps of the model; drop "
                        f"--{flag}, or choose another --sampler")
    return None


DEMO_OUT, DEMO_MINUTES, DEMO_EVAL_N = Path("runs/demo"), 3, 300
DEMO_MARKER = ".demo"  # in DEMO_OUT: the demo's mark, the sha256 of the checkpoint it trained there
# the demo's recipe: in 3 minutes on 2 CPU cores the x0-predicting MLP draws far more legible
# digits than either U-Net (benchmarks/RESULTS.md, "The training recipe at the 20-minute budget")
DEMO_RECIPE = ["--model", "mlp", "--prediction", "x0", "--lr-schedule", "cosine", "--min-snr-gamma", "0"]


def demo_scores(checkpoints: List[Tuple[str, Path]], n: int) -> None:
    """Print the evaluator's numbers for n default-sampler images of each (name, checkpoint)."""
    from .metrics import SampleEvaluator
    device = get_device()
    evaluator = SampleEvaluator(device=device)
    for name, path in checkpoints:
        model, schedule = load_model(path, device=device)
        r = evaluator.evaluate(sample(model, schedule, n, progress=False).cpu())
        print(f"  {name}: MNIST-FID {r.fid:.1f} (real images: {r.fid_floor:.1f}), read as digits "
              f"{r.confident_share:.0%}, class entropy {r.entropy_bits:.2f} bits (3.32: all ten alike)")


def demo_folder_is_ours(out: Path) -> bool:
    """Whether ``out`` holds an earlier demo's run, which the demo replaces (False: nothing is there).
    Anything else there, a user's run above all, raises :class:`InputError`: the demo replaces only
    what it marked as its own (:data:`DEMO_MARKER`, the sha256 of the checkpoint it trained)."""
    if not out.is_dir() or out.is_symlink():
        if not (out.exists() or out.is_symlink()):
            return False
        raise InputError(f"{out} is a file or link the demo did not make, where the demo writes its run; move it "
                         f"away, then run the demo again")
    if not any(out.iterdir()):
        return False
    marker, ckpt = out / DEMO_MARKER, out / CHECKPOINT_NAME
    if marker.is_file():
        if not (ckpt.exists() or ckpt.is_symlink()):
            return True  # a demo stopped before its training saved
        if ckpt.is_file() and not ckpt.is_symlink() and file_digest(ckpt) == marker.read_text().strip():
            return True
    what = f"a training run the demo did not make ({ckpt})" if ckpt.exists() else "files the demo did not make"
    raise InputError(f"{out} holds {what}, and the demo replaces only its own runs: move or rename {out} to keep "
                     f"it (or delete it if you do not need it), then run the demo again")


def run_demo() -> int:
    """``python -m ddpm_lib`` with no command: what the library gives (the shipped U-Net's samples,
    in seconds), what three minutes of your own training give, and the evaluator's numbers for both.
    It writes into ``runs/demo`` only while that holds nothing or an earlier demo (:func:`demo_folder_is_ours`)."""
    shipped = pretrained_path("unet_mnist")
    earlier = demo_folder_is_ours(DEMO_OUT) and (DEMO_OUT / CHECKPOINT_NAME).is_file()
    marker = DEMO_OUT / DEMO_MARKER
    if not marker.is_file():
        DEMO_OUT.mkdir(parents=True, exist_ok=True)
        marker.write_text("\n")  # the demo's folder, no checkpoint yet
    print(f"demo 1/3: 64 samples of the shipped U-Net ({shipped}); see `python -m ddpm_lib --help` for more")
    code = main(["sample", "--checkpoint", str(shipped), "--out", str(DEMO_OUT / "shipped"), "--n", "64",
                 "--overwrite"])
    if code:
        return code
    print(f"demo 2/3: your own {DEMO_MINUTES}-minute training run of notebook 02's MLP predicting x0, the best "
          f"measured for {DEMO_MINUTES} minutes on a CPU"
          + (f" (replacing the earlier demo in {DEMO_OUT})" if earlier else ""))
    code = main(["train", *DEMO_RECIPE, "--out", str(DEMO_OUT), "--minutes", str(DEMO_MINUTES), "--overwrite"])
    if code in (0, 130) and (DEMO_OUT / CHECKPOINT_NAME).is_file():  # trained, or stopped and saved: the demo's own
        marker.write_text(file_digest(DEMO_OUT / CHECKPOINT_NAME) + "\n")
    if code:
        return code
    print(f"demo 3/3: both scored by the evaluator on {DEMO_EVAL_N} samples each (compare the two with each "
          f"other; `python -m ddpm_lib evaluate` uses 1000)")
    demo_scores([("shipped U-Net", shipped), (f"your {DEMO_MINUTES}-minute MLP", DEMO_OUT / CHECKPOINT_NAME)],
                DEMO_EVAL_N)
    print(f"images: {DEMO_OUT / 'shipped' / 'samples.png'} (shipped) and {DEMO_OUT / 'samples.png'} (yours)")
    return 0


def _run_command(argv: List[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # a bad command line (2), or --help (0)
        return done.code if isinstance(done.code, int) else 2
    args.given = _given(parser, args.command, argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    ignored = _ignored_flag(args)
    if ignored:  # a bad command line too: refused before anything is read or written
        print(f"error: {ignored}; see `{parser.prog} {args.command} --help`", file=sys.stderr)
        return 2
    return args.func(args)


def main(argv: Optional[List[str]] = None) -> int:
    """The command line: ``argv`` (default ``sys.argv[1:]``) names a command, or none for the demo.
    Returns the exit code: 0, 1 (an error, said in one line), 2 (a bad command line), 130 (interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run_command(argv) if argv else run_demo()
    except (DDPMError, OSError) as err:  # the library's own verdicts, and the file system's
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        lines = [line for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        print(f"error: {lines[0]}", file=sys.stderr)  # one line, whatever the library said
        return 1
    except KeyboardInterrupt:  # anywhere outside a training loop, which saves and returns by itself
        print("error: interrupted (Ctrl-C or SIGTERM); no file was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
