"""Files written and read safely, the ground floor under checkpoints, the classifier and the benchmarks:

- a file appears complete or not at all: written to a temporary file beside it, then renamed over it
  (:func:`replace_atomically`; :func:`write_weights_file` also fsyncs and holds back Ctrl-C and SIGTERM
  until the file is complete, :func:`signals_deferred`), and a failed write names a full disk as such;
- an output folder is locked by the run writing to it (:class:`OutputLock`), and a folder that cannot
  be written is found before a long run starts (:func:`check_writable`);
- a ``torch.save`` file is read with ``weights_only=True`` (:func:`read_weights_file`): a file holding
  Python objects that could run code is refused, never run. The reader is the only ``torch.load`` in
  the repository (a test holds it to that); it passes ``weights_only=True`` explicitly, so the
  environment variable ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn it off, and it refuses to run
  on a torch older than :data:`MIN_TORCH` (2.6), whose weights-only reader can be made to run code
  (CVE-2025-32434);
- the weights in a file carry their sha256 (:func:`weights_checksum`, stored under
  :data:`CHECKSUM_KEY` by :func:`with_checksums`), checked on every read (:func:`verify_checksums`):
  a changed bit is refused as damage instead of being sampled from. Files written before checksums
  existed carry none and still load, unchecked; every checkpoint, export and judge written since
  carries them.

Nothing here knows what a checkpoint holds (that is :mod:`ddpm_lib.checkpoints`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import torch

from .errors import DDPMError, InputTypeError, SetupError

PathLike = Union[str, Path]
LOCK_NAME = ".train.lock"  # in an output folder while a training run writes to it
_LOW_SPACE_BYTES = 16 << 20  # a write that fails with less free space than this failed for want of space
#: The oldest torch whose ``weights_only=True`` reader runs no code (CVE-2025-32434 defeats it before 2.6),
#: and the torchvision built for it; requirements.txt and pyproject.toml ask for both.
MIN_TORCH = (2, 6)
MIN_TORCHVISION = (0, 21)
#: Where a weights file keeps the sha256 of its weights: ``{name: weights_checksum(state[name])}``.
CHECKSUM_KEY = "weights_sha256"


class CheckpointError(DDPMError, RuntimeError):
    """A file is not a readable ddpm_lib checkpoint (or classifier file), cannot be written, or does not
    fit the model at hand."""


def first_line(err: BaseException) -> str:
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
    reason = err.strerror if isinstance(err, OSError) and err.strerror else first_line(err)
    return f"writing checkpoint {path} failed ({reason}); the previous checkpoint there, if any, is intact"


def _temporary_in(folder: Path, prefix: str, suffix: str) -> Path:
    """A new empty file in ``folder`` (to be renamed over its target by :func:`_move_into_place`)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    os.close(fd)
    return Path(tmp)


