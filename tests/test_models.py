"""Models: output shape equals input shape, the time embedding is the sinusoidal clock, the
conditioning hook works, and wrong inputs fail with a readable message."""

import math

import pytest
import torch

from ddpm_lib import MLPConfig, MLPNoisePredictor, UNet, UNetConfig, count_parameters, sinusoidal_embedding
from ddpm_lib.models import build_model, config_from_dict, config_to_dict, cpu_channels_last


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return UNet().eval()


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return MLPNoisePredictor(MLPConfig(hidden=256, num_blocks=2)).eval()


def test_default_unet_size_and_layout(unet):
    n = count_parameters(unet)
    assert 1e6 <= n <= 4e6, n
    feats = {}

    def hook(mod, inp, out):
        feats.setdefault(type(mod).__name__, set()).add(tuple(out.shape[-2:]))
    hooks = [m.register_forward_hook(hook) for m in unet.modules() if type(m).__name__ in ("SelfAttention", "ResBlock")]
    with torch.no_grad():
        unet(torch.zeros(2, 1, 28, 28), torch.tensor([0, 999]))
    for hk in hooks:
        hk.remove()
    assert feats["SelfAttention"] == {(7, 7)}  # ... only at 7x7
    assert feats["ResBlock"] == {(28, 28), (14, 14), (7, 7)}  # no padding to 32


def test_small_preset_is_the_same_layout_at_a_quarter_of_the_cost(unet):
    from torch.utils.flop_counter import FlopCounterMode

    small = UNet(UNetConfig.small()).eval()
    assert [type(m).__name__ for m in small.modules()] == [type(m).__name__ for m in unet.modules()]
    assert 0.2 <= count_parameters(small) / count_parameters(unet) <= 0.3  # widths halved: ~1/4
    frozen = UNet(UNetConfig.small()).requires_grad_(False)  # as an EMA copy is
    assert count_parameters(frozen) == count_parameters(small)
    flops = []
    for model in (unet, small):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 1, 28, 28), torch.tensor([0]))
        flops.append(counter.get_total_flops())
    assert 0.2 <= flops[1] / flops[0] <= 0.3, flops
    assert UNetConfig.small(num_classes=10).num_classes == 10  # overrides pass through


@pytest.mark.parametrize("batch", [1, 7, 128])
def test_output_shape_equals_input_shape(unet, mlp, batch):
    x = torch.randn(batch, 1, 28, 28)
    t = torch.randint(0, 1000, (batch,))
    with torch.no_grad():
        for model in (unet, mlp):
            out = model(x, t)
            assert out.shape == x.shape and torch.isfinite(out).all()


def test_time_conditioning_changes_the_output(tiny_unet_config):
    torch.manual_seed(0)
    model = UNet(tiny_unet_config)
    for p in model.parameters():  # zero-initialised output layers would hide the effect
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 1, 28, 28)
    a, b = model(x, torch.tensor([0, 0])), model(x, torch.tensor([500, 500]))
    assert not torch.allclose(a, b)


def test_sinusoidal_embedding_is_log_spaced_clock():
    t = torch.tensor([0, 1, 10, 999])
    emb = sinusoidal_embedding(t, 32)
    assert emb.shape == (4, 32)
    assert torch.equal(emb[0], torch.cat([torch.zeros(16), torch.ones(16)]))  # t = 0: sin 0, cos 0
    assert torch.allclose(emb[:, :16] ** 2 + emb[:, 16:] ** 2, torch.ones(4, 16), atol=1e-6)
    # a clock: the embedding of a + b is that of a turned by that of b, column by column
    (sa, ca), (sb, cb) = [(e[0, :16], e[0, 16:]) for e in (sinusoidal_embedding(torch.tensor([n]), 32) for n in (10, 989))]
    assert torch.allclose(torch.cat([sa * cb + ca * sb, ca * cb - sa * sb]), emb[3], atol=5e-4)  # t = 999
    # log-spaced: each column turns a constant factor slower than the one before, from 1 radian a step
    freqs = torch.atan2(emb[1, :16], emb[1, 16:])  # radians per step (all below pi)
    assert freqs[0].item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(freqs[1:] / freqs[:-1], (freqs[1] / freqs[0]).expand(15), rtol=1e-4)
    assert 999 * freqs[-1] < math.pi / 2  # the slowest never turns a quarter: every t < 1000 reads apart
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 7)


@pytest.mark.parametrize("kind", ["unet", "mlp"])
def test_class_conditioning_hook_and_null_label(kind, tiny_unet_config):
    torch.manual_seed(0)
    cfg = UNetConfig(**{**tiny_unet_config.__dict__, "num_classes": 10}) if kind == "unet" \
        else MLPConfig(hidden=64, num_blocks=1, num_classes=10)
    model = build_model(cfg)
    assert model.null_label == 10
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([5, 5, 5])
    y = torch.tensor([1, 2, 10])
    out = model(x, t, y)
    assert out.shape == x.shape
    # y omitted means "no label": the null-label path
    assert torch.allclose(model(x, t), model(x, t, torch.full((3,), 10)))
    assert not torch.allclose(model(x, t, torch.tensor([1, 1, 1])), model(x, t, torch.tensor([2, 2, 2])))
    with pytest.raises(TypeError, match=r"integers in \[0, 10\]"):
        model(x, t, torch.tensor([0.0, 1.0, 3.0]))


def test_unconditional_model_rejects_labels(tiny_unet_config):
    with pytest.raises(ValueError, match="unconditional"):
        UNet(tiny_unet_config)(torch.zeros(1, 1, 28, 28), torch.tensor([0]), torch.tensor([3]))


