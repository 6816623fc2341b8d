"""Training: a tiny real run lowers the loss, checkpoints round-trip and resume bit-exactly on
CPU, a non-finite loss stops cleanly, and failed writes never damage the last checkpoint."""

import pickle
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from ddpm_lib import (EMA, CheckpointError, export_pretrained, DiffusionConfig, NonFiniteLossError, TrainConfig, Trainer, UNet,
                      UNetConfig, load_checkpoint, load_mnist, load_model, save_checkpoint)
from ddpm_lib.data import to_model_range

DIFF = DiffusionConfig(T=200)


@pytest.fixture(scope="module")
def digits():
    return load_mnist(train=False, subset=512, seed=0)


def _trainer(cfg, out_dir=None, **train):
    torch.manual_seed(0)
    return Trainer(UNet(cfg), DIFF, TrainConfig.quick(**train), out_dir=out_dir, device="cpu")


def test_tiny_training_run_lowers_the_loss(tiny_unet_config, digits):
    trainer = _trainer(tiny_unet_config, steps=80, batch_size=32, lr=2e-3)
    history = trainer.fit(digits, progress=False)
    assert len(history) == 80 and trainer.step == 80
    first, last = sum(history[:10]) / 10, sum(history[-10:]) / 10
    assert last < 0.75 * first, (first, last)


def test_ema_is_the_exponential_average():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for step in range(1000, 1003):  # warm-up over: d = 0.9
        ema.update(model, step)
    assert ema.model.weight.item() == pytest.approx(1 - 0.9 ** 3)
    assert not ema.model.weight.requires_grad


def test_checkpoint_round_trip(tiny_unet_config, digits, tmp_path):
    trainer = _trainer(tiny_unet_config, tmp_path, steps=5)
    trainer.fit(digits, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 5 and len(state["history"]) == 5
    assert set(state) >= {"model", "ema", "optimizer", "rng", "model_config", "diffusion_config", "train_config"}
    model, schedule = load_model(tmp_path / "checkpoint.pt", device="cpu")
    assert schedule.T == 200 and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, trainer.ema.model.state_dict()[k])
    raw, _ = load_model(tmp_path / "checkpoint.pt", ema=False, device="cpu")
    assert torch.equal(next(raw.parameters()), next(trainer.model.parameters()))

    # the small sampling-only export: EMA weights in float16, loaded back as float32
    small = export_pretrained(tmp_path / "checkpoint.pt", tmp_path / "small.pt")
    assert small.stat().st_size < 0.4 * (tmp_path / "checkpoint.pt").stat().st_size
    light, _ = load_model(small, device="cpu")
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 190])
    with torch.no_grad():
        assert next(light.parameters()).dtype == torch.float32
        assert torch.allclose(light(x, t), model(x, t), atol=1e-2)


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_unet_config, digits, tmp_path):
    # 512 images / batch 32 = 16 batches per epoch: 24 steps cross an epoch boundary
    straight = _trainer(tiny_unet_config, steps=24)
    straight.fit(digits, progress=False)

    first = _trainer(tiny_unet_config, tmp_path, steps=10)
    first.fit(digits, progress=False)
    resumed = Trainer.from_checkpoint(tmp_path / "checkpoint.pt", device="cpu", steps=24)
    assert resumed.step == 10
    resumed.fit(digits, progress=False)

    assert resumed.history == straight.history
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(resumed.ema.model.parameters(), straight.ema.model.parameters()):
        assert torch.equal(a, b)


