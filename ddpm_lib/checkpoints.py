"""Checkpoints: written atomically (temporary file, fsync, rename) with Ctrl-C and SIGTERM held
back until the file is complete, read with ``torch.load(weights_only=True)`` so a foreign pickle
cannot run code, mapped to any device. An output folder is locked by the run writing to it
(:class:`OutputLock`).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:
``format, model_config, diffusion_config, train_config, model, ema, optimizer, step,
history, rng, elapsed_s``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch

from .config import DiffusionConfig, MLPConfig, TrainConfig, UNetConfig, get_device
from .models import build_model, config_from_dict
from .schedules import Schedule, make_schedule, remember_diffusion

FORMAT = "ddpm_lib.checkpoint/1"
REQUIRED_KEYS = ("format", "model_config", "diffusion_config", "model", "step")
PathLike = Union[str, Path]
LOCK_NAME = ".train.lock"  # in an output folder while a training run writes to it
_LOW_SPACE_BYTES = 16 << 20  # a write that fails with less free space than this failed for want of space


class CheckpointError(RuntimeError):
    """A file is not a readable ddpm_lib checkpoint, or does not fit the model at hand."""


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name if it has none."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(err).__name__


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) and SIGTERM while the block runs and deliver them when it ends,
    so that a write that has started finishes (a second Ctrl-C during a save loses nothing).
    Outside the main thread, where Python cannot change signal handlers, the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: List[int] = []
    previous: Dict[int, Any] = {}
    completed = False
    try:
        for signum in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if signum is not None and signal.getsignal(signum) is not None:  # None: set outside Python
                previous[signum] = signal.signal(signum, lambda s, frame: received.append(s))
        yield
        completed = True
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received and completed:  # after a failure, the error on its way stops the run anyway
            handler = previous[received[0]]  # deliver the first held-back signal as if it came now
            if callable(handler):
                handler(received[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(received[0])


def _free_bytes(folder: Path) -> Optional[int]:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _write_failure(path: Path, err: BaseException, free: Optional[int]) -> str:
    """One line for a failed checkpoint write: a full disk named as such (an ``ENOSPC`` OSError, or
    torch's writer failing with almost no space left), anything else with its first line."""
    full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))) \
        or (isinstance(err, RuntimeError) and free is not None and free < _LOW_SPACE_BYTES)
    if full:
        why = err.strerror if isinstance(err, OSError) and err.strerror else "no space left on the device"
        space = f", {free / 1e6:.0f} MB free" if free is not None else ""
        return (f"disk full while writing {path} ({why}{space}); the previous checkpoint there, if any, is "
                f"intact. Free some space on that disk (or write elsewhere), then save again")
    reason = err.strerror if isinstance(err, OSError) and err.strerror else _first_line(err)
    return f"writing checkpoint {path} failed ({reason}); the previous checkpoint there, if any, is intact"


def save_checkpoint(state: Dict[str, Any], path: PathLike) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder is written
    and fsync'ed, then renamed over ``path``. Ctrl-C and SIGTERM arriving meanwhile are held
    back until the file is complete (see :func:`signals_deferred`). If anything fails (disk
    full, no permission), the temporary file is removed, the previous checkpoint at ``path``
    stays intact and :class:`CheckpointError` says why (``disk full while writing ...``)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot write a checkpoint to {path}: it is a folder; give a file name "
                              f"such as {path / 'checkpoint.pt'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise CheckpointError(f"cannot write a checkpoint in {path.parent}: {err.strerror or err}. "
                              f"Choose a writable output folder.") from err
    with signals_deferred():
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
            free = _free_bytes(path.parent)  # measured before the partial file is removed
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, (OSError, RuntimeError)):
                raise CheckpointError(_write_failure(path, err, free)) from err
            raise
    return path


def replace_atomically(path: PathLike, write: Callable[[Path], None]) -> Path:
    """Create ``path`` through ``write(temporary_path)`` (a file in the same folder with the same
    suffix), then rename it over ``path``: no reader sees a half-written file, and a symbolic
    link at ``path`` is replaced, never written through. On failure the temporary file goes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_partial_saves(path: PathLike) -> List[Path]:
    """Delete the temporary files that a save to ``path`` killed mid-write (SIGKILL, power loss)
    left beside it; returns what was removed. Call it only while no other process saves there
    (a training run does so under its :class:`OutputLock`)."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass  # gone already, or not ours to remove: harmless
    return removed


