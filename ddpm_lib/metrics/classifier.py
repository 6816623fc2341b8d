"""A small MNIST classifier: the judge behind every sample-quality number.

Its 128-dimensional penultimate features play the role Inception features play in FID; its
softmax says which digit a sample looks like and how sure it is. Trained by our own code
(``python -m ddpm_lib classifier``), its weights ship in ``data/pretrained/`` so evaluation
works offline.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ..checkpoints import CheckpointError, save_checkpoint
from ..config import get_device
from ..data import default_data_root

Tensor = torch.Tensor
FORMAT = "ddpm_lib.classifier/1"


def default_classifier_path() -> Path:
    """``data/pretrained/mnist_classifier.pt`` beside the MNIST files."""
    return default_data_root() / "pretrained" / "mnist_classifier.pt"


@dataclass
class ClassifierConfig:
    """How the judge is trained: a few epochs of Adam with light shift augmentation."""

    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    max_shift: int = 2  # random translation in pixels (robustness to off-centre samples)
    seed: int = 0


class MNISTClassifier(nn.Module):
    """conv(32)x2 -> pool -> conv(64)x2 -> pool -> fc(128) -> fc(10), BatchNorm + ReLU.

    ``features(x)`` is the 128-d penultimate layer (MNIST-FID); ``forward(x)`` the logits.
    Inputs are images in [-1, 1], shape [B, 1, 28, 28]; samples are clamped to that range."""

    feature_dim = 128

    def __init__(self):
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

        self.body = nn.Sequential(block(1, 32), block(32, 32), nn.MaxPool2d(2),     # 14x14
                                  block(32, 64), block(64, 64), nn.MaxPool2d(2),    # 7x7
                                  nn.Flatten(), nn.Linear(64 * 7 * 7, self.feature_dim),
                                  nn.BatchNorm1d(self.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, 10))

    def features(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the classifier takes [B, 1, 28, 28] images in [-1, 1], got {list(x.shape)}")
        return self.body(x.clamp(-1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _shift(x: Tensor, max_shift: int, gen: torch.Generator) -> Tensor:
    """Translate each image by up to ``max_shift`` pixels (background -1 fills the gap)."""
    if max_shift == 0:
        return x
    pad = F.pad(x, [max_shift] * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=gen).tolist()
    return pad[..., dy:dy + 28, dx:dx + 28]


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, *, batch_size: int = 1000) -> Tuple[Tensor, Tensor]:
    """Return (features [N, 128], probabilities [N, 10]) for images in [-1, 1], on CPU."""
    device = next(model.parameters()).device
    model.eval()
    feats, probs = [], []
    for chunk in images.split(batch_size):
        f = model.features(chunk.to(device).float())
        feats.append(f.cpu())
        probs.append(model.head(f).softmax(-1).cpu())
    return torch.cat(feats), torch.cat(probs)


def accuracy(model: nn.Module, data: TensorDataset) -> float:
    """Share of ``data`` (images, labels) the classifier gets right."""
    _, probs = predict(model, data.tensors[0])
    return (probs.argmax(1) == data.tensors[1]).float().mean().item()


def train_classifier(train: TensorDataset, config: Optional[ClassifierConfig] = None, *,
                     device: Union[str, torch.device, None] = None,
                     progress: bool = True) -> MNISTClassifier:
    """Train :class:`MNISTClassifier` on ``train`` (images in [-1, 1], labels) with Adam and a
    one-cycle learning rate; returns the model in eval mode."""
    cfg = config or ClassifierConfig()
    device = torch.device(device) if device is not None else get_device()
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = MNISTClassifier().to(device)
    images, labels = train.tensors[0], train.tensors[1]
    steps_per_epoch = len(images) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the data ({len(images)} images)")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="training classifier", disable=not progress)
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(images), generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = _shift(images[idx], cfg.max_shift, gen).to(device)
            loss = F.cross_entropy(model(x), labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def save_classifier(model: MNISTClassifier, path: Union[str, Path], *, test_accuracy: float,
                    config: Optional[ClassifierConfig] = None, note: str = "") -> Path:
    """Write the classifier's weights (float16: 1 MB) with its measured test accuracy."""
    state = {"format": FORMAT, "test_accuracy": float(test_accuracy), "note": note,
             "config": asdict(config or ClassifierConfig()),
             "model": {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}}
    return save_checkpoint(state, path)


def load_classifier(path: Union[str, Path, None] = None, *,
                    device: Union[str, torch.device, None] = None) -> MNISTClassifier:
    """Load the shipped classifier (``weights_only=True``) in eval mode; its test accuracy is
    in ``model.test_accuracy``."""
    path = Path(path) if path is not None else default_classifier_path()
    if not path.is_file():
        raise CheckpointError(f"classifier weights {path} not found; they ship in data/pretrained/ "
                              f"(git checkout data/pretrained) or retrain them with "
                              f"`python -m ddpm_lib classifier --out {path}` (about 5 min on CPU)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"{path} is not a readable classifier file: {str(err).splitlines()[0][:200]}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ddpm_lib classifier (no '{FORMAT}' format tag)")
    model = MNISTClassifier()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    model.test_accuracy = float(state["test_accuracy"])
    device = torch.device(device) if device is not None else get_device()
    return model.to(device).eval()