def test_keyboard_interrupt_mid_epoch_saves_and_resumes_exactly(tiny_unet_config, digits, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) at step 13, between checkpoints and mid-epoch: fit() saves,
    returns, and a fresh trainer resumed from that file ends exactly like a straight run."""
    straight = _trainer(tiny_unet_config, steps=24)
    straight.fit(digits, progress=False)

    trainer = _trainer(tiny_unet_config, tmp_path, steps=24, checkpoint_every=5)
    real_step = Trainer.train_step

    def interrupted_step(self, x0, y=None):
        if self.step == 13:
            raise KeyboardInterrupt
        return real_step(self, x0, y)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    trainer.fit(digits, progress=False)  # returns instead of raising
    assert trainer.interrupted and trainer.step == 13
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 13  # nothing lost
    monkeypatch.setattr(Trainer, "train_step", real_step)

    resumed = Trainer.from_checkpoint(tmp_path / "checkpoint.pt", device="cpu")
    resumed.fit(digits, progress=False)
    assert resumed.step == 24 and not resumed.interrupted
    assert resumed.history == straight.history
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_unet_config, digits, tmp_path, monkeypatch):
    trainer = _trainer(tiny_unet_config, tmp_path, steps=6, checkpoint_every=3)
    trainer.fit(digits, progress=False)
    good = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.config.steps = 12
    bad = digits.tensors[0].clone()
    bad[:] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):  # bad data is refused before any step
        trainer.fit(TensorDataset(bad, digits.tensors[1]), progress=False)
    import ddpm_lib.training as training  # a loss that blows up mid-run (e.g. too high a lr)

    monkeypatch.setattr(training, "simple_loss", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 6.*last good checkpoint"):
        trainer.fit(digits, progress=False)
    assert trainer.step == 6  # no update from the bad batch
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, good[k])
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 6
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"format": "x", "value": torch.ones(3)}, path)
    before = path.read_bytes()

    def disk_full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left.*previous checkpoint there.*intact"):
        save_checkpoint({"format": "y"}, path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_unwritable_folder_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot write a checkpoint"):
        save_checkpoint({"format": "x"}, blocker / "sub" / "checkpoint.pt")


def test_bad_checkpoint_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable ddpm_lib checkpoint"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match="format tag"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(_Evil.marker),))


def test_malicious_pickle_does_not_run(tmp_path):
    _Evil.marker = str(tmp_path / "pwned")
    evil = tmp_path / "evil.pt"
    torch.save({"format": "ddpm_lib.checkpoint/1", "payload": _Evil()}, evil, pickle_module=pickle)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()


def test_config_mismatch_is_named(tiny_unet_config, digits, tmp_path):
    trainer = _trainer(tiny_unet_config, tmp_path, steps=2)
    trainer.fit(digits, progress=False)
    other = Trainer(UNet(UNetConfig(**{**tiny_unet_config.__dict__, "base_channels": 16})),
                    DiffusionConfig(T=1000, schedule="cosine"), TrainConfig.quick(), device="cpu")
    with pytest.raises(CheckpointError, match=r"diffusion.T: checkpoint 200 vs now 1000.*schedule.*base_channels"):
        other.load_state(tmp_path / "checkpoint.pt")


def test_images_outside_minus_one_one_are_refused(tiny_unet_config):
    trainer = _trainer(tiny_unet_config, steps=1)
    pixels = torch.randint(0, 256, (64, 1, 28, 28)).float()
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        trainer.fit(TensorDataset(pixels, torch.zeros(64, dtype=torch.long)), progress=False)


_PIXELS = torch.randint(0, 256, (64, 1, 28, 28), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("images,match,fixed", [
    (_PIXELS.to(torch.uint8), "torch.uint8 pixels", lambda x: to_model_range(x)),  # trained on all-zero x_t
    (_PIXELS.float(), r"\[0, 255\].*max_value=255", lambda x: to_model_range(x, max_value=255)),
    (_PIXELS.float() / 255, r"no value below 0, like images in \[0, 1\]", lambda x: to_model_range(x)),
], ids=["uint8", "0..255-floats", "0..1-floats"])
def test_images_not_in_model_space_are_refused_naming_the_fix(tiny_unet_config, images, match, fixed):
    """Issue 16: Trainer.fit refuses (once, at its start) images that are not floats in [-1, 1], naming
    ddpm_lib.data.to_model_range; the call it names makes them trainable."""
    labels = torch.zeros(64, dtype=torch.long)
    trainer = _trainer(tiny_unet_config, steps=1, batch_size=16)
    with pytest.raises(ValueError, match=match) as refused:
        trainer.fit(TensorDataset(images, labels), progress=False)
    assert "ddpm_lib.data.to_model_range" in str(refused.value) and trainer.step == 0
    assert len(trainer.fit(TensorDataset(fixed(images), labels), progress=False)) == 1


def test_trained_and_loaded_models_remember_their_diffusion(tiny_unet_config, tmp_path):
    """What the samplers check a schedule against (test_samplers): set by Trainer (model and EMA) and
    load_model, a plain attribute; a trainer with its own loss function cannot know it and sets nothing."""
    diffusion = DiffusionConfig(T=20, schedule="cosine", prediction="v")
    trainer = Trainer(UNet(tiny_unet_config), diffusion, TrainConfig.quick(steps=0), out_dir=tmp_path, device="cpu")
    assert trainer.model.diffusion_config == diffusion == trainer.ema.model.diffusion_config
    assert "diffusion_config" not in trainer.model.state_dict()
    model, _ = load_model(trainer.save(), device="cpu")
    assert model.diffusion_config == diffusion
    custom = torch.nn.Linear(2, 2)
    Trainer(custom, diffusion, TrainConfig.quick(), loss_fn=lambda x0, y, g: x0.mean(), device="cpu")
    assert not hasattr(custom, "diffusion_config")


def test_learning_rate_warms_up_linearly_then_stays():
    from ddpm_lib import learning_rate

    cfg = TrainConfig(lr=1e-3, warmup_steps=200)
    assert learning_rate(0, cfg) == pytest.approx(1e-3 / 200)
    assert learning_rate(99, cfg) == pytest.approx(0.5e-3)
    assert learning_rate(199, cfg) == learning_rate(5000, cfg) == pytest.approx(1e-3)
    assert learning_rate(0, TrainConfig(lr=2e-3, warmup_steps=0)) == pytest.approx(2e-3)


def test_batch_order_is_a_seeded_permutation_per_epoch_and_resumes_at_any_step():
    from itertools import islice

    from ddpm_lib import batch_order

    n, bs = 100, 32  # 3 batches per epoch, 4 images dropped
    first = list(islice(batch_order(n, bs, seed=1), 7))
    epoch0 = torch.cat(first[:3])
    assert len(epoch0.unique()) == 96 and all(len(b) == bs for b in first)  # no repeats within an epoch
    assert not torch.equal(first[0], first[3])  # a new permutation each epoch
    resumed = list(islice(batch_order(n, bs, seed=1, start_step=4), 3))
    assert all(torch.equal(a, b) for a, b in zip(first[4:], resumed))
    assert not torch.equal(first[0], next(batch_order(n, bs, seed=2)))
    with pytest.raises(ValueError, match="larger than the data set"):
        next(batch_order(10, 32, seed=0))


def test_the_loop_trains_any_model_through_its_loss_function_and_touches_no_global_state(digits):
    """minGPT-style: the trainer knows the loss only as a function (the benchmark trains other
    libraries' networks this way). The constructor leaves torch's global RNG alone."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 784))

    def loss_fn(x0, y, generator):  # denoise at one fixed noise level
        noise = torch.randn(x0.shape, generator=generator)
        return torch.nn.functional.mse_loss(model(x0 + 0.5 * noise).view_as(x0), x0)

    state = torch.get_rng_state()
    trainer = Trainer(model, train_config=TrainConfig.quick(steps=40, lr=1e-2, batch_size=64), loss_fn=loss_fn,
                      device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    history = trainer.fit(digits, progress=False)
    assert len(history) == 40 and sum(history[-5:]) < 0.5 * sum(history[:5])
    assert not hasattr(model, "num_timesteps")  # the schedule, not the model, holds T


# ---------------------------------------------------------------- nothing lost, nothing silent (issue 16)
def test_a_second_ctrl_c_during_a_save_is_held_back_until_the_file_is_complete(tiny_unet_config, digits, tmp_path,
                                                                                monkeypatch):
    import os
    import signal

    real_save = torch.save

    def save_pressing_ctrl_c(obj, f, *a, **k):  # Ctrl-C arrives in the middle of the write
        f.write(b"the first bytes")
        os.kill(os.getpid(), signal.SIGINT)
        f.seek(0)
        real_save(obj, f, *a, **k)

    real_step = Trainer.train_step

    def ctrl_c_at_step_3(self, x0, y=None):
        if self.step == 3:
            raise KeyboardInterrupt
        return real_step(self, x0, y)

    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        monkeypatch.setattr(torch, "save", save_pressing_ctrl_c)
        with pytest.raises(KeyboardInterrupt):  # delivered once the save is done
            save_checkpoint({"format": "x", "value": torch.arange(3)}, tmp_path / "a.pt")
        assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["value"], torch.arange(3))

        trainer = _trainer(tiny_unet_config, tmp_path, steps=6)  # the first Ctrl-C at step 3, the second in its save
        monkeypatch.setattr(Trainer, "train_step", ctrl_c_at_step_3)
        try:
            trainer.fit(digits, progress=False)
        except KeyboardInterrupt:
            pytest.fail("the second Ctrl-C escaped from fit() and the save was lost")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, handler)
    assert trainer.interrupted and load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "checkpoint.pt"]  # no temporary file


