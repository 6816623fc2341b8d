"""The command line trains, writes checkpoints and a PNG of samples, samples again from the
checkpoint, and reports errors in one line with a non-zero exit."""

import subprocess
import sys

import torch


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ddpm_lib", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


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
    x = torch.load(tmp_path / "s" / "samples.pt", weights_only=True)
    assert x.shape == (3, 1, 28, 28) and torch.isfinite(x).all()

    r = run("sample", "--checkpoint", str(out / "checkpoint.pt"), "--steps", "101", "--n", "1")
    assert r.returncode == 1 and "exceeds the model's T=100" in r.stderr and "Traceback" not in r.stderr


def test_errors_are_one_line_without_traceback(tmp_path):
    r = run("sample", "--checkpoint", str(tmp_path / "missing.pt"))
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error:") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
