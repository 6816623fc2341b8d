"""Your own data from the command line (issue "Your own data"): ``train --data PATH`` trains a model
sized for the images (a folder of PNG/JPEG files or a .npy / .pt array), ``sample`` and ``export``
work at that shape, ``evaluate`` leaves the MNIST judges out and measures what does not depend on
MNIST; every bad input is one line, and nothing is written to ``--out``.

In-process runs (``main([...])``): a U-Net of width 8, T = 5, two or three steps, 16x16 images made
here from seeded random numbers, so that each test takes seconds."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_lib import DiffusionConfig, MLPConfig, MLPNoisePredictor, TrainConfig, Trainer
from ddpm_lib.__main__ import main
from ddpm_lib.image_files import split as held_out_split
from ddpm_lib.checkpoints import load_checkpoint
from ddpm_lib.files import read_weights_file
from ddpm_lib.image_files import load_images
from helpers import one_line_error

TINY = ["--steps", "2", "--batch-size", "8", "--base-channels", "8", "--T", "5", "--device", "cpu"]
FAST_SAMPLE = ["--steps", "2", "--device", "cpu"]


def _png_folder(folder: Path, n: int = 24, size=(16, 16), mode: str = "RGB", seed: int = 0) -> Path:
    """n seeded random PNG images of ``size`` (width, height) in ``folder``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(folder / f"img{i:03d}.png")
    return folder


def _npy(path: Path, shape, dtype=np.uint8, seed: int = 0) -> Path:
    """A seeded random uint8 array of ``shape`` saved with numpy."""
    np.save(path, np.random.default_rng(seed).integers(0, 256, shape).astype(dtype))
    return path


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder``: its bytes' digest and its modification time."""
    return {p.relative_to(folder): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ the "done when"
@pytest.mark.parametrize("kind", ["png", "npy"])
def test_own_images_train_sample_export_and_evaluate(kind, tmp_path, capsys, recwarn):
    """A PNG folder of RGB 16x16 images (trained on 16 of its 24, the rest held out) and a uint8 .npy of
    16x16 greys (trained on all) each train, sample, export and evaluate through the command line."""
    if kind == "png":
        data, shape, subset = _png_folder(tmp_path / "pictures"), (3, 16, 16), ["--subset", "16"]
    else:
        data, shape, subset = _npy(tmp_path / "greys.npy", (24, 16, 16)), (1, 16, 16), []
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY, *subset, "--n-samples", "4"]) == 0
    said = capsys.readouterr().out
    _, found = load_images(data, subset=16 if subset else None)
    assert str(found) in said and "pixels 0..255 scaled to [-1, 1]" in said  # what was read, how it was scaled
    assert "levels 16, 8, 4" in said and "self-attention at 4x4" in said  # the U-Net sized for the data
    assert not [w for w in recwarn if "attn_resolutions" in str(w.message)]  # its attention is at a level it has
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["train_config"]["data"] == str(data) and state["data_shape"] == list(shape)
    assert state["model_config"]["in_channels"] == shape[0] and state["model_config"]["image_size"] == 16
    x = read_weights_file(out / "samples.pt")
    assert x.shape == (4, *shape) and torch.isfinite(x).all()
    from PIL import Image
    with Image.open(out / "samples.png") as png:  # a 2 x 2 grid of 16x16 images (or larger: scaled up to be seen)
        assert png.size[0] == png.size[1] >= 2 * 16 + 3 * 2 and png.mode == "RGB"

    assert main(["sample", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "s"), "--n", "3",
                 *FAST_SAMPLE]) == 0
    assert read_weights_file(tmp_path / "s" / "samples.pt").shape == (3, *shape)
    export = tmp_path / "small.pt"
    assert main(["export", str(out / "checkpoint.pt"), str(export)]) == 0
    assert main(["sample", "--checkpoint", str(export), "--out", str(tmp_path / "e"), "--n", "2", *FAST_SAMPLE]) == 0
    assert read_weights_file(tmp_path / "e" / "samples.pt").shape == (2, *shape)
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(export), "--n", "2", *FAST_SAMPLE]) == 0
    captured = capsys.readouterr()  # the export keeps the run's data: the same measures
    assert json.loads(captured.out)["data"] == str(data) and "note: this run was trained on" in captured.err
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--n", "6", *FAST_SAMPLE,
                 "--bpd-images", "3", "--t-samples", "4"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip())
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]  # (progress bars aside)
    assert len(notes) == 1 and "Traceback" not in captured.err  # one line says why the MNIST judges are left out
    note = notes[0]
    assert f"trained on {data}, not MNIST" in note and "MNIST-FID and the digit judges" in note
    assert not {"fid", "fid2", "precision", "recall", "histogram", "confident_share"} & set(result)
    assert result["data"] == str(data) and result["image_shape"] == list(shape) and result["n"] == 6
    assert 0 < result["bits_per_dim"] < float("inf") and result["bits_per_dim_images"] == 3  # T = 5: large prior
    assert len(result["loss_per_t"]) >= 2 and all(v > 0 for v in result["loss_per_t"].values())
    if subset:  # 8 images held out: the measures use them, memorisation compares with them
        assert result["eval_images"] == "held_out" and result["eval_images_available"] == 8
        assert result["memorisation_ratio"] > 0 and 0 <= result["copy_share"] <= 1
    else:  # trained on all: measured on training images, said so; no memorisation check without unseen images
        assert result["eval_images"] == "training" and "memorisation_ratio" not in result
        assert "none is held out" in note and "training images" in note


