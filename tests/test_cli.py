"""The command line trains, writes checkpoints and a PNG of samples, samples again from the
checkpoint, and reports errors in one line with a non-zero exit."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpm_lib.config import UNetConfig
from ddpm_lib.files import read_weights_file
from helpers import one_line_error


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ddpm_lib", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.slow
def test_train_then_sample(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--out", str(out), "--steps", "4", "--subset", "256", "--batch-size", "16",
            "--base-channels", "8", "--T", "100", "--n-samples", "4")
    assert r.returncode == 0, r.stderr
    assert "trained 4 steps" in r.stdout
    assert (out / "checkpoint.pt").stat().st_size > 0
    png = (out / "samples.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    r = run("train", "--out", str(out), "--resume", "--steps", "6", "--subset", "256", "--n-samples", "0")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "trained 6 steps" in r.stdout

    r = run("sample", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "s"), "--n", "3",
            "--steps", "5")
    assert r.returncode == 0, r.stderr
    x = read_weights_file(tmp_path / "s" / "samples.pt")
    assert x.shape == (3, 1, 28, 28) and torch.isfinite(x).all()

    r = run("sample", "--checkpoint", str(out / "checkpoint.pt"), "--steps", "101", "--n", "1")
    assert r.returncode == 1 and "exceeds the model's T=100" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_errors_are_one_line_without_traceback(tmp_path):
    r = run("sample", "--checkpoint", str(tmp_path / "missing.pt"))
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error:") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_classifier_trains_into_a_run_folder_and_never_silently_replaces_the_shipped_judge(tmp_path):
    from ddpm_lib.metrics import default_classifier_path, load_classifier

    shipped = default_classifier_path("mlp")
    before = shipped.read_bytes()
    r = run("classifier", "--arch", "mlp", "--out", str(shipped), "--epochs", "1", "--subset", "256")
    assert r.returncode == 1 and "--replace-shipped" in r.stderr and "Traceback" not in r.stderr
    assert shipped.read_bytes() == before
    r = run("classifier", "--arch", "mlp", "--epochs", "1", "--subset", "256", "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    judge = load_classifier(tmp_path / "runs" / "classifier" / "mlp.pt", device="cpu")
    assert judge.arch == "mlp" and judge.num_classes == 11 and 0 < judge.test_accuracy < 1


def _weights(path):
    return read_weights_file(path)["model"]


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path):
    """SIGKILL mid-run loses at most one checkpoint interval; resuming on CPU with the same
    seed ends with the same weights as a run that was never interrupted."""
    import signal
    import time

    common = ["--subset", "256", "--batch-size", "16", "--base-channels", "8", "--T", "100",
              "--n-samples", "0", "--checkpoint-every", "5", "--device", "cpu"]
    r = run("train", "--out", str(tmp_path / "straight"), "--steps", "40", *common)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "killed"  # aims far beyond 40 steps so that it is surely still running when killed
    proc = subprocess.Popen([sys.executable, "-m", "ddpm_lib", "train", "--out", str(out), "--steps", "100000",
                             *common],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "checkpoint.pt"
    deadline = time.time() + 300
    step = 0
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                step = read_weights_file(ckpt)["step"]
            except Exception:  # noqa: BLE001 - the rename is atomic, but be tolerant
                step = 0
            if step >= 10:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 10 <= step < 40, f"could not catch the run mid-way (step {step})"
    killed_at = read_weights_file(ckpt)["step"]
    assert killed_at % 5 == 0  # a checkpoint interval boundary: the file is never half-written

    r = run("train", "--out", str(out), "--resume", "--steps", "40", *common)
    assert r.returncode == 0, r.stderr
    assert f"resuming {ckpt} at step {killed_at}" in r.stdout
    a, b = _weights(tmp_path / "straight" / "checkpoint.pt"), _weights(ckpt)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_conditional_model_samples_a_chosen_digit(tmp_path):
    out = tmp_path / "cond"
    r = run("train", "--model", "cond-unet", "--out", str(out), "--steps", "2", "--subset", "256",
            "--batch-size", "16", "--base-channels", "8", "--T", "50", "--n-samples", "0")
    assert r.returncode == 0, r.stderr
    r = run("sample", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(out), "--n", "2",
            "--steps", "3", "--digit", "7", "--guidance", "2")
    assert r.returncode == 0, r.stderr
    assert "guidance w = 2.0" in r.stdout
    r = run("sample", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(out), "--n", "2",
            "--steps", "3", "--digit", "7", "--overwrite")  # no --guidance: the default for a conditional model
    from ddpm_lib import SamplerConfig
    assert r.returncode == 0 and f"guidance w = {SamplerConfig.guidance}" in r.stdout, r.stderr
    r = run("sample", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(out), "--digit", "12")
    assert r.returncode == 2 and "argument --digit: must be a digit 0..9, got 12" in r.stderr  # refused at parse time


@pytest.mark.slow
def test_evaluate_prints_one_json_line_of_metrics(tmp_path):
    import json

    from ddpm_lib import load_model, pretrained_path

    ckpt = pretrained_path("unet_mnist")
    r = run("evaluate", "--checkpoint", str(ckpt), "--n", "24", "--steps", "5", "--bpd-images", "4",
            "--t-samples", "4", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["n"] == 24 and result["steps"] == 5 and len(result["histogram"]) == 10
    assert sum(result["histogram"]) + round(result["rejected_share"] * 24) == 24  # read digits + "not a digit"
    assert result["fid"] > 0 and result["fid_floor"] > 0 and 0 <= result["confident_share"] <= 1
    assert result["fid2"] > 0 and result["fid2_floor"] > 0  # the second judge's opinion
    assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    assert result["classifier_used"]["kind"] == "cnn" and result["second_used"]["kind"] == "mlp"
    assert result["classifier_used"]["test_accuracy"] >= 0.99
    assert 0 < result["bits_per_dim"] < 8 and set(result["bits_per_dim_terms"]) >= {"L_T", "L_0"}
    fitted = hasattr(load_model(ckpt, device="cpu")[0], "variance_fit")
    assert result["bits_per_dim_variance"] == ("fitted" if fitted else "beta_tilde")
    r = run("evaluate", "--checkpoint", str(tmp_path / "none.pt"))
    assert r.returncode == 1 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_the_demo_shows_the_shipped_model_then_trains_three_minutes_and_scores_both(tmp_path, monkeypatch):
    """``python -m ddpm_lib``: the shipped U-Net's samples first, then a 3-minute training run of
    the x0-predicting MLP, then the evaluator's numbers for both checkpoints."""
    import ddpm_lib.__main__ as cli
    from ddpm_lib import pretrained_path

    monkeypatch.chdir(tmp_path)  # the demo writes into runs/demo
    seen = {}
    monkeypatch.setattr(cli, "cmd_sample", lambda args: seen.setdefault("sample", args) and 0)
    monkeypatch.setattr(cli, "cmd_train", lambda args: seen.setdefault("train", args) and 0)
    monkeypatch.setattr(cli, "demo_scores", lambda checkpoints, n: seen.setdefault("scores", (checkpoints, n)))
    assert cli.main([]) == 0
    assert list(seen) == ["sample", "train", "scores"]  # in this order
    assert Path(seen["sample"].checkpoint) == pretrained_path("unet_mnist") and seen["sample"].sampler == "dpm++sde"
    args = seen["train"]  # the recipe measured best for 3 minutes: the MLP predicting x0
    assert args.minutes == 3 and args.model == "mlp" and args.out == "runs/demo" and args.overwrite
    assert args.prediction == "x0" and args.lr_schedule == "cosine" and not args.min_snr_gamma
    checkpoints, n = seen["scores"]
    assert [path for _, path in checkpoints] == [pretrained_path("unet_mnist"), Path("runs/demo/checkpoint.pt")]
    assert n >= 100


