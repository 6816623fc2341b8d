"""Samplers: one step equals diffusers' schedulers given the same inputs and noise, whole
trajectories match, full loops reproduce golden values, DDIM's step spacing is right, seeds
reproduce, and bad requests fail clearly. Only the parity tests need diffusers."""

import pytest
import torch

from helpers import DummyEps, assert_close, float64

from ddpm_lib import (ddim_sample, ddim_step, ddim_timesteps, ddpm_sample, ddpm_step, make_schedule,
                      predict_x0_from_eps)



@pytest.fixture(scope="module")
def diffusers():
    """The reference implementation; without it only the parity tests are skipped."""
    return pytest.importorskip("diffusers")


def _inputs(seed, shape=(4, 1, 28, 28)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("variance,their_variance", [("beta_tilde", "fixed_small"), ("beta", "fixed_large")])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("t", [999, 500, 37, 1, 0])
def test_ddpm_step_equals_diffusers(diffusers, schedule, variance, their_variance, clip, t):
    s = make_schedule(schedule=schedule)
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, variance_type=their_variance, clip_sample=clip,
                                  beta_schedule="linear" if schedule == "linear" else "squaredcos_cap_v2")
    xt, eps, _ = _inputs(t)
    xt = xt * 2  # exercise the clipping of x0
    g = torch.Generator().manual_seed(7)
    theirs = float64(ref).step(eps.double(), t, xt.double(), generator=g).prev_sample
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).float()
    ours = ddpm_step(s, eps, xt, t, noise=noise, variance=variance, clip_x0=clip)
    assert_close(ours, theirs)


def test_ddpm_step_adds_no_noise_at_the_last_step(linear_schedule):
    xt, eps, noise = _inputs(0)
    a = ddpm_step(linear_schedule, eps, xt, 0, noise=noise, clip_x0=False)
    b = ddpm_step(linear_schedule, eps, xt, 0, noise=100 * noise, clip_x0=False)
    assert torch.equal(a, b)
    # at t = 0 the mean is exactly the x0 prediction (alpha_bar_{-1} = 1)
    x0 = predict_x0_from_eps(linear_schedule, xt, 0, eps)
    assert torch.allclose(a, x0, atol=1e-5)


def test_ddpm_sampler_trajectory_equals_diffusers_loop(diffusers, linear_schedule):
    """The whole Algorithm 2 loop with the same generator draws the same images."""
    model = DummyEps()
    T = 1000
    ref = diffusers.DDPMScheduler(num_train_timesteps=T, clip_sample=True)
    g = torch.Generator().manual_seed(11)
    x = torch.randn((3, 1, 28, 28), generator=g)
    with torch.no_grad():
        for t in range(T - 1, -1, -1):
            x = ref.step(model(x, torch.full((3,), t)), t, x, generator=g).prev_sample
    ours = ddpm_sample(model, linear_schedule, 3, seed=11, progress=False)
    assert_close(ours, x, 1e-4)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("t,t_prev", [(980, 960), (500, 480), (20, 0), (10, -10)])