def test_a_full_disk_is_named_and_the_previous_checkpoint_kept(tmp_path, monkeypatch):
    import shutil

    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"format": "x", "value": torch.ones(3)}, path)
    before = path.read_bytes()

    def torch_writer_fails(obj, f, *a, **k):  # what torch says when its writer hits a full disk
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    monkeypatch.setattr(torch, "save", torch_writer_fails)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(CheckpointError, match=r"^disk full while writing .*checkpoint.pt.*previous checkpoint.*intact") as err:
        save_checkpoint({"format": "y"}, path)
    assert "enforce fail" not in str(err.value)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 0, 10**12))
    with pytest.raises(CheckpointError, match=r"^writing checkpoint .* failed \(\[enforce fail.*intact"):
        save_checkpoint({"format": "y"}, path)  # plenty of space: some other failure, said as it is


def test_train_config_refuses_bad_values_in_one_line():
    for bad in (dict(batch_size=0), dict(batch_size=-5), dict(steps=-1), dict(max_minutes=float("nan")),
                dict(lr=0.0), dict(checkpoint_every=-1), dict(ema_decay=1.5), dict(subset=0)):
        with pytest.raises(ValueError, match=f"TrainConfig: {next(iter(bad))} must be"):
            TrainConfig(**bad)
    assert TrainConfig(steps=0, max_minutes=0).steps == 0  # nothing to train is allowed in the library


