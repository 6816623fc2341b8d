"""Your own images, read into the model's data space: a folder of PNG/JPEG files or an array saved
with numpy (``.npy``) or torch (``.pt``), returned as float32 [N, C, H, W] in [-1, 1] with a
sentence saying what was found and how it was scaled.

    data, found = load_images("my_digits.npy")
    print(found)        # 1797 images of 1x8x8 from my_digits.npy, pixels 0..255 scaled to [-1, 1]
    trainer.fit(data)

Every refusal is one line naming the file and what to do: a missing or empty source, a file that is
not an image, images of different sizes, an array of the wrong shape, NaN, or values whose scale
cannot be told (floats that are neither in [0, 1] nor in [-1, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
from torch.utils.data import TensorDataset

from .data import pixel_max
from .errors import InputError
from .files import first_line, read_weights_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".pt")
PathLike = Union[str, Path]


@dataclass(frozen=True)
class FoundImages:
    """What :func:`load_images` read: from where, how many, their shape (C, H, W) and how their
    values were scaled to [-1, 1] (``scale``: "pixels 0..255", "floats in [0, 1]" or "floats in [-1, 1]")."""

    source: Path
    count: int
    shape: Tuple[int, int, int]
    scale: str

    def __str__(self) -> str:
        c, h, w = self.shape
        done = "kept as they are" if self.scale == "floats in [-1, 1]" else "scaled to [-1, 1]"
        return f"{self.count} images of {c}x{h}x{w} from {self.source}, {self.scale} {done}"


def _read_folder(folder: Path) -> torch.Tensor:
    """uint8 [N, C, H, W] from every PNG/JPEG in ``folder`` (sorted by name; grey stays 1 channel,
    anything else becomes RGB; all files one size)."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        others = sum(1 for p in folder.iterdir())
        raise InputError(f"{folder} holds no PNG or JPEG images ({others} other entries); put the images in "
                         f"it directly (not in subfolders), or give a .npy / .pt array")
    pictures: List[Image.Image] = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.load()
                pictures.append(img.convert("L") if img.mode in ("1", "L", "LA", "I;16", "I", "F") else img.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise InputError(f"{path} cannot be read as an image ({first_line(err)}); remove it or replace "
                             f"it with a PNG/JPEG") from err
        if pictures[-1].size != pictures[0].size:
            raise InputError(f"{path} is {pictures[-1].size[0]}x{pictures[-1].size[1]} pixels but {files[0].name} "
                             f"is {pictures[0].size[0]}x{pictures[0].size[1]}: all images must have one size; "
                             f"resize it or remove it")
    rgb = any(p.mode == "RGB" for p in pictures)  # a folder mixing grey and colour is read as colour
    arrays = [torch.frombuffer(bytearray((p.convert("RGB") if rgb else p).tobytes()), dtype=torch.uint8)
              for p in pictures]
    w, h = pictures[0].size
    c = 3 if rgb else 1
    return torch.stack(arrays).reshape(len(arrays), h, w, c).permute(0, 3, 1, 2).contiguous()


def _read_array(path: Path) -> torch.Tensor:
    """The array stored in a ``.npy`` (no pickles) or ``.pt`` (weights-only) file, as a tensor."""
    if path.suffix.lower() == ".npy":
        import numpy as np
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise InputError(f"{path} is not a readable .npy array ({first_line(err)}); save it with "
                             f"numpy.save(path, images)") from err
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "uifb":
            raise InputError(f"{path} holds {getattr(array, 'dtype', type(array).__name__)} values, not numbers; "
                             f"save the images as a uint8 or float array")
        return torch.from_numpy(np.ascontiguousarray(array))
    value = read_weights_file(path, "image array")
    if isinstance(value, dict) and "images" in value:
        value = value["images"]
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{path} holds a {type(value).__name__}, not a tensor of images; save one with "
                         f"torch.save(images, path)")
    return value