def test_ddim_step_equals_diffusers(diffusers, eta, clip, t, t_prev):
    s = make_schedule()
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, clip_sample=clip)
    ref.set_timesteps(1000 // (t - t_prev))  # diffusers steps back by T // num_inference_steps
    xt, eps, noise = _inputs(t)
    xt = xt * 2
    theirs = float64(ref).step(eps.double(), t, xt.double(), eta=eta, use_clipped_model_output=True,
                               variance_noise=noise.double()).prev_sample
    ours = ddim_step(s, eps, xt, t, max(t_prev, -1), eta=eta, noise=noise, clip_x0=clip)
    assert_close(ours, theirs)


def test_ddim_sampler_equals_diffusers_loop(diffusers, linear_schedule):
    model = DummyEps()
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, clip_sample=True)
    ref.set_timesteps(50)
    g = torch.Generator().manual_seed(5)
    x = torch.randn((3, 1, 28, 28), generator=g)
    with torch.no_grad():
        for t in ref.timesteps.tolist():
            x = ref.step(model(x, torch.full((3,), t)), t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    ours = ddim_sample(model, linear_schedule, 3, timesteps=ref.timesteps.tolist(), seed=5, progress=False)
    assert_close(ours, x, 1e-4)


# sum and sum of |x| of the images, recorded from the sampler loops as first written (before they
# shared one loop); the dummy model is elementwise, so no BLAS or thread count changes them
GOLDEN = {"ddpm": (-2.631161653465824, 1467.8801929247275),
          "ddim50": (16.73874291498214, None),
          "ddim20_eta1": (-49.48492861480918, 1502.3349654305493)}


def test_full_sampling_loops_reproduce_golden_values(linear_schedule):
    """Whole loops pinned without diffusers (as diffusers' own scheduler tests pin a result sum):
    any change in step order, noise draws or coefficients moves these numbers."""
    model = DummyEps()
    runs = {"ddpm": ddpm_sample(model, linear_schedule, 3, seed=11, progress=False),
            "ddim50": ddim_sample(model, linear_schedule, 3, steps=50, seed=5, progress=False),
            "ddim20_eta1": ddim_sample(model, linear_schedule, 3, steps=20, eta=1.0, seed=5, progress=False)}
    for name, x in runs.items():
        total, absolute = GOLDEN[name]
        assert x.double().sum().item() == pytest.approx(total, rel=1e-5, abs=1e-4), name
        if absolute is not None:
            assert x.double().abs().sum().item() == pytest.approx(absolute, rel=1e-6), name


@pytest.mark.parametrize("T,k", [(1000, 1), (1000, 2), (1000, 10), (1000, 50), (1000, 333), (1000, 999),
                                 (1000, 1000), (7, 3), (100, 99)])
def test_ddim_timesteps_cover_T_minus_1_to_0_without_duplicates(T, k):
    ts = ddim_timesteps(T, k)
    assert len(ts) == k == len(set(ts))
    assert ts[0] == T - 1 and (k == 1 or ts[-1] == 0)
    assert all(a > b for a, b in zip(ts, ts[1:]))
    gaps = [a - b for a, b in zip(ts, ts[1:])]
    assert not gaps or max(gaps) - min(gaps) <= 1  # evenly spread


def test_ddim_with_eta_1_and_all_steps_is_ddpm_with_beta_tilde(linear_schedule):
    """Song et al. Eq. 16: eta = 1 makes sigma_t^2 = beta_tilde_t, i.e. the DDPM step."""
    for t in (999, 400, 3, 1):
        xt, eps, noise = _inputs(t)
        a = ddim_step(linear_schedule, eps, xt, t, t - 1, eta=1.0, noise=noise, clip_x0=False)
        b = ddpm_step(linear_schedule, eps, xt, t, noise=noise, variance="beta_tilde", clip_x0=False)
        assert torch.allclose(a, b, atol=1e-5)


def test_samplers_are_reproducible_and_leave_the_model_as_it_was(linear_schedule):
    model = DummyEps().train()
    a = ddim_sample(model, linear_schedule, 2, steps=10, seed=3, progress=False)
    b = ddim_sample(model, linear_schedule, 2, steps=10, seed=3, progress=False)
    c = ddim_sample(model, linear_schedule, 2, steps=10, seed=4, progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert model.training
    small = make_schedule(T=50)
    d = ddpm_sample(model, small, 2, seed=3, progress=False)
    e = ddpm_sample(model, small, 2, generator=torch.Generator().manual_seed(3), progress=False)
    assert torch.equal(d, e) and d.shape == (2, 1, 28, 28) and not d.requires_grad


def test_trajectory_records_chosen_steps():
    model, s = DummyEps(), make_schedule(T=50)
    result = ddpm_sample(model, s, 2, seed=0, trajectory_at=[49, 25, 0], progress=False)
    x, traj = result  # a SampleTrajectory unpacks like a pair
    assert torch.equal(result.images, x) and result.trajectory is traj
    assert torch.equal(x, ddpm_sample(model, s, 2, seed=0, progress=False))  # recording changes nothing
    assert isinstance(ddpm_sample(model, s, 2, seed=0, progress=False), torch.Tensor)
    assert sorted(traj) == [0, 25, 49]
    assert traj[49].std() > 0.8  # x_T is pure noise
    x2, traj2 = ddim_sample(model, s, 2, steps=5, seed=0, trajectory_at=[49], progress=False)
    assert torch.equal(traj2[49], traj[49])  # same seed, same starting noise
    with pytest.raises(ValueError, match="never visits"):
        ddim_sample(model, s, 2, steps=5, seed=0, trajectory_at=[48], progress=False)


def test_bad_sampler_requests_give_clear_errors(linear_schedule):
    model = DummyEps()
    with pytest.raises(ValueError, match="exceeds the model's T=1000"):
        ddim_sample(model, linear_schedule, 1, steps=1001, progress=False)
    with pytest.raises(ValueError, match="positive integer"):
        ddim_sample(model, linear_schedule, 1, steps=0, progress=False)
    with pytest.raises(ValueError, match="variance must be"):
        ddpm_sample(model, linear_schedule, 1, variance="learned", progress=False)
    with pytest.raises(ValueError, match="n must be >= 1"):
        ddpm_sample(model, linear_schedule, 0, progress=False)
    for eta in (-1, float("nan"), float("inf")):  # NaN used to return NaN images without a word
        with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
            ddim_sample(model, linear_schedule, 1, steps=5, eta=eta, progress=False)
    for w in (-1, float("nan")):
        with pytest.raises(ValueError, match="guidance weight w must be a finite number >= 0"):
            ddim_sample(DummyConditional(), linear_schedule, 1, steps=5, y=torch.tensor([3]), guidance=w,
                        progress=False)

    class NaNWeights(DummyEps):  # a diverged model: its output is NaN
        def forward(self, x, t, y=None):
            return torch.full_like(x, float("nan"))

    for draw in (lambda: ddim_sample(NaNWeights(), linear_schedule, 1, steps=5, progress=False),
                 lambda: ddpm_sample(NaNWeights(), make_schedule(T=20), 1, progress=False)):
        with pytest.raises(ValueError, match="sampling gave NaN or inf images"):
            draw()
    with pytest.raises(ValueError, match="strictly decreasing"):
        ddim_sample(model, linear_schedule, 1, timesteps=[10, 20, 0], progress=False)
    with pytest.raises(ValueError, match="NaN"):
        ddim_sample(model, linear_schedule, 1, steps=5, x_T=torch.full((1, 1, 28, 28), float("nan")), progress=False)
    with pytest.raises(ValueError, match=r"integers in \[0, 10\].*\[0, 11\]"):  # labels checked once, here
        ddim_sample(DummyConditional(), linear_schedule, 3, steps=5, y=torch.tensor([0, 11, 3]), progress=False)


def test_a_sampler_refuses_a_schedule_other_than_the_one_the_model_was_trained_with():
    """Issue 16: a model that remembers its DiffusionConfig (load_model and Trainer set it) is sampled
    only with that schedule: another T, kind or prediction type gave wrong images without a word.
    reverse_loop checks once per call; a model built by hand remembers nothing and takes any."""
    from ddpm_lib import DiffusionConfig, load_model, pretrained_path
    from ddpm_lib.schedules import remember_diffusion

    model = remember_diffusion(DummyEps(), DiffusionConfig(T=50))
    for other, named in ((make_schedule(T=1000), "T=1000, linear"), (make_schedule(T=50, schedule="cosine"),
                         "T=50, cosine"), (make_schedule(T=50, prediction="x0"), "predicting x0"),
                         (make_schedule(T=50, beta_end=0.05), r"beta 0.0001 -> 0.05")):
        for sample in (lambda s: ddim_sample(model, s, 1, steps=5, progress=False),
                       lambda s: ddpm_sample(model, s, 1, progress=False)):
            with pytest.raises(ValueError, match=r"trained with T=50, linear schedule \(beta 0.0001 -> 0.02\), "
                                                 rf"predicting eps, but the sampler was given .*{named}.*"
                                                 r"make_schedule\(model.diffusion_config\)"):
                sample(other)
    same = make_schedule(DiffusionConfig(T=50))
    assert torch.equal(ddim_sample(model, same, 1, steps=5, seed=0, progress=False),
                       ddim_sample(DummyEps(), same, 1, steps=5, seed=0, progress=False))
    shipped, schedule = load_model(pretrained_path("unet_mnist"), device="cpu")
    with pytest.raises(ValueError, match=r"trained with T=1000, linear.*given T=1000, cosine"):
        ddim_sample(shipped, make_schedule(schedule="cosine"), 1, steps=1, progress=False)
    assert ddim_sample(shipped, schedule, 1, steps=1, seed=0, progress=False).shape == (1, 1, 28, 28)


class DummyConditional(torch.nn.Module):
    """eps depends on the label; label 10 is the null label."""

    null_label = 10

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.2))

    def forward(self, x, t, y=None):
        y = torch.full((x.shape[0],), 10) if y is None else y
        return self.w * x + 0.01 * y.float().view(-1, 1, 1, 1)


