"""Small MNIST classifiers: the judges behind every sample-quality number.

Their 128-dimensional penultimate features play the role Inception features play in FID; the
softmax says which digit a sample looks like and how sure it is. Two kinds ship, so that no
choice is tuned to one network's blind spots: a CNN (the main judge) and an MLP that sees the
28x28 pixels without any convolutional prior. Both have an 11th class, "not a digit", trained
on noise, blank images, random blobs and ruined digits (:func:`corruptions.rejection_batch`):
a ReLU network is otherwise confidently wrong far from its training data, and would call pure
noise a confident "8". Trained by our own code (``python -m ddpm_lib classifier``), the
weights ship in ``data/pretrained/`` so evaluation works offline.

A judge file carries the sha256 of its weights, checked whenever it is read (files written before
checksums existed carry none and load unchecked). Loaded for evaluation
(``load_classifier(..., check_accuracy=True)``), a judge is scored on held-out MNIST test images
(:func:`held_out_digits`) and refused below :data:`MIN_ACCURACY`, whatever accuracy its file claims:
a weak judge's MNIST-FID means nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ..errors import InputError
from ..files import CheckpointError, read_weights_file, with_checksums, write_weights_file
from ..config import get_device
from ..data import load_mnist, pretrained_path
from .corruptions import rejection_batch

Tensor = torch.Tensor
FORMAT = "ddpm_lib.classifier/2"
_OLD_FORMAT = "ddpm_lib.classifier/1"  # CNN, ten classes, no rejection class
ARCHS = ("cnn", "mlp")
NOT_A_DIGIT = 10  # index of the rejection class
#: Test accuracy a judge must reach: the main CNN's digit calls are quoted; the MLP's features only
#: give a second MNIST-FID, and without a convolutional prior it tops out lower (data/README.md, the judges).
MIN_ACCURACY = {"cnn": 0.99, "mlp": 0.985}
#: Epochs of the shipped judges: the MLP learns slower.
DEFAULT_EPOCHS = {"cnn": 4, "mlp": 10}
#: Held-out MNIST test images a judge loaded for evaluation is scored on (:func:`held_out_digits`): a second
#: or two for the CNN on a CPU; near 99% its measured accuracy is within about 0.2 points of the full test
#: set's (one standard error).
ACCURACY_CHECK_IMAGES = 2000


def default_classifier_path(arch: str = "cnn") -> Path:
    """The shipped judge of kind ``arch``: ``data/pretrained/mnist_classifier.pt`` (CNN) or
    ``mnist_mlp_classifier.pt`` (MLP), beside the MNIST files."""
    if arch not in ARCHS:
        raise InputError(f"unknown classifier kind {arch!r}; choose one of {ARCHS}")
    return pretrained_path("mnist_classifier" if arch == "cnn" else f"mnist_{arch}_classifier")


@dataclass
class ClassifierConfig:
    """How a judge is trained: a few epochs of Adam with light shift augmentation, plus
    ``reject_share`` "not a digit" images per digit image in every batch."""

    arch: str = "cnn"  # "cnn" (main judge) or "mlp" (second opinion)
    epochs: Optional[int] = None  # None: DEFAULT_EPOCHS[arch] (4 for the CNN, 10 for the MLP)
    batch_size: int = 128
    lr: float = 2e-3
    max_shift: int = 2  # random translation in pixels (robustness to off-centre samples)
    reject_share: float = 0.25  # rejection images per digit image (0: a plain 10-class model)
    seed: int = 0

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise InputError(f"unknown classifier kind {self.arch!r}; choose one of {ARCHS}")
        if self.epochs is None:
            self.epochs = DEFAULT_EPOCHS[self.arch]
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.reject_share < 0:
            raise InputError(f"epochs, batch_size, lr must be positive and reject_share >= 0, got {self}")


class Judge(nn.Module):
    """What every judge offers: ``features(x)``, the 128-d penultimate layer (MNIST-FID), and
    ``forward(x)``, the logits of the ten digits and, with ``num_classes=11``, of "not a digit".
    Inputs are images in [-1, 1], shape [B, 1, 28, 28]; samples are clamped to that range."""

    feature_dim = 128
    arch = ""
    test_accuracy: float = float("nan")  # as stored in its file (load_classifier)
    measured_accuracy: Optional[float] = None  # on held_out_digits(), when loaded with check_accuracy=True
    path: str = ""
    body: nn.Module
    head: nn.Module

    def __init__(self, num_classes: int = 11):
        super().__init__()
        self.num_classes = num_classes

    def features(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise InputError(f"the classifier takes [B, 1, 28, 28] images in [-1, 1], got {list(x.shape)}")
        return self.body(x.clamp(-1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MNISTClassifier(Judge):
    """The main judge: conv(32)x2 -> pool -> conv(64)x2 -> pool -> fc(128) -> fc(11),
    BatchNorm + ReLU."""

    arch = "cnn"

    def __init__(self, num_classes: int = 11):
        super().__init__(num_classes)

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

        self.body = nn.Sequential(block(1, 32), block(32, 32), nn.MaxPool2d(2),     # 14x14
                                  block(32, 64), block(64, 64), nn.MaxPool2d(2),    # 7x7
                                  nn.Flatten(), nn.Linear(64 * 7 * 7, self.feature_dim),
                                  nn.BatchNorm1d(self.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, num_classes))


class MLPClassifier(Judge):
    """The second judge: 784 -> 512 -> 256 -> 128 -> 11, fully connected (BatchNorm + ReLU).

    It sees the pixels without a convolutional prior (no locality, no pooling), so what it
    finds similar differs from the CNN's view."""

    arch = "mlp"

    def __init__(self, num_classes: int = 11):
        super().__init__(num_classes)

        def layer(d_in: int, d_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out), nn.ReLU(inplace=True))

        self.body = nn.Sequential(nn.Flatten(), layer(784, 512), layer(512, 256), layer(256, self.feature_dim))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, num_classes))


