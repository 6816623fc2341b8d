"""Fidelity and coverage apart: improved precision and recall (Kynkäänniemi et al. 2019).

FID folds two failures into one number: samples that do not look real, and real variety the
samples never reach. Kynkäänniemi et al. estimate each set's manifold in feature space as the
union of balls around its points, each ball reaching the point's k-th nearest neighbour
(Sec. 2, Eq. 1-2, k = 3):

    f(phi, Phi) = 1 if ||phi - phi'|| <= ||phi' - NN_k(phi', Phi)|| for some phi' in Phi, else 0
    precision   = mean over generated phi_g of f(phi_g, Phi_r)   (samples inside the real manifold)
    recall      = mean over real phi_r of f(phi_r, Phi_g)        (real images inside the sample manifold)

Noisy or broken samples lower precision; a missing digit or a collapsed sampler lowers recall.
A ball reaches as far as its point's k-th neighbour, so one outlier in a small reference set
can swallow far-away junk: the evaluator takes all 10,000 test images as the real set, and
recall (whose balls come from the n samples) is compared only at equal n.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..errors import InputError

Tensor = torch.Tensor


def knn_radii(features: Tensor, k: int = 3, *, chunk: int = 2048) -> Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    f = features.double()
    if f.ndim != 2 or len(f) <= k:
        raise InputError(f"need features [N > k, D] with k = {k}, got {list(f.shape)}")
    radii = [torch.cdist(part, f).kthvalue(k + 1, dim=1).values for part in f.split(chunk)]
    return torch.cat(radii)  # kthvalue(k + 1): the smallest distance is the point to itself (0)


def manifold_share(query: Tensor, reference: Tensor, radii: Tensor, *, chunk: int = 2048) -> float:
    """Share of ``query`` points inside the union of balls (``reference``, ``radii``)."""
    ref = reference.double()
    inside = [(torch.cdist(part, ref) <= radii[None]).any(1) for part in query.double().split(chunk)]
    return torch.cat(inside).double().mean().item()


def precision_recall(real: Tensor, generated: Tensor, k: int = 3, *,
                     real_radii: Optional[Tensor] = None) -> Tuple[float, float]:
    """Improved precision and recall of ``generated`` features against ``real`` features (the
    module's Eq. 1-2). ``real_radii`` (``knn_radii(real, k)``) may be passed in when one real set
    is scored against many generated sets."""
    radii = knn_radii(real, k) if real_radii is None else real_radii
    precision = manifold_share(generated, real, radii)
    recall = manifold_share(real, generated, knn_radii(generated, k))
    return precision, recall
