"""The command line never replaces what it should not: the shipped weights, a resumable
checkpoint, a user's run in runs/demo, earlier samples; it refuses up front what would fail or be
silently ignored later; and every error and every Ctrl-C ends in one line, never a traceback.

In-process runs (``main([...])``) with the shipped MLP, a step or two of sampling, and checkpoints
written without training, so that each test takes seconds."""

import hashlib
import os
from pathlib import Path

import pytest

import ddpm_lib.__main__ as cli
from ddpm_lib import DiffusionConfig, MLPConfig, MLPNoisePredictor, TrainConfig, Trainer, pretrained_path
from ddpm_lib.__main__ import main
from helpers import one_line_error

SHIPPED_DIR = pretrained_path("unet_mnist").parent
FAST_SAMPLE = ["--n", "1", "--steps", "1", "--device", "cpu"]
TINY_JUDGE = ["--epochs", "1", "--subset", "64", "--device", "cpu"]
TINY_TRAIN = ["--model", "mlp", "--steps", "1", "--subset", "64", "--batch-size", "16", "--T", "10",
              "--n-samples", "0", "--device", "cpu"]


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder``: its bytes' digest and its modification time."""
    return {p.relative_to(folder): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _resumable(folder: Path) -> Path:
    """A resumable checkpoint (optimizer, EMA, random states) of an untrained tiny MLP, in no time."""
    Trainer(MLPNoisePredictor(MLPConfig()), DiffusionConfig(T=10), TrainConfig(steps=0), out_dir=folder,
            device="cpu").save()
    return folder / "checkpoint.pt"


# ------------------------------------------------------------------ 1. the shipped weights folder
@pytest.mark.parametrize("argv", [
    ["train", "--out", "{shipped}", *TINY_TRAIN],
    ["train", "--out", "{shipped}/new-run", "--overwrite", *TINY_TRAIN],
    ["train", "--out", "{link}", *TINY_TRAIN],  # a symbolic link to the folder is the folder
    # the audit's cases: an MLP judge over the shipped CNN judge, a judge over the shipped U-Net
    ["classifier", "--arch", "mlp", "--out", "{shipped}/mnist_classifier.pt", "--overwrite", *TINY_JUDGE],
    ["classifier", "--arch", "cnn", "--out", "{shipped}/unet_mnist.pt", "--overwrite", *TINY_JUDGE],
    ["classifier", "--arch", "mlp", "--out", "{shipped}/mnist_mlp_classifier.pt", *TINY_JUDGE],
    ["export", "{ckpt}", "{shipped}/unet_mnist.pt", "--overwrite"],
    ["export", "{ckpt}", "{shipped}/new.pt"],
    ["export", "{ckpt}", "{link}/new.pt"],
    ["sample", "--checkpoint", "{mlp}", "--out", "{shipped}", "--overwrite", *FAST_SAMPLE],
    ["sample", "--checkpoint", "{mlp}", "--out", "{shipped}/samples", *FAST_SAMPLE],
])
def test_every_command_that_writes_needs_replace_shipped_in_the_shipped_folder(argv, tmp_path, capsys,
                                                                                monkeypatch):
    """Issue 35: `classifier --arch mlp --out data/pretrained/mnist_classifier.pt --overwrite` replaced the
    shipped CNN judge, `--out data/pretrained/unet_mnist.pt --overwrite` the shipped U-Net: the guard
    compared --out only with the same architecture's file. Now every path in the folder is refused,
    before anything is read, trained or written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(SHIPPED_DIR)
    ckpt = _resumable(tmp_path / "run")
    names = dict(shipped=SHIPPED_DIR, link=tmp_path / "link", ckpt=ckpt, mlp=pretrained_path("mlp_mnist"))
    before = _snapshot(SHIPPED_DIR)
    err = one_line_error(capsys, 1, main([arg.format(**names) for arg in argv]))
    assert "--replace-shipped" in err and "shipped" in err
    assert _snapshot(SHIPPED_DIR) == before  # not a byte, not a file, not a time stamp changed


def test_replace_shipped_writes_into_the_shipped_folder(tmp_path, capsys, monkeypatch):
    """With --replace-shipped the command does write there (a copy of the folder, through DDPM_DATA)."""
    from ddpm_lib import load_model
    from ddpm_lib.data import DATA_ENV

    folder = tmp_path / "data" / "pretrained"
    folder.mkdir(parents=True)
    (folder / "unet_mnist.pt").write_bytes(b"an old export")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    assert pretrained_path("unet_mnist").parent.resolve() == folder.resolve()
    ckpt = _resumable(tmp_path / "run")
    err = one_line_error(capsys, 1, main(["export", str(ckpt), str(folder / "unet_mnist.pt"), "--overwrite"]))
    assert "--replace-shipped" in err
    assert main(["export", str(ckpt), str(folder / "unet_mnist.pt"), "--replace-shipped"]) == 0
    assert load_model(folder / "unet_mnist.pt", device="cpu")[1].T == 10


# ------------------------------------------------------------------ 2. export onto its own input
def test_export_refuses_to_write_over_its_own_input(tmp_path, capsys):
    """Issue 35: `export runs/x/checkpoint.pt runs/x/checkpoint.pt --overwrite` replaced the resumable
    checkpoint with its float16 export. The same file, however named, is refused, as cp refuses."""
    ckpt = _resumable(tmp_path / "run")
    before = ckpt.read_bytes()
    (tmp_path / "link.pt").symlink_to(ckpt)
    os.link(ckpt, tmp_path / "hard.pt")
    for src, out in ((ckpt, ckpt), (ckpt, tmp_path / "run" / ".." / "run" / "checkpoint.pt"),
                     (ckpt, tmp_path / "link.pt"), (tmp_path / "link.pt", ckpt), (ckpt, tmp_path / "hard.pt")):
        err = one_line_error(capsys, 1, main(["export", str(src), str(out), "--overwrite"]))
        assert "same file" in err
    assert ckpt.read_bytes() == before and (tmp_path / "link.pt").is_symlink()


# ------------------------------------------------------------------ 3. the demo replaces only its own run
def _fake_demo(monkeypatch, seen):
    """The demo's three steps, replaced: training writes a checkpoint's worth of bytes."""
    def train(args):
        seen.append("train")
        Path(args.out, "checkpoint.pt").write_bytes(b"the demo's own run %d" % len(seen))
        return 0

    monkeypatch.setattr(cli, "cmd_sample", lambda args: seen.append("sample") or 0)
    monkeypatch.setattr(cli, "cmd_train", train)
    monkeypatch.setattr(cli, "demo_scores", lambda checkpoints, n: seen.append("scores"))


def test_the_demo_replaces_its_own_run_but_never_a_users(tmp_path, capsys, monkeypatch):
    """Issue 35: the demo passed --overwrite and replaced whatever run was in runs/demo, calling it
    "an earlier demo". It marks its own runs and refuses, in one line, to touch any other."""
    monkeypatch.chdir(tmp_path)
    seen = []
    _fake_demo(monkeypatch, seen)
    demo = tmp_path / "runs" / "demo"
    assert main([]) == 0 and seen == ["sample", "train", "scores"]
    assert "replacing" not in capsys.readouterr().out  # nothing was there to replace
    assert main([]) == 0 and seen[3:] == ["sample", "train", "scores"]  # its own run: replaced
    assert f"replacing the earlier demo in {Path('runs/demo')}" in capsys.readouterr().out

    (demo / "checkpoint.pt").write_bytes(b"the user trained over it: train --out runs/demo --overwrite")
    seen.clear()
    err = one_line_error(capsys, 1, main([]))
    assert "runs/demo" in err and "the demo did not make" in err and "move" in err
    assert seen == [] and (demo / "checkpoint.pt").read_bytes().startswith(b"the user trained")


def test_the_demo_refuses_a_folder_it_did_not_write(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    _fake_demo(monkeypatch, seen)
    demo = tmp_path / "runs" / "demo"
    _resumable(demo)  # a user's run, in the demo's folder before any demo ran
    before = _snapshot(demo)
    err = one_line_error(capsys, 1, main([]))
    assert "runs/demo" in err and "the demo did not make" in err
    assert seen == [] and _snapshot(demo) == before


# ------------------------------------------------------------------ 4. sample never replaces earlier samples silently
def test_sample_refuses_to_replace_earlier_samples_without_overwrite(tmp_path, capsys):
    """Issue 35: a second `sample --out D` silently replaced the first's samples.pt and samples.png."""
    argv = ["sample", "--checkpoint", str(pretrained_path("mlp_mnist")), "--out", str(tmp_path), *FAST_SAMPLE]
    assert main(argv) == 0
    capsys.readouterr()
    before = _snapshot(tmp_path)
    err = one_line_error(capsys, 1, main([*argv, "--seed", "1"]))
    assert "exists already" in err and "--overwrite" in err and _snapshot(tmp_path) == before
    assert main([*argv, "--seed", "1", "--overwrite"]) == 0
    assert _snapshot(tmp_path) != before
    help_text = next(a for a in cli.build_parser()._actions if a.dest == "command").choices["sample"].format_help()
    assert "--overwrite" in help_text


def test_an_output_that_is_a_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """Issue 35: `train --overwrite --out D` with a folder D/checkpoint.pt trained, then could not save;
    a folder named checkpoint.pt was called "an earlier run"."""
    (tmp_path / "checkpoint.pt").mkdir()
    monkeypatch.setattr(Trainer, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    for extra in (["--overwrite"], []):
        err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path), *TINY_TRAIN, *extra]))
        assert "checkpoint.pt is a folder" in err and "earlier run" not in err
    monkeypatch.setattr(cli, "_sample", lambda *a, **k: pytest.fail("sampled before refusing"))
    (tmp_path / "s" / "samples.png").mkdir(parents=True)
    err = one_line_error(capsys, 1, main(["sample", "--checkpoint", str(pretrained_path("mlp_mnist")),
                                           "--out", str(tmp_path / "s"), "--overwrite", *FAST_SAMPLE]))
    assert "samples.png is a folder" in err