def test_guidance_with_w_0_is_the_conditional_model_and_w_mixes_as_eq_6():
    from ddpm_lib import guided_eps

    model = DummyConditional()
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([5, 5, 5]), torch.tensor([1, 4, 7])
    assert torch.equal(guided_eps(model, y, 0.0)(x, t), model(x, t, y))
    w = 2.0
    expected = (1 + w) * model(x, t, y) - w * model(x, t, torch.full((3,), 10))
    assert torch.allclose(guided_eps(model, y, w)(x, t), expected)
    # one double batch or two calls (the CPU default): the same numbers
    assert torch.allclose(guided_eps(model, y, w, joint=True)(x, t), expected)
    assert torch.allclose(guided_eps(model, y, w, joint=False)(x, t), expected)
    s = make_schedule(T=20)
    a = ddim_sample(model, s, 3, steps=5, y=y, guidance=0.0, seed=0, progress=False)
    b = ddim_sample(model, s, 3, steps=5, y=y, seed=0, progress=False)
    c = ddpm_sample(model, s, 3, y=y, guidance=3.0, seed=0, progress=False)
    assert torch.equal(a, b) and c.shape == (3, 1, 28, 28)


def test_guidance_needs_a_conditional_model_and_labels(linear_schedule):
    with pytest.raises(ValueError, match="class-conditional"):
        ddim_sample(DummyEps(), linear_schedule, 2, steps=2, y=torch.tensor([1, 2]), progress=False)
    with pytest.raises(ValueError, match="needs labels"):
        ddim_sample(DummyConditional(), linear_schedule, 2, steps=2, guidance=1.0, progress=False)
    with pytest.raises(ValueError, match="one label per sample"):
        ddim_sample(DummyConditional(), linear_schedule, 2, steps=2, y=torch.tensor([1, 2, 3]), progress=False)


