"""Ctrl-C (SIGINT) or SIGTERM at any moment of a training run, then a resume, is the same run as
one never interrupted: every tensor of the final checkpoint (model, EMA, optimizer, random-number
states, loss history, step) is bit for bit the uninterrupted run's. The signal stops the loop at the
next step boundary, so the state saved is the state of the last completed step, never a half-done one.

In-process tests send the signal from inside a step (fast); subprocess tests send it from outside
at seeded random moments, to a script using ``Trainer`` and to the command line (slow)."""

import copy
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from ddpm_lib import DiffusionConfig, MLPConfig, TrainConfig, Trainer, UNetConfig, build_model, load_checkpoint

DIFF = DiffusionConfig(T=100)
# a conditional MLP with dropout: each step draws from the trainer's generator (label dropout, t, eps)
# and from torch's global one (dropout), so a state saved mid-step differs from every completed step
MODELS = {
    "mlp": lambda: MLPConfig(hidden=64, num_blocks=2, time_emb_dim=32, dropout=0.1, num_classes=10),
    "unet": lambda: UNetConfig(base_channels=8, channel_mults=(1, 2, 2), num_heads=2, groups=4),
}
NOT_COMPARED = ("elapsed_s", "train_config")  # wall-clock time, and the budget each run was given


def data(n: int = 128) -> TensorDataset:
    """Seeded images in [-1, 1] and digit labels (no MNIST read: the subprocesses start faster)."""
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g))


def make_trainer(kind: str, out_dir=None, steps: int = 10**6, checkpoint_every: int = 5) -> Trainer:
    torch.manual_seed(0)  # the weights, and the global RNG that dropout draws from
    config = TrainConfig(steps=steps, batch_size=16, warmup_steps=3, checkpoint_every=checkpoint_every, seed=3)
    return Trainer(build_model(MODELS[kind]()), DIFF, config, out_dir=out_dir, device="cpu")


def differences(a, b, where="") -> list:
    """Where two checkpoints (or parts of them) differ: tensors bit for bit, other values by ==. At the
    top, the keys of ``b`` (a trainer's state, or a checkpoint) are compared: what a save adds to a
    file on its own (a checksum of the weights) is not a state."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(b) if not where else set(a) | set(b)
        return [d for k in sorted(keys, key=str) if k not in NOT_COMPARED
                for d in (differences(a.get(k), b.get(k), f"{where}/{k}") if k in a and k in b
                          else [f"{where}/{k} missing on one side"])]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [f"{where}: tensors differ"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def reference_states(kind: str, steps) -> dict:
    """The uninterrupted run's state (as a checkpoint holds it) at each of ``steps``."""
    trainer, states = make_trainer(kind), {}
    for step in sorted(set(steps)):
        trainer.config.steps = step
        trainer.fit(data(), progress=False)
        assert trainer.step == step and not trainer.interrupted
        states[step] = copy.deepcopy(trainer.state_dict())
    return states


def resume_to(ckpt: Path, steps: int) -> dict:
    """Resume the run saved in ``ckpt`` in a fresh trainer, train it to ``steps``; its final checkpoint."""
    resumed = Trainer.from_checkpoint(ckpt, device="cpu", steps=steps)
    resumed.fit(data(), progress=False)
    assert resumed.step == steps and not resumed.interrupted
    return load_checkpoint(ckpt)


# ---------------------------------------------------------------- in process: the signal comes mid-step
def _signalling_loss(trainer: Trainer, at_step: int, signals: int):
    """Wrap the trainer's loss: on step ``at_step`` it sends itself SIGINT ``signals`` times half-way
    through the step (after the step's t and eps were drawn, before the weights change)."""
    loss_fn = trainer.loss_fn

    def loss(x0, y, generator):
        value = loss_fn(x0, y, generator)
        if trainer.step == at_step:
            for _ in range(signals):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)  # its handler runs here (two signals sent at once would be merged into one)
        return value
    return loss


@pytest.mark.parametrize("signals,stops_at", [(1, 8), (2, 7)], ids=["ctrl-c-finishes-the-step",
                                                                   "second-ctrl-c-drops-the-step"])
def test_ctrl_c_mid_step_saves_the_last_completed_step(tmp_path, signals, stops_at, capsys):
    """One Ctrl-C during step 7 lets the step finish: the run stops at step 8. A second one aborts the
    step at once: the run stops at step 7, as if step 7 had never begun. Either way the checkpoint is
    the uninterrupted run's state at that step, and resuming it ends exactly like the uninterrupted run."""
    reference = reference_states("mlp", [stops_at, 12])
    trainer = make_trainer("mlp", tmp_path, steps=12)
    trainer.loss_fn = _signalling_loss(trainer, at_step=7, signals=signals)
    before = signal.getsignal(signal.SIGINT)
    trainer.fit(data(), progress=False)
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back
    assert trainer.interrupted and trainer.step == stops_at
    assert f"interrupted at step {stops_at}" in capsys.readouterr().out
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["step"] == stops_at
    assert differences(saved, reference[stops_at]) == []
    assert differences(resume_to(tmp_path / "checkpoint.pt", 12), reference[12]) == []