def test_wrong_inputs_give_clear_errors(tiny_unet_config):
    model = UNet(tiny_unet_config)
    t = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\].*unsqueeze"):
        model(torch.zeros(2, 28, 28), t)
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]"):
        model(torch.zeros(2, 3, 28, 28), t)
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]"):
        model(torch.zeros(2, 1, 32, 32), t)
    with pytest.raises(TypeError, match="float tensor"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), t)
    with pytest.raises(TypeError, match="integer steps"):
        model(torch.zeros(2, 1, 28, 28), torch.tensor([0.5, 0.1]))
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        model(torch.zeros(2, 1, 28, 28), torch.tensor([1, 2, 3]))


def test_the_model_reads_no_values_so_it_never_syncs_with_the_device(tiny_unet_config, monkeypatch):
    """Values (t in [0, T), labels in range, finite data) are checked where they enter the library,
    once; the forward pass checks only types and shapes, which cost no device-to-host copy."""
    model = UNet(tiny_unet_config)
    called = []
    monkeypatch.setattr(torch.Tensor, "item", lambda self: called.append("item") or 0)
    monkeypatch.setattr(torch.Tensor, "__int__", lambda self: called.append("int") or 0)
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda self: called.append("bool") or True)
    model(torch.zeros(2, 1, 28, 28), torch.tensor([1, 2]))
    assert called == []


@pytest.mark.parametrize("kind", ["unet", "mlp"])
def test_t_at_or_beyond_T_is_refused_where_it_enters(kind, tiny_unet_config):
    """The schedule holds T: every function that takes t with a schedule refuses t outside
    [0, T) with the 0-based hint; samplers only ever pass valid t to the model."""
    from ddpm_lib import MLPConfig, build_model, ddim_sample, make_schedule, q_sample, simple_loss

    cfg = tiny_unet_config if kind == "unet" else MLPConfig(hidden=64, num_blocks=1)
    model, schedule = build_model(cfg), make_schedule(T=50)
    x0 = torch.zeros(2, 1, 28, 28)
    for bad in (torch.tensor([0, 50]), torch.tensor([-1, 3])):
        with pytest.raises(ValueError, match=r"\[0, T\) = \[0, 50\).*paper t = code t \+ 1"):
            q_sample(schedule, x0, bad)
        with pytest.raises(ValueError, match=r"\[0, T\) = \[0, 50\)"):
            simple_loss(model, schedule, x0, t=bad)
    with pytest.raises(ValueError, match="exceeds the model's T=50"):
        ddim_sample(model, schedule, 2, steps=51, progress=False)
    assert simple_loss(model, schedule, x0, t=torch.tensor([0, 49])).isfinite()


def test_config_round_trip(tiny_unet_config):
    for cfg in (tiny_unet_config, MLPConfig(hidden=64)):
        assert config_from_dict(config_to_dict(cfg)) == cfg


def _random_unet(config: UNetConfig) -> UNet:
    """A U-Net with no zero-initialised layer, so every block changes the output."""
    torch.manual_seed(0)
    model = UNet(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def test_cpu_channels_last_changes_the_layout_for_the_block_only(tiny_unet_config):
    model = _random_unet(tiny_unet_config)
    conv = model.down[0].res.conv1.weight  # [8, 8, 3, 3]: the two layouts differ
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([1, 400, 999])
    with torch.no_grad():
        reference = model(x, t)
        with cpu_channels_last(model):
            assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
            fast = model(x, t)
    assert all(p.is_contiguous() for p in model.parameters()) and model.down[0].res.conv1.weight is conv
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)  # the same numbers, another order of sums
    with pytest.raises(RuntimeError, match="inside"), cpu_channels_last(model):
        raise RuntimeError("inside")
    assert all(p.is_contiguous() for p in model.parameters())  # put back on errors too


def test_cpu_channels_last_leaves_a_model_that_chose_its_layout_alone(tiny_unet_config):
    model = _random_unet(tiny_unet_config).to(memory_format=torch.channels_last)
    with cpu_channels_last(model):
        pass
    assert not model.down[0].res.conv1.weight.is_contiguous()  # still the user's channels-last
    mlp = MLPNoisePredictor(MLPConfig(hidden=32, num_blocks=1))
    with cpu_channels_last(mlp):  # no convolutions: nothing to change
        assert all(p.is_contiguous() for p in mlp.parameters())



def test_a_unet_of_another_size_says_which_sizes_work_and_where_attention_goes():
    """A size the down path cannot halve is refused with sizes that work; attention sizes that match no
    level are a warning (the model would silently run without them), and a 3x32x32 U-Net keeps the shape."""
    from ddpm_lib import UNet, UNetConfig

    with pytest.raises(ValueError, match=r"image_size 10 cannot be halved 2 times .* sizes that work: 4, 8, 12"):
        UNet(UNetConfig(base_channels=8, image_size=10))
    with pytest.warns(UserWarning, match=r"attn_resolutions \(7,\) matches no level .* \[32, 16, 8\]"):
        UNet(UNetConfig(base_channels=8, image_size=32))
    model = UNet(UNetConfig(in_channels=3, base_channels=8, image_size=32, attn_resolutions=(8,)))
    x = torch.randn(2, 3, 32, 32)
    assert model(x, torch.tensor([0, 999])).shape == x.shape


def test_help_of_the_configs_says_what_every_field_means():
    """help(TrainConfig) / help(UNetConfig) name each field with its meaning (comments beside a field
    do not show in help())."""
    import dataclasses
    from ddpm_lib import TrainConfig, UNetConfig
    for cls in (TrainConfig, UNetConfig):
        for field in dataclasses.fields(cls):
            assert f"\n        {field.name}: " in cls.__doc__, f"{cls.__name__}.{field.name} is not described"
    assert "steps=None" in TrainConfig.__doc__  # what a budget in minutes alone needs