def _refused_pickle(detail: str) -> Optional[str]:
    """The global a weights-only load refused (a function or class the file asks to call), if any."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", detail)
    return found.group(1) if found else None


def read_weights_file(path: PathLike, what: str = "ddpm_lib checkpoint",
                      map_location: Union[str, torch.device] = "cpu") -> Any:
    """Read a ``torch.save`` file with ``weights_only=True`` (no code in it runs). Raise
    :class:`CheckpointError` with one line naming what is wrong and what to do: the path is
    missing or a folder, the file is empty, it holds pickled code (refused, never executed),
    or it is not a torch file at all. ``what`` names the file in messages."""
    path = Path(path)
    if path.is_dir():
        inside = path / "checkpoint.pt"
        hint = f"did you mean {inside}?" if inside.is_file() else "give the path of the .pt file in it"
        raise CheckpointError(f"{what} {path} is a folder, not a file; {hint}")
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist; check the path")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise CheckpointError(f"cannot read {what} {path}: {err.strerror or err}") from err
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a {what}: its writing was cut short or it was "
                              f"truncated; use another copy of it, or make it again")
    try:
        with warnings.catch_warnings():  # torch's warnings about odd pickles would add lines
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
        text = str(err)
        code = _refused_pickle(text)
        if code is not None:
            raise CheckpointError(f"{path} holds pickled Python code ({code}), not only weights, and was refused "
                                  f"without running it; a {what} holds only tensors and plain values: use one "
                                  f"written by ddpm_lib") from err
        if "WeightsUnpickler error:" in text:  # torch's advice before it is about weights_only, never ours
            text = text.split("WeightsUnpickler error:", 1)[1]
            err = type(err)(text.split("Check the documentation", 1)[0])
        raise CheckpointError(f"{path} is not a readable {what} (corrupted, truncated or another kind of "
                              f"file): {_first_line(err)}") from err


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``, see :func:`read_weights_file`) onto
    ``map_location`` and check that it is one of ours; raise :class:`CheckpointError` saying what is wrong otherwise."""
    path = Path(path)
    state = read_weights_file(path, "ddpm_lib checkpoint", map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ddpm_lib checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it may be from an older version")
    return state


# settings added after checkpoints were first written whose default changed the recipe: a
# checkpoint without them was trained the old way, so it keeps the old value
BEFORE_ADDED: Dict[str, Dict[str, Any]] = {"train_config": {"min_snr_gamma": None, "lr_schedule": "constant",
                                                             "precision": "fp32"}}


def config_from_state(state: Dict[str, Any], key: str, path: PathLike = "checkpoint", **overrides) -> Any:
    """Rebuild the config a checkpoint stores under ``key`` (``model_config``,
    ``diffusion_config`` or ``train_config``; settings added since it was written take their
    defaults), with ``overrides``. A setting this version does not know, or a value the config
    refuses, raises :class:`CheckpointError` naming the file and what to do."""
    saved = state.get(key, {})
    kind = saved.get("kind") if isinstance(saved, dict) else None
    cls = {"diffusion_config": DiffusionConfig, "train_config": TrainConfig,
           "model_config": {"unet": UNetConfig, "mlp": MLPConfig}.get(kind)}[key]
    if not isinstance(saved, dict) or cls is None:
        raise CheckpointError(f"checkpoint {path} has a damaged {key} ({str(saved)[:80]}); use another copy of it")
    unknown = sorted(set(saved) - {f.name for f in fields(cls)} - {"kind"})
    if unknown:
        raise CheckpointError(f"checkpoint {path} has {key} settings this ddpm_lib does not know "
                              f"({', '.join(unknown)}): it was written by another version; update ddpm_lib, "
                              f"or remove those keys")
    saved = {**BEFORE_ADDED.get(key, {}), **saved, **overrides}
    try:
        return config_from_dict(saved) if key == "model_config" else cls(**saved)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: its {key} cannot be used ({_first_line(err)}); "
                              f"use another copy of it") from err


