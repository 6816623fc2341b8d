"""Sample quality judged by the MNIST classifier: MNIST-FID, confident share, class balance.

MNIST-FID is the Fréchet distance (Heusel et al. 2017, Eq. 6) between Gaussians fitted to the
classifier's penultimate features of generated samples and of the 10,000 MNIST test images:

    d^2 = ||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2)).

It is biased upwards for small sample sets, so numbers are only comparable at equal sample
counts: every report carries ``n`` and the *real-data floor*, the same distance for n real
training images (which a perfect generator would match on average).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import torch

from ..data import load_mnist
from .classifier import MNISTClassifier, load_classifier, predict

Tensor = torch.Tensor


def gaussian_stats(features: Tensor) -> tuple:
    """Mean and (unbiased) covariance of features [N, D], in float64."""
    f = features.double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape [N >= 2, D], got {list(f.shape)}")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def _sqrtm_psd(m: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix via its eigendecomposition."""
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """d^2 between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982):
    ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2)).

    Tr((sigma1 sigma2)^(1/2)) is computed as the trace of the symmetric
    (sigma1^(1/2) sigma2 sigma1^(1/2))^(1/2), which has the same eigenvalues and stays real."""
    mu1, mu2, sigma1, sigma2 = (a.double() for a in (mu1, mu2, sigma1, sigma2))
    root1 = _sqrtm_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    cross = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    d2 = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * cross
    return max(float(d2), 0.0)


def class_entropy_bits(histogram: Tensor) -> float:
    """Entropy of the predicted-class distribution in bits (log2 10 = 3.32 when balanced)."""
    p = histogram.double() / histogram.sum()
    p = p[p > 0]
    return max(0.0, float(-(p * p.log2()).sum()))


@dataclass
class QualityReport:
    """Quality of ``n`` samples. ``fid`` vs ``fid_floor`` (n real training images vs the test
    set): a ratio near 1 is as good as real data at this n. ``confident_share``: samples the
    classifier labels with probability > 0.9. ``entropy_bits``: class balance (3.32 = uniform)."""

    n: int
    fid: float
    fid_floor: float
    confident_share: float
    entropy_bits: float
    histogram: List[int] = field(default_factory=list)
    accuracy: Optional[float] = None  # share classified as the requested digit, if given

    @property
    def fid_ratio(self) -> float:
        return self.fid / max(self.fid_floor, 1e-12)

    def as_dict(self) -> Dict[str, Union[int, float, list, None]]:
        return {**asdict(self), "fid_ratio": self.fid_ratio}

    def __str__(self) -> str:
        acc = f", accuracy {self.accuracy:.1%}" if self.accuracy is not None else ""
        return (f"n={self.n}: MNIST-FID {self.fid:.2f} (real-data floor {self.fid_floor:.2f}, "
                f"ratio {self.fid_ratio:.1f}x), confident {self.confident_share:.1%}, "
                f"class entropy {self.entropy_bits:.2f} bits{acc}")


class SampleEvaluator:
    """Scores generated images against MNIST with the shipped classifier.

        ev = SampleEvaluator()
        print(ev.evaluate(samples))          # samples: [N, 1, 28, 28] in [-1, 1]

    The test-set statistics and the real-data floors are computed once and cached."""

    def __init__(self, classifier: Optional[MNISTClassifier] = None, *,
                 device: Union[str, torch.device, None] = None, floor_seed: int = 0):
        self.classifier = classifier if classifier is not None else load_classifier(device=device)
        self.floor_seed = floor_seed
        test = load_mnist(train=False)
        self.test_features, _ = predict(self.classifier, test.tensors[0])
        self.test_stats = gaussian_stats(self.test_features)
        self._train_images: Optional[Tensor] = None
        self._floors: Dict[int, float] = {}

    @property
    def train_images(self) -> Tensor:
        if self._train_images is None:
            self._train_images = load_mnist(train=True).tensors[0]
        return self._train_images

    def fid(self, samples: Tensor) -> float:
        """MNIST-FID of ``samples`` against the 10,000 test images."""
        feats, _ = predict(self.classifier, _check_images(samples))
        return frechet_distance(*gaussian_stats(feats), *self.test_stats)

    def fid_floor(self, n: int) -> float:
        """MNIST-FID of n random real training images: the best a generator can expect at n."""
        if n not in self._floors:
            gen = torch.Generator().manual_seed(self.floor_seed)
            idx = torch.randperm(len(self.train_images), generator=gen)[:n]
            self._floors[n] = self.fid(self.train_images[idx])
        return self._floors[n]

    def evaluate(self, samples: Tensor, digits: Union[Tensor, Sequence[int], None] = None) -> QualityReport:
        """All sample-quality numbers for ``samples``; with ``digits`` (the requested class of
        each sample) also the share the classifier assigns to the requested digit."""
        samples = _check_images(samples)
        feats, probs = predict(self.classifier, samples)
        hist = torch.bincount(probs.argmax(1), minlength=10)
        acc = None
        if digits is not None:
            digits = torch.as_tensor(digits).reshape(-1)
            if digits.numel() == 1:
                digits = digits.expand(len(samples))
            if digits.shape != (len(samples),):
                raise ValueError(f"digits must give one label per sample ({len(samples)}), got {list(digits.shape)}")
            acc = (probs.argmax(1) == digits.cpu()).float().mean().item()
        return QualityReport(
            n=len(samples),
            fid=frechet_distance(*gaussian_stats(feats), *self.test_stats),
            fid_floor=self.fid_floor(len(samples)),
            confident_share=(probs.max(1).values > 0.9).float().mean().item(),
            entropy_bits=class_entropy_bits(hist),
            histogram=hist.tolist(),
            accuracy=acc,
        )


def _check_images(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"samples must be a float tensor in [-1, 1], got {getattr(x, 'dtype', type(x))}")
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"samples must have shape [N, 1, 28, 28], got {list(x.shape)}")
    if len(x) < 2:
        raise ValueError("need at least 2 samples for a covariance (use hundreds for a stable MNIST-FID)")
    if not torch.isfinite(x).all():
        raise ValueError("samples contain NaN or inf: the sampler or the model diverged")
    if x.min() < -1.5 or x.max() > 1.5:
        raise ValueError(f"samples must lie in [-1, 1] (model space), got [{x.min():.3g}, {x.max():.3g}]; "
                         "images in [0, 1] map with x * 2 - 1")
    return x.detach().cpu().float()


