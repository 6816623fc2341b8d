"""The evaluator is an instrument: it must react to the failures it is meant to catch.

Real training images with graded corruptions, scored at n = 1000 against the spread of the
real-data floor over seeds (Heusel et al. 2017, Sec. 4, validated FID the same way). The
thresholds below were measured with the shipped judges (numbers in notebook 04 and
benchmarks/RESULTS.md), with margins taken from that measurement, not guessed.
"""

import numpy as np
import pytest
import torch

from ddpm_lib import load_mnist
from ddpm_lib.metrics import (corruption_table, corruptions, floor_spread,
                              knn_radii, manifold_share, precision_recall)

N = 1000  # the n every quality number of the project is quoted at


@pytest.fixture(scope="module")
def evaluator(shipped_evaluator):
    return shipped_evaluator


@pytest.fixture(scope="module")
def spread(evaluator):
    return floor_spread(evaluator, N, seeds=5)


@pytest.fixture(scope="module")
def table(evaluator):
    rows = corruption_table(evaluator, N, progress=False)
    return {(r.family, r.strength): r.report for r in rows}


# ------------------------------------------------------------------ precision / recall
def _brute_force_pr(real, fake, k):
    def radii(a):
        d = np.linalg.norm(a[:, None] - a[None], axis=-1)
        return np.sort(d, axis=1)[:, k]

    def share(q, ref, r):
        d = np.linalg.norm(q[:, None] - ref[None], axis=-1)
        return float(np.mean([(d[i] <= r).any() for i in range(len(q))]))

    return share(fake, real, radii(real)), share(real, fake, radii(fake))


def test_precision_recall_match_a_brute_force_reference():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 5))
    fake = rng.normal(size=(90, 5)) * 1.5 + 0.7
    p, r = precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=3)
    ref_p, ref_r = _brute_force_pr(real, fake, 3)
    assert (p, r) == pytest.approx((ref_p, ref_r), abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1


def test_precision_recall_identities():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x) == (1.0, 1.0)  # every point lies in its own ball
    assert knn_radii(x, 1).min() > 0
    far = x + 100.0
    assert precision_recall(x, far) == (0.0, 0.0)
    # a generator that covers one half of the real set: perfect precision, about half the recall
    half = x[x[:, 0] > 0]
    p, r = precision_recall(x, half)
    assert p == 1.0 and 0.3 < r < 0.8
    assert manifold_share(half, x, knn_radii(x)) == 1.0
    with pytest.raises(ValueError, match="k = 3"):
        knn_radii(x[:3], 3)


# ------------------------------------------------------------------ corruptions are what they say
def test_corruptions_keep_the_range_and_grow_with_strength():
    real = load_mnist(subset=64).tensors[0]
    for name, (fn, strengths, _unit) in corruptions.FAMILIES.items():
        change = []
        for s in strengths:
            y = fn(real, s, torch.Generator().manual_seed(0))
            assert y.shape == real.shape and y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6, name
            change.append((y - real).abs().mean().item())
        assert change[0] > 0.001 and all(a < b for a, b in zip(change, change[1:])), (name, change)
    assert torch.equal(corruptions.shift(real, 0), real) and torch.equal(corruptions.blur(real, 0), real)
    assert torch.allclose(corruptions.rotate(real, 0.0), real, atol=1e-5)
    assert corruptions.thicken(real, 1).sum() > real.sum() > corruptions.thin(real, 1).sum()
    assert torch.equal(corruptions.thin(corruptions.thicken(real, 0), 0), real)


# ------------------------------------------------------------------ the validation suite
@pytest.mark.slow
def test_real_images_score_within_the_floor_spread(spread, table):
    real = table[("real", 0.0)]
    s = spread.summary()
    assert s["fid"]["max"] < 1.5 * s["fid"]["min"], s  # the floor itself is stable over seeds
    assert real.fid < s["fid"]["max"] * 1.2 and real.fid2 < s["fid2"]["max"] * 1.2, (real, s)
    assert real.confident_share > 0.96 and real.rejected_share < 0.01, real
    assert real.entropy_bits > 3.3 and real.precision > 0.6 and real.recall > 0.6, real