def build_classifier(arch: str = "cnn", num_classes: int = 11) -> Judge:
    """A fresh judge of kind ``arch`` ("cnn" or "mlp")."""
    if arch not in ARCHS:
        raise InputError(f"unknown classifier kind {arch!r}; choose one of {ARCHS}")
    return (MNISTClassifier if arch == "cnn" else MLPClassifier)(num_classes)


def _shift(x: Tensor, max_shift: int, gen: torch.Generator) -> Tensor:
    """Translate each image by up to ``max_shift`` pixels (background -1 fills the gap)."""
    if max_shift == 0:
        return x
    pad = F.pad(x, [max_shift] * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=gen).tolist()
    return pad[..., dy:dy + 28, dx:dx + 28]


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, *, batch_size: int = 100) -> Tuple[Tensor, Tensor]:
    """Return (features [N, 128], probabilities [N, C]) for images in [-1, 1], on CPU; C is 11
    (ten digits, then "not a digit") for the shipped judges. Batches of 100 run faster on a
    CPU than large ones (benchmarks/RESULTS.md, "Speed notes")."""
    device = next(model.parameters()).device
    model.eval()
    feats, probs = [], []
    for chunk in images.split(batch_size):
        f = model.features(chunk.to(device).float())
        feats.append(f.cpu())
        probs.append(model.head(f).softmax(-1).cpu())
    return torch.cat(feats), torch.cat(probs)


def accuracy(model: nn.Module, data: TensorDataset) -> float:
    """Share of ``data`` (images, labels) the classifier gets right (calling a real digit
    "not a digit" counts as wrong)."""
    _, probs = predict(model, data.tensors[0])
    return (probs.argmax(1) == data.tensors[1]).float().mean().item()


def held_out_digits(n: int = ACCURACY_CHECK_IMAGES) -> TensorDataset:
    """The MNIST test images (with labels) a judge is checked on: a fixed, seeded subset of ``n``;
    no judge trains on the test set."""
    return load_mnist(train=False, subset=n, seed=0)


def verify_accuracy(model: Judge, *, images: int = ACCURACY_CHECK_IMAGES, name: str = "classifier") -> float:
    """Score ``model`` on :func:`held_out_digits` (``images`` of them), store the result as
    ``model.measured_accuracy`` and return it; raise :class:`CheckpointError` (one line) if it is below
    :data:`MIN_ACCURACY` for its kind. ``name`` says which judge in the message (its file, say)."""
    acc = accuracy(model, held_out_digits(images))
    model.measured_accuracy = acc
    need = MIN_ACCURACY.get(model.arch, max(MIN_ACCURACY.values()))
    if acc < need:
        claims = model.test_accuracy
        claim = f" (its file claims {claims:.1%})" if claims == claims else ""  # nan: not loaded from a file
        raise CheckpointError(f"{name} is too weak to judge samples: {acc:.1%} right on {images} held-out MNIST "
                              f"test images{claim}, below the {need:.1%} a judge of its kind ({model.arch}) must "
                              f"reach, so its MNIST-FID would mean nothing; use the shipped judge, or retrain this one")
    return acc


