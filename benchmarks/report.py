"""Render results.json as RESULTS.md's tables, results.png and samples.png.

RESULTS.md is written by hand except between marker comments, ``<!-- generated: NAME -->`` ...
``<!-- end generated -->``, whose contents ``write_report`` replaces (blocks ``tables``, ``curves``,
``judges``); a block without markers yet is appended. What the numbers mean is said in the prose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

NAMES = {"ours": "ddpm_lib U-Net (ours)", "ours_small": "ddpm_lib U-Net, small preset (ours)",
         "diffusers": "diffusers UNet2DModel (HF course)", "ddp": "denoising-diffusion-pytorch Unet"}
OURS = ("ours", "ours_small")  # our contenders: UNetConfig() and UNetConfig.small()
SHORT = {"ours": "default", "ours_small": "small preset"}
BAR_LABELS = {"ours": "ddpm_lib\ndefault", "ours_small": "ddpm_lib\nsmall preset", "diffusers": "diffusers\n(HF course)",
              "ddp": "denoising-\ndiffusion-\npytorch"}
BEGIN, END = "<!-- generated: {} -->", "<!-- end generated -->"


def _ours_first(res: Dict) -> list:
    """Contender names in display order: our models, then the peers."""
    return [n for n in OURS if n in res] + [n for n in res if n not in OURS]


def _pretty(label: str) -> str:
    """Sampler label to display: ddim50 -> DDIM-50, ddim50_eta1 -> DDIM-50, eta = 1, ddpm1000 -> DDPM-1000."""
    name = label.split("_")[0].replace("ddim", "DDIM-").replace("ddpm", "DDPM-")
    return name + (", eta = 1" if label.endswith("_eta1") else "")


def _calls(label: str) -> int:
    """Network evaluations per sample of a sampler label ("ddim50" -> 50, "ddpm1000" -> 1000)."""
    return int(label.replace("ddim", "").replace("ddpm", "").split("_")[0])


def _budgets(data: Dict) -> list:
    return [k for k in data if k.endswith("min")]


def first_judge_results(data: Dict) -> List[str]:
    """"budget contender sampler" of every sample set scored by the project's first judge (no MLP-FID)."""
    return [f"{b} {name} {label}" for b in _budgets(data) for name, r in data[b].items() if isinstance(r, dict)
            for label, s in r.get("samples", {}).items() if s.get("fid2") is None]


def headline(data: Dict) -> str:
    """The sampler label of the main table (compare.HEADLINE when the run was made; runs made before
    it was recorded used DDIM-50, eta = 0)."""
    return data.get("meta", {}).get("headline", "ddim50")