# ------------------------------------------------------------------ interpolation
def test_slerp_endpoints_norm_and_angle():
    from ddpm_lib.interpolation import noise_for_seed, slerp

    z0, z1 = noise_for_seed(1), noise_for_seed(2)
    assert torch.equal(slerp(z0, z1, 0.0), z0) and torch.equal(slerp(z0, z1, 1.0), z1)
    # unit vectors: slerp stays on the unit sphere, at equal angles to both ends
    u0, u1 = z0 / z0.norm(), z1 / z1.norm()
    cos = lambda a, b: (a.flatten() @ b.flatten() / (a.norm() * b.norm())).item()  # noqa: E731
    for alpha in (0.25, 0.5, 0.9):
        assert abs(slerp(u0, u1, alpha).norm().item() - 1) < 1e-5
    assert abs(cos(slerp(u0, u1, 0.5), u0) - cos(slerp(u0, u1, 0.5), u1)) < 1e-5
    mid = slerp(z0, z1, 0.5)
    lo, hi = sorted([z0.norm().item(), z1.norm().item()])
    assert lo * 0.99 < mid.norm().item() < hi * 1.01
    assert ((z0 + z1) / 2).norm().item() < 0.8 * lo  # a straight line cuts inside the sphere
    assert torch.allclose(slerp(z0, z0 * 2, 0.5), z0 * 1.5)  # parallel inputs: falls back to lerp
    with pytest.raises(ValueError, match="alpha"):
        slerp(z0, z1, 1.5)