# ------------------------------------------------------------------ 6. nothing silently ignored
@pytest.mark.parametrize("argv,flag", [
    (["sample", "--checkpoint", "x", "--eta", "0.5"], "--eta"),  # the default dpm++sde has no eta
    (["evaluate", "--checkpoint", "x", "--sampler", "dpm++", "--eta=0"], "--eta"),
    (["sample", "--checkpoint", "x", "--sampler", "ddpm", "--steps", "5"], "--steps"),  # ddpm takes all T
    (["sample", "--checkpoint", "x", "--sampler", "ddpm", "--spacing", "even"], "--spacing"),
    (["train", "--model", "mlp", "--base-channels", "16"], "--base-channels"),
    (["train", "--model", "mlp", "--base-channels=32", "--resume"], "--base-channels"),
])
def test_a_flag_the_command_would_ignore_is_refused(argv, flag, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, 2, main(argv))
    assert flag in err and "--help" in err
    assert list(tmp_path.iterdir()) == []


def test_flags_that_are_used_are_accepted(tmp_path, capsys):
    mlp = str(pretrained_path("mlp_mnist"))
    assert main(["sample", "--checkpoint", mlp, "--out", str(tmp_path), "--sampler", "ddim", "--eta", "0.5",
                 *FAST_SAMPLE]) == 0
    assert main(["train", "--out", str(tmp_path / "u"), "--model", "unet", "--base-channels", "8",
                 *TINY_TRAIN[2:]]) == 0