def test_every_cli_default_is_read_from_its_dataclass(monkeypatch):
    """A default lives in one place: the parser's defaults equal the dataclass fields they
    configure, and changing a dataclass default changes the parser and its --help."""
    import dataclasses

    from ddpm_lib import __main__ as cli
    from ddpm_lib.config import DiffusionConfig, EvalConfig, SamplerConfig, TrainConfig
    from ddpm_lib.metrics.classifier import ClassifierConfig

    def parsed(command):
        extra = ["--checkpoint", "x"] if command in ("sample", "evaluate") else []
        return vars(cli.build_parser().parse_args([command, *extra]))

    owners = {"train": (TrainConfig, DiffusionConfig), "sample": (SamplerConfig,),
              "evaluate": (SamplerConfig, EvalConfig), "classifier": (ClassifierConfig,)}
    dest_of = {"max_minutes": "minutes"}
    # train --steps stays None on the command line: "TrainConfig().steps unless --minutes is given"
    # --guidance stays None: SamplerConfig.guidance for a class-conditional model, 0 without labels
    skip = {("train", "steps"), ("classifier", "epochs"), ("sample", "guidance"), ("evaluate", "guidance")}
    checked = 0
    for command, classes in owners.items():
        args = parsed(command)
        for cls in classes:
            for f in dataclasses.fields(cls):
                dest = dest_of.get(f.name, f.name)
                if dest in args and (command, f.name) not in skip:
                    assert args[dest] == f.default, (command, cls.__name__, f.name)
                    checked += 1
    assert checked >= 16, checked

    def patched(cls, **defaults):
        return dataclasses.dataclass(type(cls.__name__, (cls,), {"__annotations__": {k: type(v) for k, v in defaults.items()},
                                                                 **defaults}))

    monkeypatch.setattr(cli, "TrainConfig", patched(TrainConfig, lr=0.123, steps=777))
    monkeypatch.setattr(cli, "SamplerConfig", patched(SamplerConfig, steps=37))
    assert parsed("train")["lr"] == 0.123 and parsed("sample")["steps"] == 37
    train_help = next(a for a in cli.build_parser()._actions if a.dest == "command").choices["train"].format_help()
    assert "default: 777" in train_help and "default: 0.123" in train_help


