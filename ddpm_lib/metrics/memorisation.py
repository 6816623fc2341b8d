"""Is the model copying its training set? Nearest training images of generated samples.

A generator that memorised MNIST would put its samples much closer to some training image
than fresh real digits (the test set) are. We compare the two distributions of
nearest-neighbour distances in pixel space (L2 on [-1, 1] images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from ..errors import InputError

Tensor = torch.Tensor


@torch.no_grad()
def nearest_neighbours(queries: Tensor, references: Tensor, *, batch_size: int = 512) -> Tuple[Tensor, Tensor]:
    """For each query image, the L2 distance to and the index of its nearest reference image.
    Uses ||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2 in float64 chunks (exact enough, fast)."""
    q = queries.reshape(len(queries), -1).double()
    r = references.reshape(len(references), -1).double()
    if q.shape[1] != r.shape[1]:
        raise InputError(f"queries have {q.shape[1]} pixels, references {r.shape[1]}")
    r_sq = r.square().sum(1)
    dists, idxs = [], []
    for chunk in q.split(batch_size):
        d2 = chunk.square().sum(1, keepdim=True) - 2 * chunk @ r.T + r_sq
        d2, i = d2.min(1)
        dists.append(d2.clamp_min(0).sqrt())
        idxs.append(i)
    return torch.cat(dists).float(), torch.cat(idxs)


@dataclass
class MemorisationReport:
    """``ratio`` = median nearest-training distance of samples / that of real test images.
    About 1: samples are as far from the training set as new real digits; well below 1
    (say < 0.5) points to copying. ``copy_share``: samples closer to a training image than
    99% of real test images are; about 0.01 for a generator that does not copy."""

    sample_median: float
    test_median: float
    copy_share: float
    n: int

    @property
    def ratio(self) -> float:
        return self.sample_median / max(self.test_median, 1e-12)

    def __str__(self) -> str:
        return (f"nearest-training distance: samples median {self.sample_median:.2f}, real test "
                f"images {self.test_median:.2f} (ratio {self.ratio:.2f}); {self.copy_share:.1%} of "
                f"{self.n} samples closer than 99% of test images (about 1% expected)")


def memorisation_check(samples: Tensor, train_images: Tensor, test_images: Tensor) -> MemorisationReport:
    """Compare nearest-training-image distances of ``samples`` with those of ``test_images``
    (use as many test images as samples, so both medians are equally noisy)."""
    d_samples, _ = nearest_neighbours(samples, train_images)
    d_test, _ = nearest_neighbours(test_images, train_images)
    return MemorisationReport(sample_median=d_samples.median().item(), test_median=d_test.median().item(),
                              copy_share=(d_samples < d_test.quantile(0.01)).float().mean().item(),
                              n=len(samples))