def test_raw_weights_of_an_export_are_refused(tmp_path, capsys):
    """An export holds only the EMA weights: `--raw` quietly sampled them."""
    for command in (["sample", "--out", str(tmp_path)], ["evaluate", "--n", "100"]):
        err = one_line_error(capsys, 1, main([*command, "--checkpoint", str(pretrained_path("mlp_mnist")),
                                               "--raw", "--steps", "1", "--device", "cpu"]))
        assert "--raw" in err and "only the EMA weights" in err
    assert main(["sample", "--checkpoint", str(_resumable(tmp_path / "run")), "--out", str(tmp_path / "s"),
                 "--raw", *FAST_SAMPLE]) == 0


# ------------------------------------------------------------------ 7. messages that say what to do
def test_guidance_and_digit_on_an_unconditional_model_say_so(tmp_path, capsys):
    mlp = str(pretrained_path("mlp_mnist"))
    for flags, named in ((["--guidance", "2"], "--guidance"), (["--digit", "3"], "--digit")):
        err = one_line_error(capsys, 1, main(["sample", "--checkpoint", mlp, "--out", str(tmp_path), *flags,
                                               *FAST_SAMPLE]))
        assert named in err and "unconditional (not class-conditional)" in err and "cond-unet" in err
    assert list(tmp_path.iterdir()) == []
    assert main(["sample", "--checkpoint", mlp, "--out", str(tmp_path), "--guidance", "0", *FAST_SAMPLE]) == 0


def test_the_library_says_an_unconditional_model_cannot_be_guided():
    from ddpm_lib import make_schedule, sample
    from ddpm_lib.errors import InputError

    with pytest.raises(InputError, match=r"unconditional \(not class-conditional\).*guidance=0"):
        sample(MLPNoisePredictor(MLPConfig()), make_schedule(T=10), 1, steps=1, guidance=2.0, progress=False)