def _move_into_place(tmp: Path, path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new one, never half of one


def replace_atomically(path: PathLike, write: Callable[[Path], None]) -> Path:
    """Create ``path`` through ``write(temporary_path)`` (a file in the same folder with the same
    suffix), then rename it over ``path``: no reader sees a half-written file, and a symbolic
    link at ``path`` is replaced, never written through. On failure the temporary file goes."""
    path = Path(path)
    tmp = _temporary_in(path.parent, f".{path.stem}.", path.suffix)
    try:
        write(tmp)
        _move_into_place(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_weights_file(state: Any, path: PathLike, *, name_in_folder: Optional[str] = None) -> Path:
    """Write ``state`` with ``torch.save`` to ``path`` atomically: a temporary file in the same folder
    is written and fsync'ed, then renamed over ``path``. Ctrl-C and SIGTERM arriving meanwhile are held
    back until the file is complete (:func:`signals_deferred`). If anything fails (disk full, no
    permission), the temporary file is removed, the previous file at ``path`` stays intact and
    :class:`CheckpointError` says why (``disk full while writing ...``). ``name_in_folder``: the file
    name suggested when ``path`` is a folder."""
    path = Path(path)
    if path.is_dir():
        hint = f"give a file name such as {path / name_in_folder}" if name_in_folder else "give a file's path in it"
        raise CheckpointError(f"cannot write a checkpoint to {path}: it is a folder; {hint}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary_in(path.parent, f".{path.name}.", ".tmp")  # the names remove_partial_saves looks for
    except OSError as err:
        raise CheckpointError(f"cannot write a checkpoint in {path.parent}: {err.strerror or err}. "
                              f"Choose a writable output folder.") from err
    with signals_deferred():
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            _move_into_place(tmp, path)
        except BaseException as err:
            free = _free_bytes(path.parent)  # measured before the partial file is removed
            tmp.unlink(missing_ok=True)
            if isinstance(err, (OSError, RuntimeError)):
                raise CheckpointError(_write_failure(path, err, free)) from err
            raise
    return path


def remove_partial_saves(path: PathLike) -> List[Path]:
    """Delete the temporary files that a write to ``path`` killed before its final rename (SIGKILL,
    power loss) left beside it: ``.NAME.*.tmp`` (:func:`write_weights_file`) and
    ``.STEM.xxxxxxxx.SUFFIX`` (:func:`replace_atomically`); returns what was removed. Call it only
    while no other process writes there (a training run does so under its :class:`OutputLock`)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    replaced = re.compile(rf"\.{re.escape(path.stem)}\.[a-z0-9_]{{8}}{re.escape(path.suffix)}")  # tempfile's names
    removed = []
    for tmp in path.parent.iterdir():
        ours = (tmp.name.startswith(f".{path.name}.") and tmp.name.endswith(".tmp")) or replaced.fullmatch(tmp.name)
        if ours and tmp.is_file() and not tmp.is_symlink():
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass  # gone already, or not ours to remove: harmless
    return removed


# how torch's weights-only reader names what it refused: a global (a function or class the file
# asks for), a function it would call, or an object it would build
_REFUSED = re.compile(r"GLOBAL ([\w.]+)|unrecognized function (.+?)(?: which belongs|$)"
                      r"|add_safe_globals`?,? but got (?:<class ')?([\w.]+)", re.M)
# torch's advice around its reasons: how to turn the safety off, never repeated here
_ADVICE = re.compile(r"weights_only|safe_globals|trust|Check the documentation|file an issue", re.I)


def _torch_reason(err: BaseException) -> str:
    """torch's reason for not reading a file, in one line, without its advice."""
    text = str(err).replace("Weights only load failed.", "")
    text = text.split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _ADVICE.search(line)]
    return lines[0][:200] if lines else type(err).__name__


def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``algorithm``: any :mod:`hashlib` name), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_torch_version(version: Optional[str] = None) -> None:
    """Raise :class:`~ddpm_lib.errors.SetupError` (one line: upgrade) if torch (``version``, default
    ``torch.__version__``) is older than :data:`MIN_TORCH`, whose safe reader could be made to run code."""
    version = str(torch.__version__ if version is None else version)
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is not None and (int(found.group(1)), int(found.group(2))) < MIN_TORCH:
        torch_, vision = (".".join(map(str, v)) for v in (MIN_TORCH, MIN_TORCHVISION))
        raise SetupError(f"torch {version} cannot read weights files safely (a crafted file can run code in its "
                         f"safe reader, CVE-2025-32434); upgrade: pip install 'torch>={torch_}' "
                         f"'torchvision>={vision}' (or pip install -r requirements.txt)")


def weights_checksum(weights: Mapping[str, torch.Tensor]) -> str:
    """The sha256 (hex) of a dict of tensors (a ``state_dict``), the same on any machine: for each key in
    sorted order, its name, dtype and shape, then the tensor's raw bytes. It changes with any bit of any
    weight, a renamed key, a new dtype or shape; not with the tensors' memory layout or device."""
    digest = hashlib.sha256()
    for key in sorted(weights):
        tensor = weights[key]
        if not isinstance(tensor, torch.Tensor):
            raise InputTypeError(f"weights_checksum takes a dict of tensors; {key!r} is a {type(tensor).__name__}")
        digest.update(json.dumps([str(key), str(tensor.dtype), list(tensor.shape)]).encode() + b"\n")
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def with_checksums(state: Dict[str, Any], names: Sequence[str]) -> Dict[str, Any]:
    """A copy of ``state`` whose :data:`CHECKSUM_KEY` holds the sha256 of each dict of weights it has
    among ``names`` (absent or ``None``: none for it); any checksums it held before are replaced."""
    state = {k: v for k, v in state.items() if k != CHECKSUM_KEY}
    sums = {name: weights_checksum(state[name]) for name in names if isinstance(state.get(name), dict)}
    return {**state, CHECKSUM_KEY: sums} if sums else state


def verify_checksums(state: Any, path: PathLike, what: str = "ddpm_lib checkpoint") -> None:
    """Check every checksum ``state`` (read from ``path``) stores under :data:`CHECKSUM_KEY`; raise
    :class:`CheckpointError` naming the file and saying it is damaged if one does not match. A file
    without checksums (written before they existed) passes unchecked."""
    if not isinstance(state, dict) or CHECKSUM_KEY not in state:
        return
    stored = state[CHECKSUM_KEY]
    names = sorted(stored, key=str) if isinstance(stored, dict) else [CHECKSUM_KEY]
    for name in names:
        weights = state.get(name)
        try:
            intact = isinstance(weights, dict) and weights_checksum(weights) == stored[name]
        except (InputTypeError, TypeError):
            intact = False
        if not intact:
            raise CheckpointError(f"{what} {path} is damaged: its {name!r} weights do not match the sha256 stored "
                                  f"with them (bits changed on disk or in a copy); use another copy of it")


def read_weights_file(path: PathLike, what: str = "ddpm_lib checkpoint",
                      map_location: Union[str, torch.device] = "cpu", *, name_in_folder: Optional[str] = None) -> Any:
    """Read a ``torch.save`` file with ``weights_only=True`` (no code in it runs) and check the
    checksums of its weights (:func:`verify_checksums`). Raise :class:`CheckpointError` with one line
    naming what is wrong and what to do: the path is missing or a folder (``name_in_folder``: the file
    to suggest in it), the file is empty, it holds Python objects that could run code (refused, never
    run), it is not a torch file at all, or its weights are damaged. ``what`` names the file in
    messages. torch's advice to load a refused file with ``weights_only`` set to False is never passed
    on. On a torch older than :data:`MIN_TORCH` nothing is read: :class:`~ddpm_lib.errors.SetupError`
    says to upgrade."""
    check_torch_version()
    path = Path(path)
    if path.is_dir():
        inside = path / name_in_folder if name_in_folder else None
        hint = f"did you mean {inside}?" if inside and inside.is_file() else "give the path of the .pt file in it"
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
            # weights_only passed explicitly: only then does torch ignore TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
        refused = _REFUSED.search(str(err))
        if refused is not None:
            code = next(name for name in refused.groups() if name).strip()[:80]
            raise CheckpointError(f"{path} was refused because it holds Python objects ({code}) that could run "
                                  f"code when loaded; nothing in it was run. A {what} holds only tensors and "
                                  f"plain values: use one written by ddpm_lib") from err
        raise CheckpointError(f"{path} is not a readable {what} (corrupted, truncated or another kind of "
                              f"file): {_torch_reason(err)}") from err
    verify_checksums(state, path, what)
    return state


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
        _temporary_in(probe_in, ".write-test.", ".tmp").unlink()
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
                               f"it to end or stop it, or choose another output folder (if no run is there, delete "
                               f"{self.path})")

    def acquire(self) -> "OutputLock":
        """Take the lock (creating the folder); raise :class:`CheckpointError` if another live
        process holds it or the folder is not writable."""
        check_writable(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CheckpointError(f"cannot create the output folder {self.folder} ({err.strerror or err}); "
                                  f"choose another output folder") from err
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
                                      f"choose another output folder, or fix its permissions") from err
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
        raise CheckpointError(f"could not lock {self.folder}: other processes keep taking it; choose another output folder")

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