def test_resume_refuses_flags_that_differ_from_the_checkpoint(tmp_path, capsys):
    from ddpm_lib import DiffusionConfig, TrainConfig, Trainer, UNet, UNetConfig
    from ddpm_lib.__main__ import main

    Trainer(UNet(UNetConfig(base_channels=8)), DiffusionConfig(T=100), TrainConfig(steps=0, lr=0.002, seed=3),
            out_dir=tmp_path, device="cpu").save()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(tmp_path), "--resume", "--lr", "0.1", "--seed=3", "--T", "50",
                 "--steps", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert "--lr 0.1 (checkpoint: 0.002)" in err and "--T 50 (checkpoint: 100)" in err
    assert "--seed" not in err  # the same value as the checkpoint's is fine
    assert (tmp_path / "checkpoint.pt").read_bytes() == before  # refused before anything was written


# ---------------------------------------------------------------- nothing lost, nothing silent (issue 16)
# In-process runs (main([...])) wherever a subprocess is not needed: a tiny U-Net, 64 images, 2 steps.
TINY = ["--steps", "2", "--subset", "64", "--batch-size", "16", "--base-channels", "8", "--T", "100",
        "--n-samples", "0", "--device", "cpu"]


@pytest.mark.parametrize("argv,flag", [
    (["train", "--batch-size", "-5"], "--batch-size"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--steps", "0"], "--steps"),
    (["train", "--steps", "-1"], "--steps"),
    (["train", "--minutes", "0"], "--minutes"),
    (["train", "--minutes", "-1"], "--minutes"),
    (["train", "--minutes", "nan"], "--minutes"),
    (["train", "--base-channels", "0"], "--base-channels"),
    (["train", "--base-channels", "12"], "--base-channels"),
    (["train", "--checkpoint-every", "-1"], "--checkpoint-every"),
    (["train", "--n-samples", "-1"], "--n-samples"),
    (["train", "--lr", "inf"], "--lr"),
    (["train", "--T", "0"], "--T"),
    (["train", "--subset", "0"], "--subset"),
    (["train", "--prediction", "score"], "--prediction"),
    (["sample", "--checkpoint", "x", "--n", "0"], "--n"),
    (["sample", "--checkpoint", "x", "--steps", "0"], "--steps"),
    (["sample", "--checkpoint", "x", "--eta", "nan"], "--eta"),
    (["sample", "--checkpoint", "x", "--guidance", "-1"], "--guidance"),
    (["sample", "--checkpoint", "x", "--digit", "12"], "--digit"),
    (["evaluate", "--checkpoint", "x", "--n", "-3"], "--n"),
    (["evaluate", "--checkpoint", "x", "--t-samples", "0"], "--t-samples"),
    (["evaluate", "--checkpoint", "x", "--bpd-images", "-1"], "--bpd-images"),
    (["classifier", "--epochs", "0"], "--epochs"),
    (["classifier", "--reject-share", "nan"], "--reject-share"),
    (["classifier", "--subset", "-2"], "--subset"),
])
def test_every_bad_option_is_refused_at_parse_time_in_one_line(argv, flag, tmp_path, capsys, monkeypatch):
    from ddpm_lib.__main__ import main

    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, 2, main(argv))
    assert f"argument {flag}:" in err and "--help" in err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_a_new_run_never_replaces_an_earlier_one(tmp_path, capsys):
    from ddpm_lib.__main__ import main

    assert main(["train", "--out", str(tmp_path), *TINY]) == 0
    ckpt = tmp_path / "checkpoint.pt"
    before = ckpt.read_bytes()
    capsys.readouterr()
    err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path), *TINY, "--seed", "5"]))
    assert "holds an earlier run (step 2)" in err and "--resume" in err and "--overwrite" in err
    assert ckpt.read_bytes() == before
    assert main(["train", "--out", str(tmp_path), *TINY, "--seed", "5", "--overwrite", "--prediction", "v"]) == 0
    state = read_weights_file(ckpt)
    assert state["train_config"]["seed"] == 5 and state["diffusion_config"]["prediction"] == "v"
    capsys.readouterr()
    err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path), "--resume", "--prediction", "eps"]))
    assert "--prediction eps (checkpoint: v)" in err
    # the precision a run trained in is its own too: saved, and a resume asking for another is refused
    assert main(["train", "--out", str(tmp_path), *TINY, "--overwrite", "--precision", "bf16"]) == 0
    assert read_weights_file(ckpt)["train_config"]["precision"] == "bf16"
    capsys.readouterr()
    err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path), "--resume", "--precision", "fp32"]))
    assert "--precision fp32 (checkpoint: bf16)" in err


