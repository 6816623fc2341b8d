"""Training: a tiny real run lowers the loss, resumes bit-exactly on CPU (also after Ctrl-C), a
non-finite loss stops cleanly. The checkpoint files themselves are tested in test_checkpoints.py."""

import pytest
import torch
from torch.utils.data import TensorDataset

from ddpm_lib import (EMA, DiffusionConfig, NonFiniteLossError, TrainConfig, Trainer, UNet, UNetConfig, load_checkpoint,
                      load_mnist, load_model)
from ddpm_lib.data import to_model_range
from helpers import DIFF, tiny_trainer


@pytest.fixture(scope="module")
def digits():
    return load_mnist(train=False, subset=512, seed=0)


@pytest.mark.slow
def test_tiny_training_run_lowers_the_loss(tiny_unet_config, digits):
    trainer = tiny_trainer(tiny_unet_config, steps=80, batch_size=32, lr=2e-3)
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


@pytest.mark.slow
def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_unet_config, digits, tmp_path):
    # 512 images / batch 32 = 16 batches per epoch: 24 steps cross an epoch boundary
    straight = tiny_trainer(tiny_unet_config, steps=24)
    straight.fit(digits, progress=False)

    first = tiny_trainer(tiny_unet_config, tmp_path, steps=10)
    first.fit(digits, progress=False)
    resumed = Trainer.from_checkpoint(tmp_path / "checkpoint.pt", device="cpu", steps=24)
    assert resumed.step == 10
    resumed.fit(digits, progress=False)

    assert resumed.history == straight.history
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(resumed.ema.model.parameters(), straight.ema.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_keyboard_interrupt_mid_epoch_saves_and_resumes_exactly(tiny_unet_config, digits, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) at step 13, between checkpoints and mid-epoch: fit() saves,
    returns, and a fresh trainer resumed from that file ends exactly like a straight run."""
    straight = tiny_trainer(tiny_unet_config, steps=24)
    straight.fit(digits, progress=False)

    trainer = tiny_trainer(tiny_unet_config, tmp_path, steps=24, checkpoint_every=5)
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
    trainer = tiny_trainer(tiny_unet_config, tmp_path, steps=6, checkpoint_every=3)
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


def test_images_outside_minus_one_one_are_refused(tiny_unet_config):
    trainer = tiny_trainer(tiny_unet_config, steps=1)
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
    trainer = tiny_trainer(tiny_unet_config, steps=1, batch_size=16)
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
def test_train_config_refuses_bad_values_in_one_line():
    for bad in (dict(batch_size=0), dict(batch_size=-5), dict(steps=-1), dict(max_minutes=float("nan")),
                dict(lr=0.0), dict(checkpoint_every=-1), dict(ema_decay=1.5), dict(subset=0)):
        with pytest.raises(ValueError, match=f"TrainConfig: {next(iter(bad))} must be"):
            TrainConfig(**bad)
    assert TrainConfig(steps=0, max_minutes=0).steps == 0  # nothing to train is allowed in the library


def test_a_run_is_resumed_only_with_its_own_data(tiny_unet_config, digits, tmp_path):
    trainer = tiny_trainer(tiny_unet_config, tmp_path, steps=2, subset=len(digits))
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


@pytest.mark.slow
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
        trainer = tiny_trainer(tiny_unet_config, steps=40, batch_size=32, lr=2e-3, precision=precision)
        hook = trainer.model.register_forward_hook(lambda m, i, out, p=precision: seen.setdefault(p, out.dtype) and None)
        history = trainer.fit(digits, progress=False)
        hook.remove()
        assert all(p.dtype == torch.float32 for p in [*trainer.model.parameters(), *trainer.ema.model.parameters()])
        assert all(torch.isfinite(torch.tensor(history))) and sum(history[-10:]) < 0.8 * sum(history[:10]), precision
    assert seen == {"fp32": torch.float32, "bf16": torch.bfloat16}


def test_a_bf16_run_resumes_exactly_and_keeps_its_precision(tiny_unet_config, digits, tmp_path):
    straight = tiny_trainer(tiny_unet_config, steps=14, precision="bf16")
    straight.fit(digits, progress=False)
    first = tiny_trainer(tiny_unet_config, tmp_path, steps=6, precision="bf16")
    first.fit(digits, progress=False)
    resumed = Trainer.from_checkpoint(tmp_path / "checkpoint.pt", device="cpu", steps=14)
    assert resumed.config.precision == "bf16"
    resumed.fit(digits, progress=False)
    assert resumed.history == straight.history


# ---------------------------------------------------------------- audit: precision, integer settings, labels
def test_auto_precision_is_decided_at_the_first_fit_and_kept_by_a_resume(tmp_path, monkeypatch, digits):
    """A "--precision auto" run on a minute budget trains in bf16 where the CPU has native bfloat16;
    resumed with a step budget (which alone would give fp32) it stays in bf16, and a step-budget run
    resumed on minutes alone stays in fp32. The config keeps "auto" (the command line compares it)."""
    import ddpm_lib.training as training
    from ddpm_lib import MLPNoisePredictor, MLPConfig
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: True)

    def dtypes(trainer):
        seen = set()
        trainer.model.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
        trainer.fit(digits, progress=False)
        return seen

    for first, precision in ((dict(steps=None, max_minutes=0.001), "bf16"), (dict(steps=2), "fp32")):
        out, dtype = tmp_path / precision, {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]
        torch.manual_seed(0)
        trainer = Trainer(MLPNoisePredictor(MLPConfig(hidden=64, num_blocks=1)), DIFF,
                          TrainConfig(precision="auto", batch_size=32, checkpoint_every=0, **first), out_dir=out,
                          device="cpu")
        assert dtypes(trainer) == {dtype}
        state = load_checkpoint(out / "checkpoint.pt")
        assert state["precision_used"] == precision and state["train_config"]["precision"] == "auto"
        step, minutes = trainer.step, trainer.elapsed_s / 60 + 0.003
        # the budget of the resume: steps (with time left), or minutes alone, which would choose the other precision
        then = dict(steps=step + 2, max_minutes=minutes) if precision == "bf16" else dict(steps=None, max_minutes=minutes)
        resumed = Trainer.from_checkpoint(out / "checkpoint.pt", device="cpu", **then)
        assert resumed.precision_used == precision
        assert dtypes(resumed) == {dtype}, precision
        assert resumed.step > step and load_checkpoint(out / "checkpoint.pt")["precision_used"] == precision


@pytest.mark.parametrize("cls,field,value,error", [
    (TrainConfig, "steps", 2.5, ValueError), (TrainConfig, "batch_size", True, TypeError),
    (TrainConfig, "warmup_steps", float("nan"), ValueError), (TrainConfig, "checkpoint_every", "5", TypeError),
    (TrainConfig, "seed", 1.5, ValueError), (TrainConfig, "subset", False, TypeError),
    (DiffusionConfig, "T", 99.5, ValueError), ("UNetConfig", "base_channels", True, TypeError),
    ("UNetConfig", "channel_mults", (1, 2.5), ValueError), ("UNetConfig", "num_classes", 10.5, ValueError),
    ("MLPConfig", "hidden", 64.5, ValueError), ("MLPConfig", "num_blocks", True, TypeError),
])
def test_integer_settings_refuse_bools_and_fractions_in_one_line(cls, field, value, error):
    import ddpm_lib
    from ddpm_lib.errors import DDPMError
    cls = getattr(ddpm_lib, cls) if isinstance(cls, str) else cls
    with pytest.raises(error) as refused:
        cls(**{field: value})
    message = str(refused.value)
    assert isinstance(refused.value, DDPMError) and len(message.splitlines()) == 1
    shown = value[-1] if isinstance(value, tuple) else value  # a tuple's bad item is named
    assert message.startswith(f"{cls.__name__}: {field}") and repr(shown) in message


def test_integer_settings_take_whole_numbers_of_any_kind_as_ints():
    import numpy as np
    config = TrainConfig(steps=1e4, batch_size=np.int64(64), subset=None)
    assert config.steps == 10_000 and type(config.steps) is int and type(config.batch_size) is int
    assert TrainConfig(steps=None, max_minutes=1).steps is None


@pytest.mark.parametrize("labels,match", [
    (torch.full((64,), 11), r"0\.\.9 .*got 11 "),
    (torch.full((64,), -3), r"0\.\.9 .*got -3 "),
    (torch.full((64,), 10), r"0\.\.9 .*got 10 "),  # 10 is the null label: dropout's, not a digit
    (torch.zeros(64), r"integer class indices 0\.\.9.*float32"),
], ids=["11", "-3", "null-label", "floats"])
def test_labels_a_conditional_model_cannot_take_are_refused_at_the_start(tiny_unet_config, labels, match):
    from ddpm_lib.errors import DDPMError
    torch.manual_seed(0)
    cond = UNet(UNetConfig(**{**tiny_unet_config.__dict__, "num_classes": 10}))
    trainer = Trainer(cond, DIFF, TrainConfig.quick(steps=1, batch_size=16), device="cpu")
    labels = labels.clone()
    labels[:5] = torch.arange(5)  # some good labels too: the bad one is named
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    generator = trainer.generator.get_state()
    with pytest.raises(ValueError, match=match) as refused:
        trainer.fit(TensorDataset(images, labels), progress=False)
    assert isinstance(refused.value, DDPMError) and len(str(refused.value).splitlines()) == 1
    assert trainer.step == 0 and torch.equal(trainer.generator.get_state(), generator)  # refused before any step
    assert len(trainer.fit(TensorDataset(images, labels.long() % 10), progress=False)) == 1


def test_seed_beyond_the_derived_seeds_range_is_refused():
    """The batch order seeds torch with seed * 100_003 + epoch: a seed above MAX_SEED would overflow it
    mid-run; it is refused when the config is built, naming the range."""
    from ddpm_lib.config import MAX_SEED
    with pytest.raises(ValueError, match=rf"seed must be an integer 0\.\.{MAX_SEED}"):
        TrainConfig(seed=MAX_SEED + 1)
    with pytest.raises(ValueError, match="seed"):
        TrainConfig(seed=-1)
    assert TrainConfig(seed=MAX_SEED).seed == MAX_SEED


def test_the_trainer_draws_t_as_its_config_says(linear_schedule):
    """TrainConfig.t_distribution reaches the trainer's loss: "laplace" is L_simple at the t of
    sample_timesteps_laplace, drawn from the trainer's generator before the noise, like uniform t."""
    from ddpm_lib.diffusion import sample_timesteps_laplace, simple_loss
    from ddpm_lib.training import simple_loss_fn

    class Half(torch.nn.Module):  # eps_theta(x_t, t) = x_t / 2, with one weight for the optimizer
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, t):
            return 0.5 * x

    model = Half()
    x0 = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    losses = {}
    for name in ("uniform", "laplace"):
        trainer = Trainer(model, DiffusionConfig(), TrainConfig(t_distribution=name), device="cpu")
        got = trainer.loss_fn(x0, None, torch.Generator().manual_seed(7))
        g = torch.Generator().manual_seed(7)
        t = (sample_timesteps_laplace(linear_schedule, 64, g) if name == "laplace"
             else torch.randint(0, linear_schedule.T, (64,), generator=g))
        expected = simple_loss(model, linear_schedule, x0, t=t, noise=torch.randn(x0.shape, generator=g),
                               min_snr_gamma=TrainConfig().min_snr_gamma)
        assert got.item() == pytest.approx(expected.item(), rel=1e-6), name
        assert trainer.state_dict()["train_config"]["t_distribution"] == name
        losses[name] = got.item()
    assert losses["uniform"] != losses["laplace"]
    with pytest.raises(ValueError, match="t_distribution"):
        simple_loss_fn(model, linear_schedule, None, "lognormal")
    with pytest.raises(ValueError, match="t_distribution"):
        TrainConfig(t_distribution="lognormal")
