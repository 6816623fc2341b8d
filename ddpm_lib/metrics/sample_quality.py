"""Sample quality judged by MNIST classifiers: MNIST-FID (two judges), precision and recall,
confident and rejected shares, class balance.

MNIST-FID is the Fréchet distance (Heusel et al. 2017, Eq. 6) between Gaussians fitted to the
classifier's penultimate features of generated samples and of the 10,000 MNIST test images:

    d^2 = ||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2)).

It is biased upwards for small sample sets, so numbers are only comparable at equal sample
counts: every report carries ``n`` and the *real-data floor*, the same distance for n real
training images (which a perfect generator would match on average).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from torch.utils.data import TensorDataset

from ..errors import InputError, InputTypeError
from ..data import MNIST_SHAPE, SAMPLE_RANGE_TOLERANCE, check_model_range, load_mnist
from .classifier import NOT_A_DIGIT, Judge, default_classifier_path, load_classifier, predict
from .precision_recall import knn_radii, precision_recall

Tensor = torch.Tensor


def gaussian_stats(features: Tensor) -> tuple:
    """Mean and (unbiased) covariance of features [N, D], in float64."""
    f = features.double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise InputError(f"need features of shape [N >= 2, D], got {list(f.shape)}")
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
    """Quality of ``n`` samples, each number with what it can tell:

    - ``fid`` vs ``fid_floor`` (n real training images vs the test set), in the main CNN judge's
      features: a ratio near 1 is as good as real data at this n. ``fid2`` / ``fid2_floor``: the
      same in the second judge's (an MLP's) features, a second opinion from a different kind of
      network.
    - ``precision``: share of samples inside the manifold of the 10,000 test images (fidelity);
      ``recall``: share of the test images inside the samples' manifold (coverage, depends on
      n like FID); both Kynkäänniemi et al. 2019, k = 3, in the main judge's features.
    - ``confident_share``: samples the judge calls one digit with probability > 0.9;
      ``rejected_share``: samples it calls "not a digit" (noise, blanks, blobs, ruined digits).
    - ``entropy_bits``: balance of the digits among the samples not rejected (3.32 = uniform);
      ``histogram``: how many of those were read as each digit.
    - ``accuracy``: share read as the requested digit, when digits were requested."""

    n: int
    fid: float
    fid_floor: float
    confident_share: float
    entropy_bits: float
    histogram: List[int] = field(default_factory=list)
    accuracy: Optional[float] = None  # share classified as the requested digit, if given
    fid2: Optional[float] = None
    fid2_floor: Optional[float] = None
    precision: Optional[float] = None
    recall: Optional[float] = None
    rejected_share: Optional[float] = None

    @property
    def fid_ratio(self) -> float:
        return self.fid / max(self.fid_floor, 1e-12)

    @property
    def fid2_ratio(self) -> Optional[float]:
        return None if self.fid2 is None else self.fid2 / max(self.fid2_floor, 1e-12)

    def as_dict(self) -> Dict[str, Union[int, float, list, None]]:
        return {**asdict(self), "fid_ratio": self.fid_ratio, "fid2_ratio": self.fid2_ratio}

    def __str__(self) -> str:
        parts = [f"n={self.n}: MNIST-FID {self.fid:.2f} (real-data floor {self.fid_floor:.2f}, "
                 f"ratio {self.fid_ratio:.1f}x)"]
        if self.fid2 is not None:
            parts.append(f"MLP-FID {self.fid2:.2f} (floor {self.fid2_floor:.2f}, {self.fid2_ratio:.1f}x)")
        if self.precision is not None:
            parts.append(f"precision {self.precision:.2f}, recall {self.recall:.2f}")
        conf = f"confident {self.confident_share:.1%}"
        if self.rejected_share is not None:
            conf += f", not a digit {self.rejected_share:.1%}"
        parts.append(f"{conf}, class entropy {self.entropy_bits:.2f} bits")
        if self.accuracy is not None:
            parts.append(f"accuracy {self.accuracy:.1%}")
        return "; ".join(parts)


class _JudgeView:
    """One judge's view of MNIST: its test-set features, their Gaussian, and cached floors."""

    def __init__(self, classifier: Judge, test_images: Tensor):
        self.classifier = classifier
        self.test_features = predict(classifier, test_images)[0]
        self.test_stats = gaussian_stats(self.test_features)
        self.floors: Dict[int, float] = {}

    def fid_of_features(self, feats: Tensor) -> float:
        return frechet_distance(*gaussian_stats(feats), *self.test_stats)


