"""Do the two judges agree? Validation on corrupted real digits, and rankings of real samples.

The evaluator's main judge (a CNN) and its second (an MLP, a different kind of network) each give
an MNIST-FID. This script scores, at n = 1000:

1. the validation bench of notebook 04 (graded corruptions of real training images, whole-set
   failures, the floor's spread over 10 draws), with both judges;
2. sample sets of the shipped U-Net (``data/pretrained/unet_mnist.pt``) from DDIM with 10 and
   20 steps at eta 0 and 1 (drawn in chunks of 250, chunk i seeded with 1000 * seed + i),

and writes ``benchmarks/judges.json``. ``report.judge_section`` renders it as RESULTS.md's section
on where the two judges disagree (``python benchmarks/compare.py report`` puts it there). About 12
minutes on 2 CPU cores.

    python benchmarks/judges.py [--n 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ddpm_lib import ddim_sample, load_model, pretrained_path, seed_everything
from ddpm_lib.metrics import SampleEvaluator, corruption_table, floor_spread
from ddpm_lib.metrics.validation import as_records

ROOT = Path(__file__).resolve().parents[1]

SAMPLERS = [(steps, eta) for eta in (0.0, 1.0) for steps in (10, 20)]
CHUNK = 250  # one batch of 1000 spends most of its time allocating memory on a 2-core CPU


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