def test_interpolation_endpoints_reproduce_the_two_seeds(tiny_unet_config, linear_schedule):
    from ddpm_lib import UNet
    from ddpm_lib.interpolation import interpolate

    torch.manual_seed(0)
    model = UNet(tiny_unet_config).eval()
    for p in model.parameters():  # a non-trivial (random) network, so frames differ
        torch.nn.init.normal_(p, std=0.05)
    frames = interpolate(model, linear_schedule, 3, 11, frames=5, steps=6)
    a = ddim_sample(model, linear_schedule, 1, steps=6, seed=3, progress=False)
    b = ddim_sample(model, linear_schedule, 1, steps=6, seed=11, progress=False)
    assert frames.shape == (5, 1, 28, 28)
    assert torch.allclose(frames[0], a[0], atol=1e-5) and torch.allclose(frames[-1], b[0], atol=1e-5)
    assert not torch.allclose(frames[2], frames[0], atol=1e-3)


def test_guidance_joint_batch_and_two_calls_agree_on_a_unet(tiny_unet_config):
    from ddpm_lib import UNetConfig, build_model, guided_eps

    torch.manual_seed(0)
    model = build_model(UNetConfig(**{**tiny_unet_config.__dict__, "num_classes": 10})).eval()
    for p in model.parameters():  # non-trivial weights (zero-initialised output layers would hide differences)
        torch.nn.init.normal_(p, std=0.05)
    x, t, y = torch.randn(4, 1, 28, 28), torch.tensor([3, 9, 9, 15]), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        joint, split = guided_eps(model, y, 2.0, joint=True)(x, t), guided_eps(model, y, 2.0, joint=False)(x, t)
    assert joint.abs().mean() > 0.01 and torch.allclose(joint, split, atol=1e-5)


