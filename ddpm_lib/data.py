"""MNIST, offline: the four original IDX files ship in ``data/MNIST/raw/`` (gzip), are checked
against the md5 of the original uncompressed files, unpacked where
``torchvision.datasets.MNIST(root, download=False)`` finds them, and scaled to [-1, 1].
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import shutil
import zlib
from pathlib import Path
from typing import Optional, Union

import torch
from torch.utils.data import TensorDataset

from .errors import DDPMError, InputError, InputTypeError
from .files import file_digest, first_line

MNIST_SHAPE = (1, 28, 28)  # (channels, height, width) of an MNIST image

DATA_ENV = "DDPM_DATA"

# uncompressed IDX files: (bytes, md5) of the originals by LeCun, Cortes & Burges (CC BY-SA 3.0)
MNIST_FILES = {
    "train-images-idx3-ubyte": (47040016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (7840016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10008, "27ae3e4e09519cfbb04c329615203637"),
}


class MNISTDataError(DDPMError, RuntimeError):
    """An MNIST file is missing or does not match the original's checksum."""


def default_data_root() -> Path:
    """``$DDPM_DATA`` if set, else the repository's ``data/`` folder (next to ``ddpm_lib/``)."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def pretrained_dir() -> Path:
    """The folder of the shipped weights: ``data/pretrained/`` under :func:`default_data_root`."""
    return default_data_root() / "pretrained"


def pretrained_path(name: str) -> Path:
    """Where the shipped weights called ``name`` live: ``data/pretrained/<name>.pt`` under
    :func:`default_data_root`. Names: ``unet_mnist`` (notebook 03's U-Net,
    ``UNetConfig.small()``), ``mlp_mnist`` (notebook
    02's x0-predicting MLP; ``mlp_mnist_eps`` and ``mlp_mnist_v`` are the same MLP predicting eps
    and v), ``cond_unet_mnist`` (notebook 06), ``mnist_classifier`` and ``mnist_mlp_classifier``
    (notebook 04's judges)."""
    return pretrained_dir() / (name if name.endswith(".pt") else f"{name}.pt")


def _matches(path: Path, size: int, md5: str) -> bool:
    return path.is_file() and path.stat().st_size == size and file_digest(path, "md5") == md5


def _fix_hint(root: Path) -> str:
    return (f"Fix: restore the repository's copy (git checkout -- {root / 'MNIST' / 'raw'}), "
            f"or fetch the files from the network with prepare_mnist(download=True)")


def _unpack(packed: Path, plain: Path, root: Path) -> Path:
    """Decompress ``packed`` into a per-process temporary file beside ``plain`` (parallel first uses
    do not collide) and return it; on any failure nothing is left behind and :class:`MNISTDataError`
    says whether the folder cannot be written or the archive is damaged."""
    tmp = plain.with_suffix(f".{os.getpid()}.tmp")
    try:
        dst = open(tmp, "wb")
    except OSError as err:
        raise MNISTDataError(f"cannot unpack {packed.name}: the MNIST folder {plain.parent} is not writable "
                             f"({err.strerror or err}); make it writable, or copy the data folder somewhere "
                             f"writable and point {DATA_ENV} at it") from err
    try:
        with dst, gzip.open(packed, "rb") as src:
            shutil.copyfileobj(src, dst)
    except (OSError, EOFError, zlib.error) as err:  # a damaged archive, a full disk
        tmp.unlink(missing_ok=True)
        full = isinstance(err, OSError) and err.errno == errno.ENOSPC
        reason = "the disk is full" if full else "it is damaged, truncated or not gzip"
        raise MNISTDataError(f"MNIST file {packed} cannot be decompressed ({type(err).__name__}: "
                             f"{first_line(err)}): {reason}. " + _fix_hint(root)) from err
    except BaseException:  # Ctrl-C mid-way: no half-written file left behind
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def prepare_mnist(root: Union[str, Path, None] = None, *, download: bool = False) -> Path:
    """Make sure ``root/MNIST/raw/`` holds the four uncompressed IDX files with the original
    md5s, unpacking the shipped ``.gz`` files if needed. Returns the raw folder.

    Raises :class:`MNISTDataError` naming the missing or corrupt file, what was expected and
    how to fix it. The network is used only with ``download=True``."""
    root = Path(root) if root is not None else default_data_root()
    raw = root / "MNIST" / "raw"
    if download:
        import torchvision  # the network fallback, never needed with the shipped files

        for train in (True, False):
            torchvision.datasets.MNIST(str(root), train=train, download=True)
    if not raw.is_dir():
        raise MNISTDataError(f"MNIST folder {raw} does not exist (data root {root}). "
                             f"Expected the four IDX files there. " + _fix_hint(root))
    for name, (size, md5) in MNIST_FILES.items():
        plain, packed = raw / name, raw / (name + ".gz")
        if _matches(plain, size, md5):
            continue
        if not packed.is_file():
            what = (f"{plain} is corrupt (size {plain.stat().st_size}, expected {size} bytes "
                    f"with md5 {md5})" if plain.exists() else
                    f"{plain} (or {packed.name}) is missing (expected {size} bytes with md5 {md5})")
            raise MNISTDataError(f"MNIST file {what}. " + _fix_hint(root))
        tmp = _unpack(packed, plain, root)
        if not _matches(tmp, size, md5):
            got = tmp.stat().st_size
            tmp.unlink()
            raise MNISTDataError(f"MNIST file {packed} unpacks to {got} bytes that do not match "
                                 f"the original (expected {size} bytes with md5 {md5}): the file "
                                 f"is altered or truncated. " + _fix_hint(root))
        os.replace(tmp, plain)
    return raw


def load_mnist(root: Union[str, Path, None] = None, *, train: bool = True,
               subset: Optional[int] = None, seed: int = 0, download: bool = False) -> TensorDataset:
    """MNIST as an in-memory ``TensorDataset(images, labels)``: images float32
    [N, 1, 28, 28] scaled to [-1, 1] (x / 127.5 - 1), labels int64 [N].

    ``subset=n`` keeps a random (seeded) n images, for quick runs."""
    import torchvision

    root = Path(root) if root is not None else default_data_root()
    prepare_mnist(root, download=download)
    ds = torchvision.datasets.MNIST(str(root), train=train, download=False)
    images = ds.data.unsqueeze(1).float() / 127.5 - 1.0
    labels = ds.targets.long()
    if subset is not None:
        if not 0 < subset <= len(labels):
            raise InputError(f"subset must be in [1, {len(labels)}], got {subset}")
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:subset]
        images, labels = images[keep], labels[keep]
    return TensorDataset(images, labels)


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map model space [-1, 1] back to image space [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def to_model_range(x: torch.Tensor, *, max_value: Optional[float] = None) -> torch.Tensor:
    """Map images from [0, max_value] to the model's data space [-1, 1]: x / (max_value / 2) - 1,
    as float32 (the inverse of :func:`to_unit_range` for max_value = 1). ``max_value`` defaults to
    255 for integer pixels (uint8, as MNIST's files store them) and to 1 for floats; give
    ``max_value=255`` for float pixels 0..255. Values outside [0, max_value] are refused."""
    if x.dtype == torch.bool or x.is_complex():
        raise InputTypeError(f"to_model_range takes pixel values (integers 0..255 or floats), got dtype {x.dtype}")
    if max_value is None:
        max_value = 1.0 if x.is_floating_point() else 255.0
    if not (math.isfinite(max_value) and max_value > 0):
        raise InputError(f"max_value must be a finite number > 0, got {max_value}")
    x = x.float()
    if x.numel():
        lo, hi = (float(v) for v in torch.aminmax(x))
        if not (0 <= lo and hi <= max_value):  # also refuses NaN
            raise InputError(f"to_model_range expects values in [0, {max_value:g}], got [{lo:.4g}, {hi:.4g}]"
                             + (f"; pixels 0..{pixel_max(hi)} need max_value={pixel_max(hi)}" if 1 < hi <= 255 else ""))
    return x / (max_value / 2) - 1


def pixel_max(hi: float) -> int:
    """The largest value of the pixel format that data whose brightest pixel is ``hi`` were stored in,
    for hints: 255 for 8-bit images (also where no pixel reaches 255), else the data's own maximum
    rounded up (e.g. 16 for scikit-learn's 8x8 digits)."""
    return 255 if hi > 128 else math.ceil(hi)


def _range_fix(call: str = "to_model_range(images)") -> str:
    return f"rescale them with ddpm_lib.data.{call} (-> [-1, 1]), or load MNIST with load_mnist()"


# how far outside [-1, 1] data may lie and still count as in range: float32 rounding where data
# enter (Trainer.fit, bits/dim), a sampler's small overshoot for samples (the evaluator)
RANGE_TOLERANCE = 1e-3
SAMPLE_RANGE_TOLERANCE = 0.5


def check_model_range(images: torch.Tensor, what: str = "images", tolerance: float = RANGE_TOLERANCE) -> None:
    """Raise :class:`ValueError` naming the fix (:func:`to_model_range`) unless ``images`` are
    finite floats in the model's data space [-1, 1] (to within ``tolerance``): integer pixels
    (uint8), NaN or inf, values beyond [-1, 1] (pixels 0..255 as floats) and images in [0, 1]
    (nothing below ``-tolerance``: an image space never mapped to [-1, 1], where black is -1) are
    refused. One pass over the tensor: call it once where data enter (``Trainer.fit``), not per
    batch."""
    if not images.is_floating_point():
        raise InputError(f"{what} are {images.dtype} pixels, but the model takes floats in [-1, 1]; {_range_fix()}")
    if not images.numel():
        return
    lo, hi = (float(v) for v in torch.aminmax(images.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{what} contain NaN or inf; reload them (load_mnist()) or find where they were damaged")
    if lo < -1 - tolerance or hi > 1 + tolerance:
        pixels = 0 <= lo and hi <= 255  # float pixels 0..hi: the hint names the data's own maximum
        top = pixel_max(hi)
        raise InputError(f"{what} must be scaled to [-1, 1], got range [{lo:.4g}, {hi:.4g}]; "
                         + _range_fix(f"to_model_range(images, max_value={top})" if pixels else "to_model_range"))
    if lo >= -tolerance and hi > 0:
        raise InputError(f"{what} lie in [{lo:.4g}, {hi:.4g}] with no value below 0, like images in [0, 1]; the "
                         f"model's data space is [-1, 1] (black is -1): {_range_fix()}")