def test_bad_files_are_named_for_what_they_are(tiny_unet_config, tmp_path):
    from ddpm_lib import pretrained_path

    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match=r"empty.pt is empty \(0 bytes\)"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        load_checkpoint(tmp_path)

    trainer = _trainer(tiny_unet_config, tmp_path, steps=0)
    trainer.save()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    state["diffusion_config"]["sharpness"] = 3  # written by some other version
    save_checkpoint(state, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match=r"diffusion_config settings this ddpm_lib does not know \(sharpness\)"):
        load_model(tmp_path / "newer.pt", device="cpu")

    export = pretrained_path("unet_mnist")  # float16 EMA weights, no optimizer: sample it, do not resume it
    with pytest.raises(CheckpointError, match="sampling-only export.*can be sampled.*not resumed"):
        Trainer.from_checkpoint(export, out_dir=tmp_path / "r", device="cpu")


def test_a_refused_pickle_says_it_holds_code_and_never_suggests_running_it(tmp_path):
    _Evil.marker = str(tmp_path / "pwned")
    evil = tmp_path / "evil.pt"
    torch.save({"format": "ddpm_lib.checkpoint/1", "payload": _Evil()}, evil, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="holds pickled Python code .* refused without running it") as err:
        load_checkpoint(evil)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "pwned").exists()


def test_a_run_is_resumed_only_with_its_own_data(tiny_unet_config, digits, tmp_path):
    trainer = _trainer(tiny_unet_config, tmp_path, steps=2, subset=len(digits))
    trainer.fit(digits, progress=False)
    resumed = Trainer.from_checkpoint(tmp_path / "checkpoint.pt", device="cpu", steps=4)
    assert resumed.config.subset == len(digits)
    fewer = TensorDataset(*(t[:256] for t in digits.tensors))
    with pytest.raises(ValueError, match=f"trains on {len(digits)} images .* was given 256"):
        resumed.fit(fewer, progress=False)