def check_writable(folder: PathLike, what: str = "output folder") -> Path:
    """Check that files can be created in ``folder``, or, while it does not exist yet, in the
    nearest folder above it that does (nothing is left behind), so that a long run learns at
    its start, not at its first save, that it cannot write there. Raises
    :class:`CheckpointError` naming the folder and what to do."""
    folder = Path(folder)
    probe_in = folder
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise CheckpointError(f"{what} {folder} is not writable: {probe_in} is a file, not a folder; "
                              f"choose another path")
    try:
        fd, probe = tempfile.mkstemp(dir=probe_in, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise CheckpointError(f"{what} {folder} is not writable ({err.strerror or err} in {probe_in}); choose "
                              f"another path, or fix its permissions") from err
    return folder


class OutputLock:
    """Marks an output folder as written to by this process: ``folder/.train.lock`` holds the
    owner's pid. Where ``fcntl`` exists (Linux, macOS) the file is held with ``flock``, which the
    system drops when the owner ends however it ends, so a lock left by a killed run (its pid
    dead) is stale and simply replaced; elsewhere an existing lock file refuses until deleted.
    A live lock makes :meth:`acquire` raise :class:`CheckpointError` naming its pid.
    :meth:`release` (or leaving the ``with`` block) removes the file.

        with OutputLock("runs/unet"):
            ...  # train and save into runs/unet
    """

    def __init__(self, folder: PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: Optional[int] = None

    def _owner(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def _busy(self) -> CheckpointError:
        return CheckpointError(f"another training run (pid {self._owner()}) is writing to {self.folder}; wait for "
                               f"it to end or stop it, or choose another --out (if no run is there, delete "
                               f"{self.path})")

    def acquire(self) -> "OutputLock":
        """Take the lock (creating the folder); raise :class:`CheckpointError` if another live
        process holds it or the folder is not writable."""
        check_writable(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CheckpointError(f"cannot create the output folder {self.folder} ({err.strerror or err}); "
                                  f"choose another --out") from err
        try:
            import fcntl
        except ImportError:  # no flock: an existing lock file is taken as live
            fcntl = None
        for _ in range(100):  # retried only while other processes create and remove the file
            try:
                flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if fcntl is None else 0)
                fd = os.open(self.path, flags, 0o644)
            except FileExistsError:
                raise self._busy() from None
            except OSError as err:
                raise CheckpointError(f"output folder {self.folder} is not writable ({err.strerror or err}); "
                                      f"choose another --out, or fix its permissions") from err
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise self._busy() from None
                try:  # the previous owner may have removed the file between our open and flock
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            return self
        raise CheckpointError(f"could not lock {self.folder}: other processes keep taking it; choose another --out")

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and let go of it; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass  # already gone: nothing to release but the descriptor
        finally:
            os.close(fd)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def check_compatible(state: Dict[str, Any], model_config: Any, diffusion: DiffusionConfig) -> None:
    """Raise :class:`CheckpointError` naming every setting in which a checkpoint differs
    from the model/diffusion it is loaded into (T, schedule, model size...)."""
    from .models import config_to_dict

    diffs = []
    for section, mine in (("diffusion", asdict(diffusion)), ("model", config_to_dict(model_config))):
        saved = state[f"{section}_config"]
        if section == "diffusion":  # settings added later (e.g. prediction) take their defaults
            saved = {**asdict(DiffusionConfig()), **saved}
        for key in sorted(set(saved) | set(mine)):
            if saved.get(key) != mine.get(key):
                diffs.append(f"{section}.{key}: checkpoint {saved.get(key)!r} vs now {mine.get(key)!r}")
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
                              f"sampled (python -m ddpm_lib sample --checkpoint {path}), not resumed; resume from "
                              f"the run's own checkpoint.pt, or train a new run")


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
    on ``device`` (default: :func:`get_device`), in eval mode. The model remembers its
    ``diffusion_config`` (:func:`ddpm_lib.schedules.remember_diffusion`): samplers refuse another schedule."""
    device = torch.device(device) if device is not None else get_device()
    state = load_checkpoint(path)
    model = build_model(config_from_state(state, "model_config", path))
    weights = state["ema"] if ema and state.get("ema") is not None else state["model"]
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the model its config describes "
                              f"({_first_line(err)}); the file is damaged or was edited: use another copy") from err
    diffusion = config_from_state(state, "diffusion_config", path)
    remember_diffusion(model, diffusion)  # a sampler given another schedule then says so
    return model.to(device).eval(), make_schedule(diffusion).to(device)
