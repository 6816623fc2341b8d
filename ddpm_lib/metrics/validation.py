"""Validating the evaluator: real digits with graded corruptions, scored against the floor.

Heusel et al. (2017, Sec. 4 and Fig. 3) trusted FID only after showing that it rises step by
step with noise, blur, swirl and salt-and-pepper applied to real images. We do the same for our
judges: each corruption family in :data:`corruptions.FAMILIES` at rising strength, plus whole-set
failures (a missing digit, a single digit, pure noise, blank grey, random blobs), each scored at
n images, next to the spread of the real-data floor over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from ..config import EvalConfig
from .corruptions import FAMILIES, blobs, constant, gaussian_images, uniform_noise
from .sample_quality import QualityReport, SampleEvaluator

Tensor = torch.Tensor


@dataclass
class ValidationRow:
    """One corrupted set's scores: ``family`` at ``strength`` (0 = the real images themselves)."""

    family: str
    strength: float
    report: QualityReport

    def as_dict(self) -> Dict[str, object]:
        r = self.report
        return {"family": self.family, "strength": self.strength, "fid": r.fid, "fid_ratio": r.fid_ratio,
                "fid2": r.fid2, "fid2_ratio": r.fid2_ratio, "precision": r.precision, "recall": r.recall,
                "confident": r.confident_share, "not_a_digit": r.rejected_share, "entropy_bits": r.entropy_bits}


@dataclass
class FloorSpread:
    """MNIST-FID (both judges), precision and recall of n real training images over several
    seeds: how far a perfect generator's numbers wander by chance at this n."""

    n: int
    fid: List[float]
    fid2: List[float]
    precision: List[float]
    recall: List[float]

    def summary(self) -> Dict[str, Dict[str, float]]:
        out = {}
        for name in ("fid", "fid2", "precision", "recall"):
            v = torch.tensor(getattr(self, name), dtype=torch.float64)
            out[name] = {"mean": v.mean().item(), "std": v.std().item(), "min": v.min().item(), "max": v.max().item()}
        return out


def floor_spread(evaluator: SampleEvaluator, n: int = EvalConfig.n, seeds: int = 10) -> FloorSpread:
    """Score ``seeds`` independent draws of n real training images (seeds 1..``seeds``)."""
    rows = [evaluator.evaluate(evaluator.floor_images(n, seed=s)) for s in range(1, seeds + 1)]
    return FloorSpread(n, [r.fid for r in rows], [r.fid2 for r in rows],
                       [r.precision for r in rows], [r.recall for r in rows])


def corruption_table(evaluator: SampleEvaluator, n: int = EvalConfig.n, seed: int = 1,
                     families: Optional[Dict[str, tuple]] = None, progress: bool = True) -> List[ValidationRow]:
    """Score n real training images (drawn with ``seed``), each graded corruption of them, and
    the whole-set failures. The first row is the clean set (family "real", strength 0)."""
    from tqdm.auto import tqdm

    families = FAMILIES if families is None else families
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(evaluator.train_images), generator=gen)[:n]
    real = evaluator.train_images[idx]
    jobs = [("real", 0.0, lambda: real)]
    for name, (fn, strengths, _unit) in families.items():
        jobs += [(name, float(s), (lambda fn=fn, s=s: fn(real, s, gen))) for s in strengths]
    perm = torch.randperm(len(evaluator.train_images), generator=gen)
    all_images, all_labels = evaluator.train_images[perm], evaluator.train_labels[perm]
    jobs += [
        ("missing digit 0", 1.0, lambda: all_images[all_labels != 0][:n]),
        ("missing 0 and 1", 2.0, lambda: all_images[(all_labels != 0) & (all_labels != 1)][:n]),
        ("single digit 3", 9.0, lambda: all_images[all_labels == 3][:n]),
        ("uniform noise", 1.0, lambda: uniform_noise(n, gen)),
        ("gaussian noise images", 1.0, lambda: gaussian_images(n, gen)),
        ("constant grey", 0.0, lambda: constant(n, 0.0)),
        ("constant black", -1.0, lambda: constant(n, -1.0)),
        ("random blobs", 1.0, lambda: blobs(n, gen)),
    ]
    rows = []
    for name, strength, make in tqdm(jobs, desc="scoring corrupted sets", disable=not progress):
        rows.append(ValidationRow(name, strength, evaluator.evaluate(make())))
    return rows


def as_records(rows: List[ValidationRow]) -> List[Dict[str, object]]:
    """Plain dicts (for a table or JSON)."""
    return [r.as_dict() for r in rows]


__all__ = ["ValidationRow", "FloorSpread", "floor_spread", "corruption_table", "as_records"]