class SampleEvaluator:
    """Scores generated images against MNIST with the two shipped judges.

        ev = SampleEvaluator()
        print(ev.evaluate(samples))          # samples: [N, 1, 28, 28] in [-1, 1]

    ``classifier`` is the main judge (default: the shipped CNN): its features give MNIST-FID,
    precision and recall, its softmax the confident and rejected shares. ``second`` (default:
    the shipped MLP) gives a second MNIST-FID from a different kind of network; pass
    ``second=False`` to skip it. Test-set statistics and real-data floors are cached."""

    def __init__(self, classifier: Optional[Judge] = None, *,
                 second: Union[Judge, bool, None] = None,
                 device: Union[str, torch.device, None] = None, floor_seed: int = 0, k: int = 3):
        self.classifier = classifier if classifier is not None else load_classifier(device=device)
        if second is None or second is True:
            second = load_classifier(default_classifier_path("mlp"), device=device)
        self.second: Optional[Judge] = second or None
        self.floor_seed = floor_seed
        self.k = k
        self.test_images = load_mnist(train=False).tensors[0]
        self._main = _JudgeView(self.classifier, self.test_images)
        self._second = _JudgeView(self.second, self.test_images) if self.second is not None else None
        self.test_features, self.test_stats = self._main.test_features, self._main.test_stats
        self._train: Optional[TensorDataset] = None
        self._test_radii: Optional[Tensor] = None

    @property
    def train_images(self) -> Tensor:
        return self._train_set().tensors[0]

    @property
    def train_labels(self) -> Tensor:
        return self._train_set().tensors[1]

    def _train_set(self) -> TensorDataset:
        if self._train is None:
            self._train = load_mnist(train=True)
        return self._train

    def fid(self, samples: Tensor) -> float:
        """MNIST-FID of ``samples`` against the 10,000 test images (main judge)."""
        return self._main.fid_of_features(predict(self.classifier, _check_images(samples))[0])

    def fid2(self, samples: Tensor) -> float:
        """The same distance in the second judge's features."""
        if self._second is None:
            raise InputError("this evaluator was built with second=False; build it with the default second judge")
        return self._second.fid_of_features(predict(self.second, _check_images(samples))[0])

    def floor_images(self, n: int, seed: Optional[int] = None) -> Tensor:
        """n random real training images (seeded): the reference a perfect generator matches."""
        gen = torch.Generator().manual_seed(self.floor_seed if seed is None else seed)
        return self.train_images[torch.randperm(len(self.train_images), generator=gen)[:n]]

    def fid_floor(self, n: int) -> float:
        """MNIST-FID of n random real training images: the best a generator can expect at n."""
        if n not in self._main.floors:
            self._main.floors[n] = self.fid(self.floor_images(n))
        return self._main.floors[n]

    def fid2_floor(self, n: int) -> float:
        """The real-data floor of :meth:`fid2`."""
        if self._second is None:
            raise InputError("this evaluator was built with second=False")
        if n not in self._second.floors:
            self._second.floors[n] = self.fid2(self.floor_images(n))
        return self._second.floors[n]

    @property
    def test_radii(self) -> Tensor:
        """Distance from each test image to its k-th nearest test neighbour (main judge's features):
        the balls whose union is the real manifold of precision."""
        if self._test_radii is None:
            self._test_radii = knn_radii(self._main.test_features, self.k)
        return self._test_radii

    def precision_recall(self, features: Tensor) -> Tuple[float, float]:
        """Improved precision and recall of samples' main-judge ``features`` against the 10,000
        test images (all of them: with a 1000-image reference, one outlier's wide ball swallowed
        every blank grey image, precision 1.0; with 10,000 the balls are tighter)."""
        return precision_recall(self._main.test_features, features, self.k, real_radii=self.test_radii)

    def evaluate(self, samples: Tensor, digits: Union[Tensor, Sequence[int], None] = None) -> QualityReport:
        """All sample-quality numbers for ``samples``; with ``digits`` (the requested class of
        each sample) also the share the judge reads as the requested digit."""
        samples = _check_images(samples)
        feats, probs = predict(self.classifier, samples)
        digit_probs = probs[:, :10]  # softmax over 11 classes: mass on "not a digit" lowers these
        read_as = digit_probs.argmax(1)
        rejected = probs.argmax(1) == NOT_A_DIGIT  # all False for a 10-class judge
        hist = torch.bincount(read_as[~rejected], minlength=10)
        acc = None
        if digits is not None:
            digits = torch.as_tensor(digits).reshape(-1)
            if digits.numel() == 1:
                digits = digits.expand(len(samples))
            if digits.shape != (len(samples),):
                raise InputError(f"digits must give one label per sample ({len(samples)}), got {list(digits.shape)}")
            acc = ((read_as == digits.cpu()) & ~rejected).float().mean().item()
        n = len(samples)
        precision, recall = self.precision_recall(feats) if n > self.k else (None, None)
        fid2 = fid2_floor = None
        if self._second is not None:
            fid2 = self._second.fid_of_features(predict(self.second, samples)[0])
            fid2_floor = self.fid2_floor(n)
        return QualityReport(
            n=n,
            fid=self._main.fid_of_features(feats),
            fid_floor=self.fid_floor(n),
            confident_share=(digit_probs.max(1).values > 0.9).float().mean().item(),
            entropy_bits=class_entropy_bits(hist) if hist.sum() > 0 else 0.0,
            histogram=hist.tolist(),
            accuracy=acc,
            fid2=fid2,
            fid2_floor=fid2_floor,
            precision=precision,
            recall=recall,
            rejected_share=rejected.float().mean().item(),
        )


def _check_images(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise InputTypeError(f"samples must be a float tensor in [-1, 1], got {getattr(x, 'dtype', type(x))}")
    if x.ndim != 4 or tuple(x.shape[1:]) != MNIST_SHAPE:
        raise InputError(f"samples must have MNIST's shape [N, {', '.join(map(str, MNIST_SHAPE))}], got {list(x.shape)}: "
                         f"the MNIST judges score MNIST digits only (for other data, bits/dim and memorisation "
                         f"do not need a judge)")
    if len(x) < 2:
        raise InputError("need at least 2 samples for a covariance (use hundreds for a stable MNIST-FID)")
    check_model_range(x, "samples", tolerance=SAMPLE_RANGE_TOLERANCE)  # NaN, 0..255, [0, 1] refused
    return x.detach().cpu().float()


