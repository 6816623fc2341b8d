"""Do the two judges agree? Validation on corrupted real digits, and rankings of real samples.

The evaluator's main judge (a CNN) and its second (an MLP, a different kind of network) each give
an MNIST-FID. This script scores, at n = 1000:

1. the validation bench of notebook 04 (graded corruptions of real training images, whole-set
   failures, the floor's spread over 10 draws), with both judges;
2. sample sets of the shipped U-Net (``data/pretrained/unet_mnist.pt``) from DDIM with 10 and
   20 steps at eta 0 and 1 (drawn in chunks of 250, chunk i seeded with 1000 * seed + i),

and writes ``benchmarks/judges.json``. ``judge_section`` below renders it as RESULTS.md's section on
where the two judges disagree (``python benchmarks/compare.py report`` puts it there). About 12
minutes on 2 CPU cores.

    python benchmarks/judges.py [--n 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddpm_lib import ddim_sample, load_model, pretrained_path, seed_everything  # noqa: E402
from ddpm_lib.metrics import SampleEvaluator, corruption_table, floor_spread  # noqa: E402
from ddpm_lib.metrics.validation import as_records  # noqa: E402

SAMPLERS = [(steps, eta) for eta in (0.0, 1.0) for steps in (10, 20)]
CHUNK = 250  # one batch of 1000 spends most of its time allocating memory on a 2-core CPU


# --------------------------------------------------------------------------- RESULTS.md's section
def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long lists (no ties expected)."""
    def ranks(v):
        r = [0] * len(v)
        for rank, i in enumerate(sorted(range(len(v)), key=lambda i: v[i])):
            r[i] = rank
        return r

    ra, rb, n = ranks(a), ranks(b), len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))


def discordant_pairs(rows, key_a: str = "fid", key_b: str = "fid2"):
    """Pairs of rows that the two keys order differently."""
    return [(r, q) for i, r in enumerate(rows) for q in rows[i + 1:]
            if (r[key_a] - q[key_a]) * (r[key_b] - q[key_b]) < 0]


def judge_section(j: Dict) -> list:
    """RESULTS.md section from benchmarks/judges.py's output: where the CNN and MLP judges disagree."""
    n, fl, samples = j["n"], j["floor"], j["samples"]
    val = [r for r in j["validation"] if r["family"] != "real"]
    lines = ["## The two judges: where they agree and where they do not", "",
             f"Produced by `python benchmarks/judges.py` (n = {n}, seed {j['seed']}). Main judge: "
             f"{j['judges']['main']['kind'].upper()} ({j['judges']['main']['test_accuracy']:.2%} test accuracy); "
             f"second: {j['judges']['second']['kind'].upper()} ({j['judges']['second']['test_accuracy']:.2%}), "
             f"no convolutional prior. Real-data floor over 10 draws: MNIST-FID {fl['fid']['mean']:.2f} ± "
             f"{fl['fid']['std']:.2f}, MLP-FID {fl['fid2']['mean']:.2f} ± {fl['fid2']['std']:.2f}.", "",
             "| sample set (shipped U-Net) | seconds | MNIST-FID | MLP-FID | precision | recall | confident | not a digit |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s['sampler']} | {s['seconds']:.0f} | {s['fid']:.2f} | {s['fid2']:.2f} | {s['precision']:.3f} | "
              f"{s['recall']:.3f} | {s['confident_share']:.1%} | {s['rejected_share']:.1%} |" for s in samples]
    rho_s = spearman([s["fid"] for s in samples], [s["fid2"] for s in samples])
    rho_v = spearman([r["fid"] for r in val], [r["fid2"] for r in val])
    lines += ["", f"Rank agreement (Spearman) of the two MNIST-FIDs: {rho_s:.2f} over these {len(samples)} sample "
              f"sets, {rho_v:.2f} over the {len(val)} corrupted sets of the validation bench."]
    pairs = discordant_pairs(samples)
    if pairs:
        lines += ["", "Sample sets the judges order differently (MNIST-FID / MLP-FID; precision, recall):", ""]
        lines += [f"- {a['sampler']} ({a['fid']:.2f} / {a['fid2']:.2f}; {a['precision']:.2f}, {a['recall']:.2f}) vs "
                  f"{b['sampler']} ({b['fid']:.2f} / {b['fid2']:.2f}; {b['precision']:.2f}, {b['recall']:.2f})"
                  for a, b in pairs]
    else:
        lines += ["", "Both judges order all sample sets the same way."]
    by_family = {}
    for r in val:
        by_family.setdefault(r["family"], []).append(r)
    whole = [rows[0] for rows in by_family.values() if len(rows) == 1]
    lines += ["", "On the validation bench, each graded family's mildest step as a ratio to each judge's own floor "
              "(CNN / MLP), marked where one judge sees it more than twice as strongly:", ""]
    for fam, rows in ((f, rows) for f, rows in by_family.items() if len(rows) > 1):
        r = rows[0]
        q = r["fid_ratio"] / r["fid2_ratio"]
        mark = " (CNN more)" if q > 2 else " (MLP more)" if q < 0.5 else ""
        lines.append(f"- {fam} {r['strength']:g}: {r['fid_ratio']:.1f}x / {r['fid2_ratio']:.1f}x{mark}; strongest step "
                     f"{rows[-1]['fid_ratio']:.0f}x / {rows[-1]['fid2_ratio']:.0f}x")
    if whole:
        lo = min(min(r["fid_ratio"], r["fid2_ratio"]) for r in whole)
        lines += ["", "Whole-set failures (" + ", ".join(r["family"] for r in whole) + f") score at least {lo:.0f}x the "
                  "floor for both judges."]
    return lines


# --------------------------------------------------------------------------- the measurements
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "judges.json"))
    args = p.parse_args(argv)
    seed_everything(args.seed)
    evaluator = SampleEvaluator(device="cpu")
    out = {"n": args.n, "seed": args.seed, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "judges": {name: {"path": j.path, "kind": j.arch, "test_accuracy": j.test_accuracy}
                      for name, j in (("main", evaluator.classifier), ("second", evaluator.second))}}
    print("== floor spread and corruption bench")
    out["floor"] = floor_spread(evaluator, args.n, seeds=10).summary()
    out["validation"] = as_records(corruption_table(evaluator, args.n))
    model, schedule = load_model(pretrained_path("unet_mnist"), device="cpu")
    out["samples"] = []
    for steps, eta in SAMPLERS:
        start = time.perf_counter()
        x = torch.cat([ddim_sample(model, schedule, min(CHUNK, args.n - i), steps=steps, eta=eta,
                                   seed=1000 * args.seed + i // CHUNK, progress=False).cpu()
                       for i in range(0, args.n, CHUNK)])
        seconds = time.perf_counter() - start
        rep = evaluator.evaluate(x)
        out["samples"].append({"model": "unet_mnist.pt", "sampler": f"DDIM-{steps}, eta {eta:g}",
                               "seconds": seconds, **rep.as_dict()})
        print(f"DDIM-{steps} eta {eta:g} ({seconds:.0f}s): {rep}")
        Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