def main_table(res: Dict, main: str) -> list:
    """One row per trained contender: training numbers and the scores of its ``main`` sampler."""
    lines = ["| contender | parameters | images/s | iterations | train GFLOP/s (% of peak) | MNIST-FID (floor) | ratio | "
             "MLP-FID (floor) | precision / recall | confident | class entropy (bits) | sampling s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in _ours_first(res):
        r = res[name]
        if "steps" not in r:
            continue
        s = r.get("samples", {}).get(main)
        second = "- | -" if not s or s.get("fid2") is None else \
            f"{s['fid2']:.2f} ({s['fid2_floor']:.2f}) | {s['precision']:.2f} / {s['recall']:.2f}"
        scores = (f"{s['fid']:.2f} ({s['fid_floor']:.2f}) | {s['fid_ratio']:.2f}x | {second} | "
                  f"{s['confident_share']:.1%} | {s['entropy_bits']:.2f} | {s['seconds']:.0f}") if s else \
            "not sampled yet | | | | | |"
        lines.append(f"| {NAMES.get(name, name)} | {r['params'] / 1e6:.2f}M | {r['images_per_s']:.0f} | {r['steps']} | "
                     f"{r['train_gflops']:.0f} ({r['peak_fraction']:.0%}) | {scores} |")
    return lines


def curve_table(r: Dict) -> list:
    """One of our models: every DDIM (eta = 0 and eta = 1) and DDPM sampler, by sampling time."""
    rows = [f"| {_pretty(label)} | {s['seconds']:.0f} | {s['fid']:.2f} | {s['fid_ratio']:.2f}x | "
            f"{s['confident_share']:.1%} | {s['entropy_bits']:.2f} |"
            for label, s in sorted(r.get("samples", {}).items(), key=lambda kv: kv[1]["seconds"])
            if "_" not in label or label.endswith("_eta1")]
    return ["| sampler | seconds | MNIST-FID | ratio to floor | confident | class entropy |",
            "|---|---|---|---|---|---|", *rows]


def render(data: Dict, judges: Dict = None) -> Dict[str, list]:
    """The generated blocks of RESULTS.md: {marker name: lines}."""
    meta = data.get("meta", {})
    n, commands = meta.get("n"), meta.get("commands") or [meta.get("command", "python benchmarks/compare.py")]
    tables = ["| run | |", "|---|---|",
              "| commands (resumable stage by stage) | " + ", then ".join(f"`{c}`" for c in commands) + " |",
              f"| machine | {meta.get('threads')} CPU threads ({meta.get('cpu')}), torch {meta.get('torch')} |",
              f"| measured fp32 peak (2048x2048 matmul) | {meta.get('peak_gflops', float('nan')):.0f} GFLOP/s |"]
    curves = []
    for budget in _budgets(data):
        res, minutes = data[budget], budget.replace("min", " minutes")
        main = headline(data)
        title = _pretty(main) if main.endswith("_eta1") else _pretty(main) + " (eta 0)"
        tables += ["", f"## {minutes} of training each, n = {n} samples, {title}", "", *main_table(res, main)]
        for who in [w for w in OURS if len(res.get(w, {}).get("samples", {})) > 1]:  # a curve needs two points
            curves += ["", f"### {NAMES[who]}: sampler steps against quality and time ({minutes}, n = {n})", "",
                       *curve_table(res[who])]
    if first_judge_results(data):
        tables += ["", "Results without an MLP-FID (a dash) were scored by the project's first judge (a 10-class CNN, "
                   "before the evaluator was validated in notebook 04, with another feature space): their MNIST-FIDs "
                   "compare with each other, not with the validated judges' numbers. Rerun "
                   "`python benchmarks/compare.py` to score them anew."]
    blocks = {"tables": tables, "curves": curves[1:]}
    if judges:  # benchmarks/judges.py's study of the two judges
        blocks["judges"] = judge_section(judges)
    return blocks


# --------------------------------------------------------------------------- the judges' section
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


def fill(text: str, blocks: Dict[str, list]) -> str:
    """``text`` with each block's lines between its markers (appended with markers where it has none)."""
    for name, lines in blocks.items():
        begin = BEGIN.format(name)
        body = "\n".join([begin, "", *lines, "", END])
        start = text.find(begin)
        if start < 0:
            text = text.rstrip("\n") + "\n\n" + body + "\n"
        else:
            text = text[:start] + body + text[text.index(END, start) + len(END):]
    return text


def write_report(data: Dict, bench_dir: Path) -> None:
    """results.json, RESULTS.md's generated blocks (prose kept) and the two pictures in ``bench_dir``."""
    (bench_dir / "results.json").write_text(json.dumps(data, indent=1))
    judges = bench_dir / "judges.json"
    md = bench_dir / "RESULTS.md"
    text = md.read_text() if md.exists() else "# Benchmark results\n"
    md.write_text(fill(text, render(data, json.loads(judges.read_text()) if judges.is_file() else None)))
    if _budgets(data):
        plot(data, bench_dir)


def plot(data: Dict, bench_dir: Path) -> None:
    """results.png: each contender's main sampler against the floor, and our models' MNIST-FID against
    network calls per sample; samples.png: 16 samples of each contender's main sampler (from the run
    folder's grids)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ddpm_lib.files import read_weights_file

    budget, main = _budgets(data)[-1], headline(data)
    res = data[budget]
    curves = [(w, c) for w, c in zip(OURS, ("C0", "C1")) if len(res.get(w, {}).get("samples", {})) > 1]
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(11 if curves else 6, 3.8), squeeze=False)
    a = axes[0, 0]
    names = [k for k in _ours_first(res) if main in res[k].get("samples", {})]
    a.bar([BAR_LABELS.get(k, k) for k in names], [res[k]["samples"][main]["fid_ratio"] for k in names],
          color=["C0" if k == "ours" else "C1" if k in OURS else "C7" for k in names])
    a.axhline(1, color="k", lw=0.8, ls="--", label="real data (floor)")
    a.set(yscale="log", ylabel="MNIST-FID / real-data floor (lower is better)",
          title=f"{budget.replace('min', ' min')} CPU training each, {_pretty(main)}")
    a.legend()
    b = axes[0, -1]
    for who, color in curves:
        pts = sorted(res[who]["samples"].items(), key=lambda kv: _calls(kv[0]))
        line, eta1 = [(k, v) for k, v in pts if "_" not in k], [(k, v) for k, v in pts if k.endswith("_eta1")]
        b.plot([_calls(k) for k, _ in line], [v["fid"] for _, v in line], "o-", color=color,
               label=f"{SHORT[who]}: DDIM (eta = 0), DDPM")
        b.plot([_calls(k) for k, _ in eta1], [v["fid"] for _, v in eta1], "s", color=color, mfc="white",
               label=f"{SHORT[who]}: DDIM, eta = 1")
        for label, v in pts if who == "ours" else []:  # sampler names once, on the default's curve
            b.annotate(_pretty(label), (_calls(label), v["fid"]), textcoords="offset points",
                       xytext=(4, -12 if label.endswith("_eta1") else 4), fontsize=8)
        b.axhline(pts[0][1]["fid_floor"], color="k", lw=0.8, ls="--", label="real-data floor" if who == "ours" else None)
    if curves:
        b.set(xscale="log", yscale="log", xlabel="network calls per sample (sampling time is proportional)",
              ylabel=f"MNIST-FID, n = {data.get('meta', {}).get('n')}", title="ours: quality vs sampling cost")
        b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(bench_dir / "results.png", dpi=90)
    plt.close(fig)

    runs = Path(data.get("meta", {}).get("out", bench_dir / "runs"))
    grids = [(k, runs / f"grid_{k}_{budget}_{main}.pt") for k in _ours_first(res)]
    grids = [(k, g) for k, g in grids if g.exists()]
    if grids:
        fig, axes = plt.subplots(len(grids), 1, figsize=(8, 1.0 * len(grids) + 0.3), squeeze=False)
        for ax, (k, g) in zip(axes[:, 0], grids):
            x = read_weights_file(g, "sample grid file")[:16]
            ax.imshow(torch.cat(list(((x + 1) / 2).clamp(0, 1)[:, 0]), dim=1), cmap="gray")
            ax.set_axis_off()
            ax.set_title(NAMES.get(k, k), fontsize=9, loc="left")
        fig.tight_layout()
        fig.savefig(bench_dir / "samples.png", dpi=90)
        plt.close(fig)