def train_classifier(train: TensorDataset, config: Optional[ClassifierConfig] = None, *,
                     device: Union[str, torch.device, None] = None,
                     progress: bool = True) -> Judge:
    """Train a judge (``config.arch``) on ``train`` (images in [-1, 1], labels) with Adam and a
    one-cycle learning rate; every batch adds ``reject_share`` "not a digit" images labelled 10.
    Returns the model in eval mode."""
    cfg = config or ClassifierConfig()
    device = torch.device(device) if device is not None else get_device()
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg.arch, 11 if cfg.reject_share > 0 else 10).to(device)
    n_reject = round(cfg.batch_size * cfg.reject_share)
    images, labels = train.tensors[0], train.tensors[1]
    steps_per_epoch = len(images) // cfg.batch_size
    if steps_per_epoch == 0:
        raise InputError(f"batch_size {cfg.batch_size} is larger than the data ({len(images)} images)")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="training classifier", disable=not progress)
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(images), generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x, y = _shift(images[idx], cfg.max_shift, gen), labels[idx]
            if n_reject:
                pick = torch.randint(0, len(images), (n_reject,), generator=gen)
                x = torch.cat([x, rejection_batch(images[pick], gen)])
                y = torch.cat([y, torch.full((n_reject,), NOT_A_DIGIT, dtype=y.dtype)])
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def save_classifier(model: Judge, path: Union[str, Path], *, test_accuracy: float,
                    config: Optional[ClassifierConfig] = None, note: str = "") -> Path:
    """Write the classifier's weights (float16: 1 MB) with their sha256 and its measured test accuracy."""
    state = {"format": FORMAT, "arch": model.arch, "num_classes": model.num_classes,
             "test_accuracy": float(test_accuracy), "note": note,
             "config": asdict(config or ClassifierConfig()),
             "model": {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}}
    return write_weights_file(with_checksums(state, ("model",)), path)


def load_classifier(path: Union[str, Path, None] = None, *, device: Union[str, torch.device, None] = None,
                    check_accuracy: bool = False) -> Judge:
    """Load a judge (default: the shipped CNN; ``default_classifier_path("mlp")`` for the second)
    with ``weights_only=True`` and its weights' checksum verified, in eval mode; ``model.test_accuracy``
    (as its file stores it) and ``model.path`` say what it is.

    ``check_accuracy=True``, for a judge about to score samples: measure its accuracy on
    :data:`ACCURACY_CHECK_IMAGES` held-out MNIST test images (:func:`verify_accuracy`, a second or two
    on a CPU) into ``model.measured_accuracy``, and refuse it (:class:`CheckpointError`) below
    :data:`MIN_ACCURACY`."""
    path = Path(path) if path is not None else default_classifier_path()
    if not path.is_file():
        raise CheckpointError(f"classifier weights {path} not found; they ship in data/pretrained/ "
                              f"(git checkout data/pretrained), or train a judge with train_classifier and "
                              f"save_classifier (about 5 min on CPU)")
    state = read_weights_file(path, "classifier file")  # empty, pickled code, not torch: one line each
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, _OLD_FORMAT):
        raise CheckpointError(f"{path} is not a ddpm_lib classifier (no '{FORMAT}' format tag)")
    arch, num_classes = state.get("arch", "cnn"), int(state.get("num_classes", 10))
    if arch not in ARCHS:
        raise CheckpointError(f"{path} holds a classifier of unknown kind {arch!r}; this ddpm_lib knows {ARCHS}")
    model = build_classifier(arch, num_classes)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    except (RuntimeError, KeyError, AttributeError) as err:
        raise CheckpointError(f"{path}: weights do not fit a {arch} classifier "
                              f"({str(err).splitlines()[0][:160]})") from err
    model.test_accuracy = float(state["test_accuracy"])
    model.path = str(path)
    device = torch.device(device) if device is not None else get_device()
    model = model.to(device).eval()
    if check_accuracy:
        verify_accuracy(model, name=f"classifier {path}")
    return model