def _as_nchw(x: torch.Tensor, source: Path) -> torch.Tensor:
    """[N, H, W] -> [N, 1, H, W]; [N, C, H, W] kept; channels-last and other shapes refused."""
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise InputError(f"{source} holds an array of shape {list(x.shape)}; expected [N, H, W] (grey) or "
                         f"[N, C, H, W] images")
    if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        raise InputError(f"{source} holds [N, H, W, C] images (shape {list(x.shape)}, channels last); save "
                         f"them as [N, C, H, W]: images.transpose(0, 3, 1, 2)")
    if min(x.shape) == 0:
        raise InputError(f"{source} holds no images (shape {list(x.shape)})")
    return x


def to_data_range(x: torch.Tensor, source: PathLike = "the images") -> Tuple[torch.Tensor, str]:
    """Images as float32 in [-1, 1] and how they were scaled: integers as pixels 0..255 (x / 127.5 - 1),
    floats in [0, 1] by 2x - 1, floats already in [-1, 1] kept. NaN, integers outside 0..255 and floats
    outside both ranges (e.g. 0..16: scale those yourself with ``to_model_range(x, max_value=16)``)
    are refused."""
    if x.dtype == torch.bool or x.is_complex():
        raise InputError(f"{source} holds {x.dtype} values, not pixels; save uint8 0..255 or floats in [0, 1]")
    lo, hi = (float(v) for v in torch.aminmax(x.float()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{source} contains NaN or inf; fix or remove those images")
    if not x.is_floating_point():
        if lo < 0 or hi > 255:
            raise InputError(f"{source} holds integers in [{lo:g}, {hi:g}], not pixels 0..255; scale them to "
                             f"uint8 0..255 or floats in [0, 1]")
        return x.float() / 127.5 - 1, "pixels 0..255"
    if 0 <= lo and hi <= 1:
        return x.float() * 2 - 1, "floats in [0, 1]"
    if -1 <= lo and hi <= 1:
        return x.float(), "floats in [-1, 1]"
    fix = (f"scale them with ddpm_lib.to_model_range(images, max_value={pixel_max(hi)})" if 0 <= lo and hi <= 255
           else "save uint8 pixels 0..255, or floats in [0, 1]")
    raise InputError(f"{source} holds floats in [{lo:.4g}, {hi:.4g}]: neither [0, 1] nor [-1, 1], so their scale "
                     f"cannot be told; {fix}")


def split(images: torch.Tensor, subset: Optional[int], seed: int = 0) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``images`` split as ``load_images(..., subset=subset, seed=seed)`` draws them: (the ``subset``
    kept, the rest, held out); (all of them, None) when ``subset`` is None or takes them all."""
    if subset is None or subset >= len(images):
        return images, None
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[order[:subset]], images[order[subset:]]


def load_images(path: PathLike, *, subset: Optional[int] = None, seed: int = 0) -> Tuple[TensorDataset, FoundImages]:
    """Your images as ``TensorDataset(images)`` (float32 [N, C, H, W] in [-1, 1], no labels) and a
    :class:`FoundImages` saying what was read. ``path``: a folder of PNG/JPEG images (grey or RGB,
    one size), or a ``.npy`` / ``.pt`` array [N, H, W] or [N, C, H, W] of uint8 pixels, floats in
    [0, 1] or floats in [-1, 1] (detected, see :func:`to_data_range`). ``subset=n`` keeps a random
    (seeded) n of them. Raises :class:`~ddpm_lib.errors.InputError` in one line otherwise."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"image data {source} does not exist; give a folder of PNG/JPEG images or a .npy / .pt array")
    if source.is_dir():
        raw = _read_folder(source)
    elif source.suffix.lower() in ARRAY_SUFFIXES:
        raw = _as_nchw(_read_array(source), source)
    else:
        raise InputError(f"{source} is neither a folder of images nor a .npy / .pt array; give one of those")
    images, scale = to_data_range(raw, source)
    if subset is not None:
        if isinstance(subset, bool) or not isinstance(subset, int) or not 0 < subset <= len(images):
            raise InputError(f"subset must be a whole number in [1, {len(images)}] (the images in {source}), got {subset!r}")
        images = split(images, subset, seed)[0]
    found = FoundImages(source, len(images), tuple(images.shape[1:]), scale)
    return TensorDataset(images.contiguous()), found