def test_label_dropout_replaces_labels_with_the_null_label_at_rate_p():
    """The training half of classifier-free guidance (Ho & Salimans 2022, Algorithm 1)."""
    from ddpm_lib import drop_labels

    y = torch.arange(20_000) % 10
    assert torch.equal(drop_labels(y, 10, 0.0), y)
    assert (drop_labels(y, 10, 1.0) == 10).all()
    a = drop_labels(y, 10, 0.1, torch.Generator().manual_seed(0))
    b = drop_labels(y, 10, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    dropped = a == 10
    assert abs(dropped.float().mean().item() - 0.1) < 0.01  # 5 standard errors
    assert torch.equal(a[~dropped], y[~dropped])  # the rest keep their label
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        drop_labels(y, 10, 1.5)


def test_default_guidance_applies_to_labelled_draws_only(linear_schedule):
    """sample() without guidance= uses SamplerConfig.guidance when digits are asked for (the
    measured choice) and plain unconditional sampling otherwise; an explicit w still wins."""
    from ddpm_lib import SamplerConfig, UNet, UNetConfig, sample

    assert SamplerConfig.guidance > 0
    torch.manual_seed(0)
    cond = UNet(UNetConfig(base_channels=8, num_classes=10)).eval()
    with torch.no_grad():  # zero-initialised layers would make every label predict the same
        for p in cond.parameters():
            p.add_(0.05 * torch.randn_like(p))
    small = make_schedule(T=50)
    y = torch.tensor([3, 7])
    kw = dict(steps=4, seed=1, progress=False)
    default = sample(cond, small, 2, y=y, **kw)
    assert torch.equal(default, sample(cond, small, 2, y=y, guidance=SamplerConfig.guidance, **kw))
    assert not torch.equal(default, sample(cond, small, 2, y=y, guidance=0.0, **kw))
    # without labels a conditional model draws from its null label, unguided
    assert torch.equal(sample(cond, small, 2, **kw), sample(cond, small, 2, guidance=0.0, **kw))
    plain = DummyEps()
    assert sample(plain, linear_schedule, 2, **kw).shape == (2, 1, 28, 28)  # no labels: no guidance asked
    with pytest.raises(ValueError, match="guidance needs labels"):
        sample(plain, linear_schedule, 2, guidance=1.0, **kw)


def test_cpu_sampling_calls_the_network_in_chunks_with_the_same_result():
    """On a CPU the network sees at most SamplerConfig().cpu_batch images per call (faster than
    one large batch); the noise and the images are those of one batch, labels included."""
    from ddpm_lib import SamplerConfig, sample

    seen = []

    class Counting(DummyConditional):
        def forward(self, x, t, y=None):
            seen.append(len(x))
            return super().forward(x, t, y)

    small, y = make_schedule(T=30), torch.arange(7) % 10
    whole = [sample(Counting(), small, 7, sampler=s, steps=5, seed=2, y=y, progress=False) for s in ("ddim", "ddpm")]
    assert max(seen) == 7
    seen.clear()
    config = SamplerConfig(cpu_batch=3)  # a setting of this call alone
    parts = [sample(Counting(), small, 7, config, sampler=s, steps=5, seed=2, y=y, progress=False) for s in ("ddim", "ddpm")]
    assert max(seen) == 3 and set(seen) == {3, 1}
    for a, b in zip(whole, parts):
        assert torch.allclose(a, b, atol=1e-6)
    seen.clear()
    sample(Counting(), small, 7, sampler="ddim", steps=5, seed=2, y=y, progress=False)
    assert max(seen) == 7  # the next call is back to the default
    with pytest.raises(ValueError, match="cpu_batch must be a positive integer"):
        sample(Counting(), small, 7, SamplerConfig(cpu_batch=0), progress=False)


def test_a_sampler_config_is_a_value_and_keywords_override_its_fields():
    """sample(..., config) uses every field of the config it is given; a keyword overrides one field."""
    from ddpm_lib import SamplerConfig, sample

    small = make_schedule(T=40)
    kw = dict(progress=False)
    ddim7 = SamplerConfig(sampler="ddim", steps=7, eta=0.0, spacing="even", seed=3)
    by_config = sample(DummyEps(), small, 2, ddim7, **kw)
    by_keywords = sample(DummyEps(), small, 2, sampler="ddim", steps=7, eta=0.0, spacing="even", seed=3, **kw)
    assert torch.equal(by_config, by_keywords)
    assert not torch.equal(by_config, sample(DummyEps(), small, 2, **kw))  # the default sampler differs
    assert torch.equal(sample(DummyEps(), small, 2, ddim7, steps=9, **kw),
                       sample(DummyEps(), small, 2, sampler="ddim", steps=9, eta=0.0, spacing="even", seed=3, **kw))
    fresh = [sample(DummyEps(), small, 1, SamplerConfig(seed=None), **kw) for _ in range(2)]
    assert not torch.equal(*fresh)  # seed None: fresh noise each call


@pytest.mark.parametrize("sampler", ["dpm++sde", "dpm++", "ddim", "ddpm"])
def test_the_image_shape_follows_the_model(sampler):
    """Every sampler draws the images the model makes (its config's in_channels and image_size), as
    diffusers' pipelines read unet.config; a network without a config says its shape with image_shape."""
    from ddpm_lib import UNet, UNetConfig, interpolate, sample

    small = make_schedule(T=20)
    rgb16 = UNet(UNetConfig(in_channels=3, image_size=16, base_channels=8, attn_resolutions=()))
    assert sample(rgb16, small, 3, sampler=sampler, steps=4, progress=False).shape == (3, 3, 16, 16)
    assert tuple(interpolate(rgb16, small, 0, 1, frames=3, steps=4).shape) == (3, 3, 16, 16)

    class Own(torch.nn.Module):  # no config: MNIST's shape unless told
        def forward(self, x, t):
            return 0.1 * x

    assert sample(Own(), small, 2, sampler=sampler, steps=4, progress=False).shape == (2, 1, 28, 28)
    assert sample(Own(), small, 2, sampler=sampler, steps=4, image_shape=(2, 8, 8), progress=False).shape == (2, 2, 8, 8)
    with pytest.raises(ValueError, match=r"image_shape must be \(channels, height, width\)"):
        sample(Own(), small, 2, image_shape=(8, 8), progress=False)