def test_sigterm_is_a_stop_request_too_and_the_callers_handler_is_restored(tmp_path):
    """With a SIGTERM handler of the caller's own (the command line's), SIGTERM stops fit like Ctrl-C
    (fit returns, interrupted) without calling that handler; the handler is back afterwards."""
    called = []
    previous = signal.signal(signal.SIGTERM, lambda s, f: called.append(s))
    try:
        trainer = make_trainer("mlp", tmp_path, steps=12)
        loss_fn = trainer.loss_fn

        def loss(x0, y, generator):
            if trainer.step == 4:
                os.kill(os.getpid(), signal.SIGTERM)
            return loss_fn(x0, y, generator)
        trainer.loss_fn = loss
        trainer.fit(data(), progress=False)
        assert trainer.interrupted and trainer.step == 5 and called == []
        assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5
        os.kill(os.getpid(), signal.SIGTERM)
        assert called == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert differences(resume_to(tmp_path / "checkpoint.pt", 9), reference_states("mlp", [9])[9]) == []


def test_a_keyboard_interrupt_raised_inside_a_step_saves_the_step_before_it(tmp_path):
    """A KeyboardInterrupt raised by code in the middle of a step (after its random draws) is undone
    back to the start of the step: the checkpoint is the last completed step's, not a mixture."""
    trainer = make_trainer("mlp", tmp_path, steps=12)
    loss_fn = trainer.loss_fn

    def loss(x0, y, generator):
        value = loss_fn(x0, y, generator)
        if trainer.step == 6:
            raise KeyboardInterrupt
        return value
    trainer.loss_fn = loss
    trainer.fit(data(), progress=False)
    assert trainer.interrupted and trainer.step == 6
    assert differences(load_checkpoint(tmp_path / "checkpoint.pt"), reference_states("mlp", [6])[6]) == []


# ---------------------------------------------------------------- subprocesses: a signal from outside
SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_resume_signals import data, make_trainer
trainer = make_trainer(sys.argv[1], sys.argv[2], checkpoint_every=int(sys.argv[3]))
trainer.fit(data(), progress=False)
print("returned", trainer.interrupted, trainer.step, flush=True)
"""


def _interrupt(argv, ckpt: Path, signum: int, delay: float):
    """Start ``argv``, wait for its first checkpoint, then ``delay`` seconds, send ``signum``; returns
    (exit code, stdout, stderr)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.slow
@pytest.mark.parametrize("kind,trials,every,max_delay", [("mlp", 4, 20, 0.8), ("unet", 2, 2, 1.5)])
def test_a_script_stopped_at_random_moments_resumes_bit_for_bit(tmp_path, kind, trials, every, max_delay):
    """SIGINT makes fit return (the script goes on and ends normally); SIGTERM, whose default action
    ends the process, ends it once the checkpoint is saved. Either way the checkpoint holds the last
    completed step, and the resumed run ends bit for bit like the uninterrupted one."""
    rng = random.Random(f"{kind}-signals")
    script = SCRIPT.format(tests=str(Path(__file__).parent))
    runs = []
    for trial in range(trials):
        signum = (signal.SIGINT, signal.SIGTERM)[trial % 2]
        out = tmp_path / f"{kind}{trial}"
        code, stdout, stderr = _interrupt([sys.executable, "-c", script, kind, str(out), str(every)],
                                          out / "checkpoint.pt", signum, rng.uniform(0, max_delay))
        saved = load_checkpoint(out / "checkpoint.pt")
        step = int(saved["step"])
        assert f"interrupted at step {step}; checkpoint saved" in stdout, (stdout, stderr)
        if signum == signal.SIGINT:
            assert code == 0 and f"returned True {step}" in stdout, stderr
        else:
            assert code == -signal.SIGTERM and "returned" not in stdout, (code, stderr)
        runs.append((signum, out, saved, step))
    reference = reference_states(kind, [s for *_, s in runs] + [s + 3 for *_, s in runs])
    for signum, out, saved, step in runs:
        assert differences(saved, reference[step]) == [], (signum, step)
        assert differences(resume_to(out / "checkpoint.pt", step + 3), reference[step + 3]) == [], (signum, step)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_command_line_stopped_mid_run_resumes_bit_for_bit(tmp_path, signum):
    """The audit's reproduction: `train --model mlp`, a signal a random moment after its first
    checkpoint, `--resume` to a few steps further; the final checkpoint is an uninterrupted run's."""
    from ddpm_lib.__main__ import main

    common = ["--model", "mlp", "--subset", "256", "--batch-size", "32", "--n-samples", "0", "--checkpoint-every", "5",
              "--T", "100", "--device", "cpu"]
    out = tmp_path / "stopped"
    code, stdout, stderr = _interrupt([sys.executable, "-m", "ddpm_lib", "train", "--out", str(out), "--steps",
                                       "100000", *common], out / "checkpoint.pt", signum,
                                      random.Random(int(signum)).uniform(0.1, 0.6))
    assert code == 130 and "checkpoint saved" in stdout and "--resume" in stdout, (code, stderr)
    step = int(load_checkpoint(out / "checkpoint.pt")["step"])
    assert main(["train", "--out", str(out), "--resume", "--steps", str(step + 3), *common]) == 0
    assert main(["train", "--out", str(tmp_path / "straight"), "--steps", str(step + 3), *common]) == 0
    assert differences(load_checkpoint(out / "checkpoint.pt"),
                       load_checkpoint(tmp_path / "straight" / "checkpoint.pt")) == []
