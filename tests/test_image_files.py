"""Your own images: a folder of PNG/JPEG files or a .npy / .pt array is read into [-1, 1] with its
scale detected and said, and every kind of bad input is one line naming the file and the fix."""

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_lib.errors import InputError
from ddpm_lib.image_files import load_images, to_data_range


def _png_folder(folder, n=5, size=16, mode="RGB", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    arrays = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    for i, a in enumerate(arrays):
        Image.fromarray(a if channels == 3 else a[..., 0], mode).save(folder / f"img{i:03d}.png")
    return arrays


def test_rgb_png_folder_reads_pixel_exact(tmp_path):
    arrays = _png_folder(tmp_path / "rgb")
    (tmp_path / "rgb" / "notes.txt").write_text("not an image, ignored")
    data, found = load_images(tmp_path / "rgb")
    x = data.tensors[0]
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
    expected = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.equal(x, expected)
    assert found.count == 5 and found.shape == (3, 16, 16) and found.scale == "pixels 0..255"
    assert "5 images of 3x16x16" in str(found)


def test_grey_folder_has_one_channel_and_mixed_folder_is_colour(tmp_path):
    _png_folder(tmp_path / "grey", mode="L")
    assert load_images(tmp_path / "grey")[0].tensors[0].shape == (5, 1, 16, 16)
    _png_folder(tmp_path / "grey", n=1, mode="RGB", seed=1)  # img000.png replaced by a colour image
    assert load_images(tmp_path / "grey")[0].tensors[0].shape == (5, 3, 16, 16)


def test_uint8_npy_of_greys(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (7, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "greys.npy", pixels)
    data, found = load_images(tmp_path / "greys.npy", subset=4, seed=1)
    assert data.tensors[0].shape == (4, 1, 16, 16) and found.scale == "pixels 0..255"
    assert float(data.tensors[0].min()) >= -1 and float(data.tensors[0].max()) <= 1


@pytest.mark.parametrize("values, scale", [(lambda x: x, "floats in [0, 1]"), (lambda x: x * 2 - 1, "floats in [-1, 1]")])
def test_float_scales_are_detected(tmp_path, values, scale):
    unit = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.save(values(unit), tmp_path / "x.pt")
    data, found = load_images(tmp_path / "x.pt")
    assert found.scale == scale
    assert torch.allclose(data.tensors[0], unit * 2 - 1, atol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", r"does not exist"),
    (lambda d: (d / "empty").mkdir() or d / "empty", r"holds no PNG or JPEG"),
    (lambda d: (d / "a.csv").write_text("1,2") and d / "a.csv", r"neither a folder of images nor a \.npy"),
])
def test_missing_empty_or_unknown_sources(tmp_path, make, message):
    with pytest.raises(InputError, match=message) as err:
        load_images(make(tmp_path))
    assert "\n" not in str(err.value)


def test_odd_files_in_a_folder_are_named(tmp_path):
    _png_folder(tmp_path / "f", n=3)
    Image.new("RGB", (12, 16)).save(tmp_path / "f" / "img001.png")
    with pytest.raises(InputError, match=r"img001\.png is 12x16 pixels but img000\.png is 16x16"):
        load_images(tmp_path / "f")
    (tmp_path / "f" / "img001.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=r"img001\.png cannot be read as an image"):
        load_images(tmp_path / "f")


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 16, 16, 3), np.uint8), r"channels last.*transpose\(0, 3, 1, 2\)"),
    (np.zeros((16, 16), np.uint8), r"expected \[N, H, W\]"),
    (np.zeros((0, 16, 16), np.uint8), r"holds no images"),
    (np.full((2, 8, 8), np.nan, np.float32), r"NaN"),
    (np.arange(2 * 64, dtype=np.float64).reshape(2, 8, 8) % 17, r"\[0, 16\].*max_value=16"),
    (np.full((2, 8, 8), 300, np.int32), r"not pixels 0\.\.255"),
    (np.zeros((2, 8, 8), bool), r"not pixels"),
    (np.array(["a", "b"]), r"not numbers"),
])
def test_bad_arrays_are_one_line(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(InputError, match=message) as err:
        load_images(tmp_path / "x.npy")
    assert "\n" not in str(err.value)


def test_pickled_npy_and_pt_run_nothing(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"not a readable \.npy"):
        load_images(tmp_path / "objects.npy")
    torch.save({"not": "images"}, tmp_path / "d.pt")
    with pytest.raises(InputError, match=r"holds a dict, not a tensor"):
        load_images(tmp_path / "d.pt")


def test_subset_out_of_range(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(InputError, match=r"subset must be a whole number in \[1, 3\]"):
        load_images(tmp_path / "x.npy", subset=4)


def test_to_data_range_is_the_inverse_of_to_unit_range():
    from ddpm_lib import to_unit_range
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x, scale = to_data_range(pixels)
    assert scale == "pixels 0..255" and torch.allclose(to_unit_range(x) * 255, pixels.float(), atol=1e-4)