def test_one_run_per_folder_a_stale_lock_is_replaced_and_the_lock_goes_on_exit(tmp_path, capsys, monkeypatch):
    import os

    from ddpm_lib.__main__ import main
    from ddpm_lib.checkpoints import LOCK_NAME, OutputLock
    from ddpm_lib.training import Trainer

    with OutputLock(tmp_path):  # a live run (this process) holds the folder
        err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path), *TINY]))
        assert f"another training run (pid {os.getpid()}) is writing to {tmp_path}" in err
    assert not (tmp_path / LOCK_NAME).exists()

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid}\n")  # left by a killed run
    (tmp_path / ".checkpoint.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # a save cut short by SIGKILL
    real_step = Trainer.train_step

    def ctrl_c_at_step_1(self, x0, y=None):
        if self.step == 1:
            raise KeyboardInterrupt
        return real_step(self, x0, y)

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_at_step_1)
    assert main(["train", "--out", str(tmp_path), *TINY]) == 130
    out = capsys.readouterr().out
    assert "removed 1 unfinished file(s) that a killed write left" in out
    assert f"Continue with: python -m ddpm_lib train --out {tmp_path} --resume" in out and "fit()" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no lock, no temporary file
    assert read_weights_file(tmp_path / "checkpoint.pt")["step"] == 1


@pytest.mark.slow
def test_a_second_process_is_refused_and_sigterm_saves_and_releases_the_lock(tmp_path, capsys):
    """A real first process trains; a second run into its folder is refused; SIGTERM makes the
    first save, remove its lock and say how to resume."""
    import signal
    import time

    from ddpm_lib.__main__ import main
    from ddpm_lib.checkpoints import LOCK_NAME

    proc = subprocess.Popen([sys.executable, "-m", "ddpm_lib", "train", "--out", str(tmp_path), *TINY[2:],
                             "--steps", "100000", "--checkpoint-every", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "checkpoint.pt").exists() and proc.poll() is None:
        time.sleep(0.05)
    try:
        err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path), *TINY, "--overwrite"]))
        assert f"another training run (pid {proc.pid})" in err
    finally:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in out and "--resume" in out
    assert not (tmp_path / LOCK_NAME).exists()


def test_resume_keeps_the_runs_data_and_names_what_it_resumes(tmp_path, capsys):
    from ddpm_lib.__main__ import main

    assert main(["train", "--out", str(tmp_path), *TINY, "--model", "cond-unet"]) == 0
    capsys.readouterr()
    # no --model, no --subset: the checkpoint's cond-unet and its 64 images, named as such
    assert main(["train", "--out", str(tmp_path), "--resume", "--steps", "3", "--n-samples", "0"]) == 0
    out = capsys.readouterr().out
    assert "at step 2: cond-unet, T 100" in out and "M-parameter cond-unet on 64 images" in out
    err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path), "--resume", "--steps", "4",
                                           "--subset", "128"]))
    assert "--subset 128 (checkpoint: 64)" in err
    err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path), "--resume", "--steps", "3"]))
    assert "at step 3 already" in err and "--steps" in err  # a used-up budget trains nothing, writes nothing


def test_bad_files_get_one_line_saying_what_they_are(tmp_path, capsys):
    from ddpm_lib import pretrained_path
    from ddpm_lib.__main__ import main

    empty = tmp_path / "empty.pt"
    empty.touch()
    err = one_line_error(capsys, 1, main(["sample", "--checkpoint", str(empty), "--out", str(tmp_path / "s")]))
    assert "is empty (0 bytes)" in err
    err = one_line_error(capsys, 1, main(["sample", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "s")]))
    assert "is a folder, not a file" in err
    shipped = str(pretrained_path("unet_mnist"))
    err = one_line_error(capsys, 1, main(["train", "--out", str(tmp_path / "r"), "--resume", shipped]))
    assert "sampling-only export" in err and "can be sampled" in err and not (tmp_path / "r").exists()

    # evaluate: the warning about a small n comes first, then the empty judge is named
    assert main(["evaluate", "--checkpoint", shipped, "--n", "2", "--classifier", str(empty)]) == 1
    warning, err = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith("warning: MNIST-FID from --n 2 samples is unreliable") and "equal n" in warning
    assert err.startswith("error:") and "is empty (0 bytes), not a classifier file" in err