def test_cosine_learning_rate_decays_to_zero_over_the_budget():
    from ddpm_lib import learning_rate
    cfg = TrainConfig(steps=1200, warmup_steps=200, lr=1e-3, lr_schedule="cosine")
    assert learning_rate(0, cfg) == pytest.approx(1e-3 / 200)  # the same warm-up
    assert learning_rate(200, cfg) == pytest.approx(1e-3)
    assert learning_rate(700, cfg) == pytest.approx(0.5e-3)  # half-way through the decay
    assert learning_rate(1200, cfg) == pytest.approx(0.0, abs=1e-12)
    rates = [learning_rate(s, cfg) for s in range(200, 1201)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    by_time = TrainConfig(steps=None, max_minutes=10, warmup_steps=0, lr=1e-3, lr_schedule="cosine")
    assert learning_rate(50, by_time, progress=0.5) == pytest.approx(0.5e-3)
    assert learning_rate(50, by_time, progress=1.0) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")


@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_weighting_counts_the_same_x0_error_for_every_prediction_type(gamma):
    """Min-SNR-gamma (Hang et al. 2023): whatever the network predicts, the weighted loss is
    min(SNR, gamma) * ||x0 - x0_hat||^2 for the same underlying prediction."""
    from ddpm_lib import DiffusionConfig, make_schedule, predict_v, predict_x0_from_eps, q_sample, simple_loss
    torch.manual_seed(0)
    x0, noise = torch.rand(6, 1, 28, 28) * 2 - 1, torch.randn(6, 1, 28, 28)
    t = torch.tensor([0, 3, 50, 300, 700, 999])
    eps_hat = noise + 0.3 * torch.randn_like(noise)  # one imperfect prediction, seen three ways
    base = make_schedule(DiffusionConfig())
    xt = q_sample(base, x0, t, noise)
    x0_hat = predict_x0_from_eps(base, xt, t, eps_hat)
    outputs = {"eps": eps_hat, "x0": x0_hat, "v": predict_v(base, x0_hat, t, eps_hat)}
    want = base.snr(t).clamp(max=gamma) * (x0 - x0_hat).pow(2).flatten(1).mean(1)
    for pred, out in outputs.items():
        schedule = make_schedule(DiffusionConfig(prediction=pred))
        got = simple_loss(lambda x, tt: out, schedule, x0, t=t, noise=noise, reduction="none",
                          min_snr_gamma=gamma)
        torch.testing.assert_close(got, want, rtol=2e-3, atol=1e-6, msg=pred)
    unweighted = simple_loss(lambda x, tt: eps_hat, base, x0, t=t, noise=noise, reduction="none")
    torch.testing.assert_close(unweighted, (eps_hat - noise).pow(2).flatten(1).mean(1))


def test_checkpoints_from_before_the_recipe_options_resume_unweighted_and_constant(tmp_path):
    from ddpm_lib.checkpoints import config_from_state
    state = {"train_config": {"steps": 10, "lr": 1e-3}}  # written before lr_schedule / min_snr_gamma existed
    cfg = config_from_state(state, "train_config")
    assert cfg.min_snr_gamma is None and cfg.lr_schedule == "constant" and cfg.precision == "fp32"
    assert TrainConfig().min_snr_gamma == 5.0 and TrainConfig().precision == "auto"  # new runs get the measured defaults


def test_precision_chooses_bfloat16_autocast_only_where_asked(tiny_unet_config, digits):
    """"bf16" runs the forward pass in bfloat16 (the network's output is bfloat16 inside the step)
    while the weights, the EMA and the loss stay float32; "fp32" never autocasts; "auto" does only
    for a wall-clock budget on a CPU with native bfloat16 kernels, so a step budget stays float32
    (the same model on every machine)."""
    from ddpm_lib.training import cpu_has_bf16, uses_bf16
    cpu = torch.device("cpu")
    timed, stepped = dict(steps=None, max_minutes=20), dict(steps=1000)
    assert not uses_bf16(TrainConfig(precision="fp32", **timed), cpu)
    assert uses_bf16(TrainConfig(precision="bf16", **stepped), cpu)
    assert uses_bf16(TrainConfig(precision="auto", **timed), cpu) == cpu_has_bf16()
    assert not uses_bf16(TrainConfig(precision="auto", **stepped), cpu)
    assert not uses_bf16(TrainConfig(precision="auto", steps=1000, max_minutes=20), cpu)  # steps bound it too
    for device in ("cuda", "mps"):
        assert not uses_bf16(TrainConfig(precision="auto", **timed), torch.device(device))
    with pytest.raises(ValueError, match="TrainConfig: precision must be one of"):
        TrainConfig(precision="half")
    seen = {}
    for precision in ("fp32", "bf16"):
        trainer = _trainer(tiny_unet_config, steps=40, batch_size=32, lr=2e-3, precision=precision)
        hook = trainer.model.register_forward_hook(lambda m, i, out, p=precision: seen.setdefault(p, out.dtype) and None)
        history = trainer.fit(digits, progress=False)
        hook.remove()
        assert all(p.dtype == torch.float32 for p in [*trainer.model.parameters(), *trainer.ema.model.parameters()])
        assert all(torch.isfinite(torch.tensor(history))) and sum(history[-10:]) < 0.8 * sum(history[:10]), precision
    assert seen == {"fp32": torch.float32, "bf16": torch.bfloat16}


def test_a_bf16_run_resumes_exactly_and_keeps_its_precision(tiny_unet_config, digits, tmp_path):
    straight = _trainer(tiny_unet_config, steps=14, precision="bf16")
    straight.fit(digits, progress=False)
    first = _trainer(tiny_unet_config, tmp_path, steps=6, precision="bf16")
    first.fit(digits, progress=False)
    resumed = Trainer.from_checkpoint(tmp_path / "checkpoint.pt", device="cpu", steps=14)
    assert resumed.config.precision == "bf16"
    resumed.fit(digits, progress=False)
    assert resumed.history == straight.history