@pytest.mark.parametrize("command", [["train"], ["sample", "--checkpoint", "x"], ["evaluate", "--checkpoint", "x"],
                                     ["classifier"]])
@pytest.mark.parametrize("seed", ["100000000000000000000", "-1", str(2 ** 32)])
def test_a_seed_out_of_range_is_refused_naming_seed_and_its_range(command, seed, tmp_path, capsys, monkeypatch):
    """Issue 35: `--seed 100000000000000000000` gave "Overflow when unpacking long long"."""
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, 2, main([*command, "--seed", seed]))
    assert "argument --seed:" in err and f"0..{2 ** 32 - 1}" in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_checks_its_arguments_before_sampling(tmp_path, capsys, monkeypatch):
    """Issue 35: `evaluate --t-samples 1 --bpd-images 1` was refused only after sampling."""
    monkeypatch.setattr(cli, "_sample", lambda *a, **k: pytest.fail("sampled before refusing"))
    err = one_line_error(capsys, 2, main(["evaluate", "--checkpoint", str(pretrained_path("mlp_mnist")),
                                           "--n", "1", "--t-samples", "1", "--bpd-images", "1"]))
    assert "argument --t-samples:" in err and ">= 4" in err


# ------------------------------------------------------------------ 8. no tracebacks, Ctrl-C in one line
def test_errors_and_ctrl_c_in_the_demos_scoring_are_one_line(tmp_path, capsys, monkeypatch):
    """Issue 35: the demo's step 3 ran outside main()'s error handling: an empty shipped judge gave a
    CheckpointError traceback, Ctrl-C a KeyboardInterrupt traceback."""
    from ddpm_lib import CheckpointError

    monkeypatch.chdir(tmp_path)
    _fake_demo(monkeypatch, [])

    def empty_judge(checkpoints, n):
        raise CheckpointError("data/pretrained/mnist_classifier.pt is empty (0 bytes), not a classifier file")

    monkeypatch.setattr(cli, "demo_scores", empty_judge)
    assert "is empty (0 bytes)" in one_line_error(capsys, 1, main([]))

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "demo_scores", ctrl_c)
    assert "interrupted" in one_line_error(capsys, 130, main([]))
    monkeypatch.setattr(cli, "load_model", ctrl_c)  # and anywhere in a command
    err = one_line_error(capsys, 130, main(["evaluate", "--checkpoint", "x"]))
    assert "interrupted" in err


# ------------------------------------------------------------------ 9. temporaries of a killed write
def test_sample_export_and_classifier_remove_what_a_killed_write_left(tmp_path, capsys, monkeypatch):
    """Issue 35: a kill during the final rename left temporary files that only `train` cleaned up."""
    import ddpm_lib.metrics.classifier as classifier

    out = tmp_path / "s"
    out.mkdir()
    for name in (".samples.k1ll3d00.png", ".samples.k1ll3d00.pt"):
        (out / name).write_bytes(b"half a file")
    (out / ".samples.keep.png.bak").write_bytes(b"not ours")
    assert main(["sample", "--checkpoint", str(pretrained_path("mlp_mnist")), "--out", str(out),
                 *FAST_SAMPLE]) == 0
    assert "removed 2 unfinished file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".samples.keep.png.bak", "samples.png", "samples.pt"]

    (tmp_path / ".small.pt.k1ll3d.tmp").write_bytes(b"half an export")
    assert main(["export", str(pretrained_path("mlp_mnist")), str(tmp_path / "small.pt")]) == 0
    assert not (tmp_path / ".small.pt.k1ll3d.tmp").exists()

    (tmp_path / ".judge.pt.k1ll3d.tmp").write_bytes(b"half a judge")
    monkeypatch.setattr(classifier, "train_classifier", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["classifier", "--out", str(tmp_path / "judge.pt"), "--device", "cpu", "--subset", "16"]) == 130
    assert not (tmp_path / ".judge.pt.k1ll3d.tmp").exists()


def test_train_refuses_a_sample_count_that_cannot_fit_before_training(tmp_path, capsys):
    """--n-samples 10^11 once trained, then grew to 24 GB while building the sampler: now refused up front."""
    argv = [a for a in TINY_TRAIN if a not in ("--n-samples", "0")]
    code = main(["train", "--out", str(tmp_path / "x"), *argv, "--n-samples", "100000000000"])
    err = one_line_error(capsys, 1, code)
    assert "GiB" in err and "at most" in err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()