@pytest.mark.slow
@pytest.mark.parametrize("family", list(corruptions.FAMILIES))
def test_each_corruption_family_rises_monotonically_above_the_floor(family, spread, table):
    strengths = corruptions.FAMILIES[family][1]
    fids = [table[(family, float(s))].fid for s in strengths]
    assert all(a < b for a, b in zip(fids, fids[1:])), (family, fids)
    # the mildest visible step stands clearly above the floor's spread over seeds
    floor = spread.summary()["fid"]
    assert fids[0] > floor["max"] + MILDEST_MARGIN_SD * floor["std"], (family, fids[0], floor)
    assert fids[0] > MILDEST_MIN_RATIO * floor["max"], (family, fids[0], floor)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gaussian noise", "speckle", "blur"])
def test_second_judge_also_sees_the_mildest_noise_speckle_and_blur(family, spread, table):
    strengths = corruptions.FAMILIES[family][1]
    fid2 = [table[(family, float(s))].fid2 for s in strengths]
    assert all(a < b for a, b in zip(fid2, fid2[1:])), (family, fid2)
    floor2 = spread.summary()["fid2"]
    assert fid2[0] > floor2["max"] + 3 * floor2["std"], (family, fid2, floor2)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gaussian noise", "speckle", "blur"])
def test_precision_falls_with_corruption(family, table):
    strengths = corruptions.FAMILIES[family][1]
    precision = [table[("real", 0.0)].precision] + [table[(family, float(s))].precision for s in strengths]
    assert all(a >= b for a, b in zip(precision, precision[1:])), (family, precision)
    assert precision[-1] < precision[0] - 0.2, (family, precision)


@pytest.mark.slow
def test_missing_and_single_classes_lower_recall_and_entropy(table):
    real = table[("real", 0.0)]
    one, two, single = (table[("missing digit 0", 1.0)], table[("missing 0 and 1", 2.0)],
                        table[("single digit 3", 9.0)])
    assert real.recall > one.recall > two.recall > single.recall, (real, one, two, single)
    assert real.recall - two.recall > 0.1
    assert one.histogram[0] < 0.01 * N and single.entropy_bits < 0.2
    assert one.precision > 0.6 and single.precision > 0.6  # the digits that are there still look real
    assert one.fid > real.fid and single.fid > 10 * real.fid


@pytest.mark.parametrize("name", ["uniform noise", "gaussian noise images", "constant grey",
                                  "constant black", "random blobs"])
@pytest.mark.slow
def test_noise_blanks_and_blobs_are_not_confident_digits(name, table):
    rep = next(r for (fam, _), r in table.items() if fam == name)
    assert rep.confident_share <= 0.01, rep
    assert rep.rejected_share >= 0.95, rep
    assert rep.precision < 0.1 and rep.fid > 50 * table[("real", 0.0)].fid, rep


@pytest.mark.slow
def test_heavily_corrupted_digits_are_not_confident(evaluator):
    digits = load_mnist(subset=500).tensors[0]
    gen = torch.Generator().manual_seed(3)
    for damaged in (corruptions.gaussian_noise(digits, 1.5, gen), corruptions.speckle(digits, 0.5, gen),
                    corruptions.blur(digits, 3.0)):
        rep = evaluator.evaluate(damaged)
        assert rep.confident_share <= 0.05, rep


# Measured with the shipped judges at n = 1000: floor over 10 seeds 0.65 +- 0.12 (max 0.89); the
# mildest steps score 2.8 (thicken 1 px) to 15.5 (blur 0.7), i.e. >= 3.2x the floor's maximum.
MILDEST_MARGIN_SD = 5.0
MILDEST_MIN_RATIO = 2.0