def test_an_mlp_is_sized_for_the_images_too(tmp_path, capsys):
    data = _npy(tmp_path / "greys.npy", (16, 12, 12))  # 12x12: an MLP takes any size
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--data", str(data), "--out", str(out), "--steps", "2",
                 "--batch-size", "8", "--T", "5", "--n-samples", "2", "--device", "cpu"]) == 0
    config = load_checkpoint(out / "checkpoint.pt")["model_config"]
    assert (config["kind"], config["in_channels"], config["image_size"]) == ("mlp", 1, 12)
    assert read_weights_file(out / "samples.pt").shape == (2, 1, 12, 12)


def test_held_out_split_is_the_complement_of_the_training_subset(tmp_path):
    """evaluate's held-out images are exactly those the run's --subset draw left out."""
    data = _npy(tmp_path / "greys.npy", (20, 8, 8))
    everything = load_images(data)[0].tensors[0]
    train, held = held_out_split(everything, 13)
    assert torch.equal(train, load_images(data, subset=13)[0].tensors[0]) and len(held) == 7
    together = torch.cat([train, held]).flatten(1)
    assert len(torch.unique(together, dim=0)) == 20  # every image once, in one part or the other
    train, held = held_out_split(everything, None)
    assert torch.equal(train, everything) and held is None


def test_train_config_records_the_data_as_text():
    """TrainConfig.data is saved in checkpoints, which hold no Path objects: a Path becomes its text."""
    assert TrainConfig(data=Path("images") / "cats").data == str(Path("images") / "cats")
    assert TrainConfig().data is None  # MNIST
    with pytest.raises(ValueError, match="data must be a path"):
        TrainConfig(data=3)


# ------------------------------------------------------------------ resume
def test_resume_reuses_the_runs_data_and_refuses_another(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _png_folder(tmp_path / "pictures")
    _png_folder(tmp_path / "others", seed=1)
    assert main(["train", "--data", "pictures", "--out", "run", *TINY, "--subset", "16", "--n-samples", "0"]) == 0
    capsys.readouterr()
    # no --data, no --subset: the run's own 16 images of its own folder
    assert main(["train", "--out", "run", "--resume", "--steps", "3", "--n-samples", "0"]) == 0
    said = capsys.readouterr().out
    assert "resuming" in said and "16 images of 3x16x16 from pictures" in said and "trained 3 steps" in said
    # the same folder, spelt another way, is the same data
    assert main(["train", "--out", "run", "--resume", "--data", str(tmp_path / "pictures") + "/", "--steps", "4",
                 "--n-samples", "0"]) == 0
    capsys.readouterr()
    before = _snapshot(tmp_path / "run")
    err = one_line_error(capsys, 1, main(["train", "--out", "run", "--resume", "--data", "others", "--steps", "5"]))
    assert "--data others (checkpoint: pictures)" in err and "drop those flags" in err
    assert _snapshot(tmp_path / "run") == before


def test_resume_of_an_mnist_run_with_data_is_refused(tmp_path, capsys):
    Trainer(MLPNoisePredictor(MLPConfig()), DiffusionConfig(T=10), TrainConfig(steps=0), out_dir=tmp_path / "run",
            device="cpu").save()
    before = _snapshot(tmp_path / "run")
    data = _npy(tmp_path / "greys.npy", (16, 16, 16))
    err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path / "run"), "--resume", "--data", str(data),
                                          "--steps", "2"]))
    assert f"--data {data} (checkpoint: MNIST)" in err
    assert _snapshot(tmp_path / "run") == before