def test_outputs_are_checked_first_and_never_written_through_a_link(tmp_path, capsys):
    from ddpm_lib import pretrained_path
    from ddpm_lib.__main__ import main

    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    err = one_line_error(capsys, 1, main(["train", "--out", str(blocker / "run"), *TINY]))
    assert "not writable" in err  # before any training
    err = one_line_error(capsys, 1, main(["sample", "--checkpoint", str(pretrained_path("unet_mnist")),
                                           "--out", str(blocker / "s")]))
    assert "not writable" in err

    victim = tmp_path / "precious.pt"
    victim.write_bytes(b"keep me")
    out = tmp_path / "s"
    out.mkdir()
    (out / "samples.pt").symlink_to(victim)
    assert main(["sample", "--checkpoint", str(pretrained_path("unet_mnist")), "--out", str(out), "--n", "1",
                 "--steps", "1", "--device", "cpu", "--overwrite"]) == 0
    assert victim.read_bytes() == b"keep me" and not (out / "samples.pt").is_symlink()
    assert read_weights_file(out / "samples.pt").shape == (1, 1, 28, 28)


def test_a_one_step_diffusion_trains_and_samples(tmp_path, capsys):
    from ddpm_lib.__main__ import main

    argv = ["train", "--out", str(tmp_path), *TINY[:-4], "--T", "1", "--n-samples", "1", "--device", "cpu"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "(dpm++sde-1, trailing steps)" in capsys.readouterr().out and (tmp_path / "samples.png").exists()


def test_export_and_classifier_replace_an_existing_file_only_with_overwrite(tmp_path, capsys, monkeypatch):
    """Issue 16: `export CKPT OUT` wrote over OUT (the shipped weights too) and `classifier` over an
    earlier judge at --out (default runs/classifier/<arch>.pt); both refuse before any work now."""
    from ddpm_lib import load_model, pretrained_path
    from ddpm_lib.__main__ import main

    shipped = pretrained_path("unet_mnist")
    before = shipped.read_bytes()
    err = one_line_error(capsys, 1, main(["export", str(shipped), str(shipped)]))
    assert "is the same file as the checkpoint" in err and shipped.read_bytes() == before
    out = tmp_path / "small.pt"
    out.write_bytes(b"keep me")
    err = one_line_error(capsys, 1, main(["export", str(shipped), str(out), "--note", "x"]))
    assert str(out) in err and out.read_bytes() == b"keep me"
    assert main(["export", str(shipped), str(out), "--overwrite"]) == 0
    assert load_model(out, device="cpu")[1].T == 1000

    monkeypatch.chdir(tmp_path)
    earlier = tmp_path / "runs" / "classifier" / "mlp.pt"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier judge")
    for argv in (["classifier", "--arch", "mlp"], ["classifier", "--out", str(earlier), "--replace-shipped"]):
        err = one_line_error(capsys, 1, main([*argv, "--epochs", "1", "--device", "cpu"]))
        assert f"{earlier if argv[1] == '--out' else 'runs/classifier/mlp.pt'} exists already" in err
        assert "--overwrite" in err and earlier.read_bytes() == b"an earlier judge"


@pytest.mark.parametrize("flags,width", [
    (["--minutes", "20"], UNetConfig.small().base_channels),             # a wall-clock budget: the small preset
    (["--minutes", "20", "--steps", "500"], UNetConfig().base_channels),  # a step budget reproduces as before
    ([], UNetConfig().base_channels),
    (["--minutes", "20", "--base-channels", "32"], 32),                   # a typed width always wins
    (["--minutes", "5", "--model", "cond-unet"], UNetConfig.small().base_channels),
])
def test_a_minute_budget_trains_the_width_measured_best_for_it(flags, width):
    from ddpm_lib import __main__ as cli
    from ddpm_lib.config import unet_for_budget
    args = cli.build_parser().parse_args(["train", *flags])
    model = cli._new_model(args, None)
    assert model.config.base_channels == width
    assert unet_for_budget(20.0, None) == UNetConfig.small() and unet_for_budget(20.0, 100) == UNetConfig()
