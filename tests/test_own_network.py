"""A network of your own: trained, checkpointed, resumed and sampled like ours when it keeps the
protocol forward(x, t[, y]) -> x's shape, refused in one line before the first step when it does not;
and the shape of the images trained on follows the model into checkpoints and samplers."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ddpm_lib import (CheckpointError, DiffusionConfig, TrainConfig, Trainer, UNet, UNetConfig, export_pretrained,
                      load_model, sample)
from ddpm_lib.errors import InputError

DIFF = DiffusionConfig(T=50)


class TinyEps(nn.Module):
    """A user's own noise predictor for 3x8x8 images: no config, no ddpm_lib base class."""

    def __init__(self, channels: int = 3, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels + 1, width, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, x, t):
        time = (t.float() / DIFF.T).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        return self.net(torch.cat([x, time], 1))


def _data(n=32, shape=(3, 8, 8)):
    return TensorDataset(torch.rand(n, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1)


def _trainer(tmp_path, steps=4, model=None):
    torch.manual_seed(0)
    return Trainer(model or TinyEps(), DIFF, TrainConfig.quick(steps=steps, batch_size=8, checkpoint_every=2),
                   out_dir=tmp_path, device="cpu")


def test_own_network_trains_checkpoints_resumes_exactly_and_samples_its_shape(tmp_path):
    straight = _trainer(tmp_path / "a", steps=4)
    straight.fit(_data(), progress=False)
    half = _trainer(tmp_path / "b", steps=2)
    half.fit(_data(), progress=False)
    resumed = Trainer.from_checkpoint(tmp_path / "b" / "checkpoint.pt", model=TinyEps(), steps=4, device="cpu")
    resumed.fit(_data(), progress=False)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    model, schedule = load_model(tmp_path / "a" / "checkpoint.pt", model=TinyEps(), device="cpu")
    x = sample(model, schedule, 3, steps=2, progress=False)
    assert x.shape == (3, 3, 8, 8)
    export_pretrained(tmp_path / "a" / "checkpoint.pt", tmp_path / "small.pt")
    model, _ = load_model(tmp_path / "small.pt", model=TinyEps(), device="cpu")
    assert sample(model, schedule, 2, steps=2, progress=False).shape == (2, 3, 8, 8)


def test_rebuilding_an_own_network_without_its_class_says_how(tmp_path):
    _trainer(tmp_path, steps=2).fit(_data(), progress=False)
    for call in (lambda: load_model(tmp_path / "checkpoint.pt", device="cpu"),
                 lambda: Trainer.from_checkpoint(tmp_path / "checkpoint.pt", device="cpu")):
        with pytest.raises(CheckpointError, match=r"network of your own \(.*TinyEps\).*model=YourNet") as err:
            call()
        assert "\n" not in str(err.value)


def test_another_class_is_refused_when_loading(tmp_path):
    _trainer(tmp_path, steps=2).fit(_data(), progress=False)

    class Other(TinyEps):
        pass

    with pytest.raises(CheckpointError, match=r"model\.class"):
        load_model(tmp_path / "checkpoint.pt", model=Other(), device="cpu")


class OneArgument(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)


class WrongShape(TinyEps):
    def forward(self, x, t):
        return super().forward(x, t)[:, :1]


class Flat(TinyEps):
    def forward(self, x, t):
        return super().forward(x, t).flatten(1)


@pytest.mark.parametrize("model, message", [
    (OneArgument(), r"forward\(x, t\) failed.*TypeError"),
    (WrongShape(), r"must return a tensor of x's shape \[2, 3, 8, 8\], got \[2, 1, 8, 8\]"),
    (Flat(), r"got \[2, 192\]"),
    (TinyEps(channels=1), r"forward\(x, t\) failed.*RuntimeError"),  # built for grey, given RGB
])
def test_a_network_breaking_the_protocol_is_refused_before_the_first_step(tmp_path, model, message):
    trainer = _trainer(tmp_path, model=model)
    with pytest.raises(InputError, match=message) as err:
        trainer.fit(_data(), progress=False)
    assert "\n" not in str(err.value) and "help(Trainer)" in str(err.value)
    assert trainer.step == 0 and not (tmp_path / "checkpoint.pt").exists()


def test_the_check_leaves_a_seeded_run_unchanged(tmp_path):
    """The probe before the first step draws no random numbers that training would have drawn."""
    a = _trainer(tmp_path / "a", steps=2)
    a.fit(_data(), progress=False)
    b = _trainer(tmp_path / "b", steps=2)
    b._check_protocol = lambda images, labels: None  # the same run without the check
    b.fit(_data(), progress=False)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)


def test_a_unet_records_the_data_shape_and_samples_it(tmp_path):
    cfg = UNetConfig(in_channels=3, image_size=16, base_channels=8, channel_mults=(1, 2), attn_resolutions=(8,))
    torch.manual_seed(0)
    trainer = Trainer(UNet(cfg), DIFF, TrainConfig.quick(steps=1, batch_size=8), out_dir=tmp_path, device="cpu")
    trainer.fit(_data(16, (3, 16, 16)), progress=False)
    model, schedule = load_model(tmp_path / "checkpoint.pt", device="cpu")
    assert model.image_shape == (3, 16, 16)
    assert sample(model, schedule, 2, steps=2, progress=False).shape == (2, 3, 16, 16)
    with pytest.raises(InputError, match=r"cannot be trained|trained on images of 3x16x16"):
        Trainer.from_checkpoint(tmp_path / "checkpoint.pt", steps=2, device="cpu").fit(_data(16, (3, 8, 8)),
                                                                                       progress=False)