def test_resume_when_the_runs_data_is_gone_says_so(tmp_path, capsys):
    data = _npy(tmp_path / "greys.npy", (16, 16, 16))
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY, "--n-samples", "0"]) == 0
    data.unlink()
    capsys.readouterr()
    before = _snapshot(out)
    err = one_line_error(capsys, 1, main(["train", "--out", str(out), "--resume", "--steps", "3"]))
    assert f"trained on {data}" in err and "not there" in err
    assert _snapshot(out) == before


# ------------------------------------------------------------------ bad inputs: one line, nothing written
def _non_image_png(tmp_path):
    folder = _png_folder(tmp_path / "d", n=3)
    (folder / "notes.png").write_text("not a picture")
    return folder


def _two_sizes(tmp_path):
    folder = _png_folder(tmp_path / "d", n=3)
    _png_folder(folder, n=1, size=(20, 20), seed=5)  # img000.png replaced by a 20x20 one
    return folder


BAD_DATA = {
    "missing path": (lambda tmp: tmp / "nowhere", [], 1, "does not exist"),
    "empty folder": (lambda tmp: (tmp / "d").mkdir() or tmp / "d", [], 1, "holds no PNG or JPEG images"),
    "a non-image file named .png": (_non_image_png, [], 1, "cannot be read as an image"),
    "images of two sizes": (_two_sizes, [], 1, "all images must have one size"),
    "13x13, which the U-Net cannot halve": (lambda tmp: _npy(tmp / "a.npy", (8, 13, 13)), [], 1, "sizes that work"),
    "10x10, which the U-Net cannot halve": (lambda tmp: _npy(tmp / "a.npy", (8, 10, 10)), [], 1, "sizes that work"),
    "non-square images": (lambda tmp: _npy(tmp / "a.npy", (8, 16, 12)), [], 1, "square"),
    "a channels-last array": (lambda tmp: _npy(tmp / "a.npy", (8, 16, 16, 3)), [], 1, "channels last"),
    "--download with --data": (lambda tmp: _npy(tmp / "a.npy", (8, 16, 16)), ["--download"], 2, "--download"),
    "cond-unet with --data": (lambda tmp: _npy(tmp / "a.npy", (8, 16, 16)), ["--model", "cond-unet"], 2,
                              "labels"),
    "a batch larger than the images": (lambda tmp: _npy(tmp / "a.npy", (8, 16, 16)), ["--batch-size", "16"], 1,
                                       "larger than the 8 training images"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_one_line_and_nothing_is_written(case, tmp_path, capsys):
    make, extra, code, said = BAD_DATA[case]
    data = make(tmp_path)
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--steps", "2", "--base-channels", "8", "--T", "5",
            "--n-samples", "0", "--device", "cpu", *extra]
    if "--batch-size" not in extra:
        argv += ["--batch-size", "4"]
    err = one_line_error(capsys, code, main(argv))
    assert said in err, err
    assert not out.exists()  # no folder, no lock, no checkpoint


def test_the_unet_size_refusal_names_the_sizes_that_work_and_the_mlp(tmp_path, capsys):
    data = _npy(tmp_path / "a.npy", (8, 10, 10))
    err = one_line_error(capsys, 1, main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY]))
    assert "10x10" in err and "12, 16" in err and "--model mlp" in err


# ------------------------------------------------------------------ evaluate on a run of your own images
def test_evaluate_refuses_the_mnist_judges_for_a_run_on_own_images(tmp_path, capsys):
    data = _npy(tmp_path / "greys.npy", (16, 16, 16))
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY, "--n-samples", "0"]) == 0
    capsys.readouterr()
    err = one_line_error(capsys, 1, main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--classifier",
                                          "judge.pt", "--n", "2", *FAST_SAMPLE]))
    assert f"trained on {data}, not MNIST" in err and "--classifier" in err
    data.unlink()  # the run's data is needed for the measures that do not depend on MNIST
    err = one_line_error(capsys, 1, main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--n", "2",
                                          *FAST_SAMPLE]))
    assert f"trained on {data}" in err and "not there" in err


def test_bits_per_dim_of_images_that_are_not_8_bit_pixels_is_refused_before_sampling(tmp_path, capsys):
    """bits/dim needs 8-bit pixel levels (the discrete decoder of Eq. 13): floats in [0, 1] of any other
    values are refused in one line naming --bpd-images, before any sampling."""
    data = tmp_path / "floats.npy"
    np.save(data, np.random.default_rng(0).random((16, 16, 16), dtype=np.float32))
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY, "--n-samples", "0"]) == 0
    capsys.readouterr()
    err = one_line_error(capsys, 1, main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--n", "2",
                                          *FAST_SAMPLE, "--bpd-images", "2", "--t-samples", "4"]))
    assert "--bpd-images" in err and "8-bit" in err
