"""benchmarks/: RESULTS.md's tables are rendered from results.json between markers, the prose around
them is left alone; the benchmark's cache and its one-sitting sampling order."""

import json
from pathlib import Path

import pytest
import torch

import ddpm_lib
from benchmarks import compare, report

BENCH = Path(compare.__file__).parent


def _sample(fid: float, seconds: float, fid2=None) -> dict:
    s = {"fid": fid, "fid_floor": 0.5, "fid_ratio": fid / 0.5, "confident_share": 0.6, "entropy_bits": 3.2,
         "seconds": seconds, "fid2": fid2}
    if fid2 is not None:
        s.update(fid2_floor=0.55, precision=0.7, recall=0.6)
    return s


def _trained(params: float, steps: int, images_per_s: float, samples: dict) -> dict:
    return {"params": params, "steps": steps, "images_per_s": images_per_s, "train_gflops": 60.0,
            "peak_fraction": 0.4, "samples": samples}


def _data(fid2=1.2) -> dict:
    return {"meta": {"n": 500, "peak_gflops": 150.0, "threads": 2, "cpu": "x86_64", "torch": "2.x",
                     "commands": ["python benchmarks/compare.py --minutes 20", "python benchmarks/compare.py --only ddp"]},
            "20min": {"ddp": _trained(2e6, 5, 40.0, {"ddim50": _sample(4.0, 300.0, fid2),
                                                     "ddim50_eta1": _sample(3.0, 310.0, fid2)}),
                      "ours_small": _trained(5e5, 40, 300.0, {
                          "ddpm1000": _sample(1.0, 600.0, fid2), "ddim10": _sample(3.0, 6.0, fid2),
                          "ddim50": _sample(1.5, 30.0, fid2), "ddim50_eta1": _sample(1.1, 31.0, fid2)}),
                      "diffusers": {}}}  # not trained yet: no row


def _between(text: str, name: str) -> str:
    return text.split(report.BEGIN.format(name))[1].split(report.END)[0]


def test_tables_from_a_small_results_dict():
    blocks = report.render(_data())
    rows = [line for line in blocks["tables"] if line.startswith("| ") and "---" not in line]
    assert "`python benchmarks/compare.py --only ddp`" in rows[1]  # every command of a resumed run
    assert "| 150 GFLOP/s |" in rows[3]
    assert rows[5] == ("| ddpm_lib U-Net, small preset (ours) | 0.50M | 300 | 40 | 60 (40%) | 1.50 (0.50) | 3.00x | "
                       "1.20 (0.55) | 0.70 / 0.60 | 60.0% | 3.20 | 30 |")  # ours first, its DDIM-50 (eta 0)
    assert rows[6].startswith("| denoising-diffusion-pytorch Unet | 2.00M | 40 | 5 |") and "| 8.00x |" in rows[6]
    assert len(rows) == 7 and not any("diffusers" in r for r in rows)
    assert any("20 minutes" in line and "n = 500" in line for line in blocks["tables"])
    curve = [line.split(" | ")[:2] for line in blocks["curves"] if line.startswith("| DD")]
    assert curve == [["| DDIM-10", "6"], ["| DDIM-50", "30"], ["| DDIM-50, eta = 1", "31"], ["| DDPM-1000", "600"]]
    assert "### ddpm_lib U-Net, small preset (ours)" in "\n".join(blocks["curves"])
    assert "denoising-diffusion-pytorch" not in "\n".join(blocks["curves"])  # curves are ours only


def test_the_main_table_shows_the_sampler_the_run_recorded():
    data = _data()
    data["meta"]["headline"] = "ddim20_eta1"  # compare.HEADLINE, recorded by the run
    data["20min"]["ddp"]["samples"] = {"ddim20_eta1": _sample(2.0, 20.0, 1.2)}
    data["20min"]["ours_small"]["samples"] = {"ddim20_eta1": _sample(1.0, 10.0, 1.2)}
    blocks = report.render(data)
    assert any(line == "## 20 minutes of training each, n = 500 samples, DDIM-20, eta = 1" for line in blocks["tables"])
    rows = [line for line in blocks["tables"] if line.startswith("| ddpm_lib") or line.startswith("| denoising")]
    assert "| 1.00 (0.50) | 2.00x |" in rows[0] and "| 2.00 (0.50) | 4.00x |" in rows[1]
    assert blocks["curves"] == []  # one sampler per model: no curve to draw
    assert report.headline(_data()) == "ddim50"  # runs made before the headline was recorded


def test_a_contender_not_sampled_yet_keeps_its_training_row():
    data = _data()
    data["20min"]["ddp"]["samples"] = {}
    row = next(line for line in report.render(data)["tables"] if line.startswith("| denoising"))
    assert row.startswith("| denoising-diffusion-pytorch Unet | 2.00M | 40 | 5 | 60 (40%) | not sampled yet")


def test_results_scored_by_the_first_judge_are_flagged():
    data = _data(fid2=None)
    data["20min"]["ddp"]["samples"]["ddim50"] = _sample(4.0, 300.0, fid2=2.0)  # rescored by both judges
    assert report.first_judge_results(data) == [
        "20min ddp ddim50_eta1", *(f"20min ours_small {k}" for k in ("ddpm1000", "ddim10", "ddim50", "ddim50_eta1"))]
    tables = report.render(data)["tables"]
    small = next(line for line in tables if line.startswith("| ddpm_lib"))
    assert "| 3.00x | - | - | 60.0% |" in small
    assert "| 8.00x | 2.00 (0.55) | 0.70 / 0.60 |" in next(line for line in tables if line.startswith("| denoising"))
    assert "first judge" in tables[-1]
    assert report.first_judge_results(_data()) == []
    assert not any("first judge" in line for line in report.render(_data())["tables"])


def test_prose_outside_the_markers_is_kept(tmp_path):
    prose = ["# Benchmark results", "", "Written by hand: DDIM-50 is *fast*.", "",
             report.BEGIN.format("tables"), "stale table", report.END, "", "Between the blocks, by hand.", "",
             report.BEGIN.format("curves"), report.END, "", "Closing words.", ""]
    (tmp_path / "RESULTS.md").write_text("\n".join(prose))
    data = _data()
    data["meta"]["out"] = str(tmp_path / "runs")
    report.write_report(data, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "stale table" not in text and "| ddpm_lib U-Net, small preset (ours) | 0.50M |" in _between(text, "tables")
    assert "| DDPM-1000 | 600 |" in _between(text, "curves")
    outside = text
    for name in ("tables", "curves"):
        outside = outside.replace(_between(text, name), "\n")
    assert outside == "\n".join(prose).replace("stale table\n", "")
    assert json.loads((tmp_path / "results.json").read_text()) == data and (tmp_path / "results.png").exists()
    report.write_report(data, tmp_path)
    assert (tmp_path / "RESULTS.md").read_text() == text  # idempotent


def test_a_new_results_file_gets_every_block_appended(tmp_path):
    (tmp_path / "judges.json").write_text((BENCH / "judges.json").read_text())
    data = _data()
    data["1min"] = data.pop("20min")  # a smoke run
    report.write_report(data, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.startswith("# Benchmark results")
    assert [text.index(report.BEGIN.format(b)) for b in ("tables", "curves", "judges")] == \
        sorted(text.index(report.BEGIN.format(b)) for b in ("tables", "curves", "judges"))
    assert "## 1 minutes of training each" in text and "## The two judges" in _between(text, "judges")


def test_the_committed_results_render_the_committed_tables():
    """The committed results.json (with chunk timings the report ignores) gives exactly the tables
    committed in RESULTS.md."""
    data = json.loads((BENCH / "results.json").read_text())
    text = (BENCH / "RESULTS.md").read_text()
    blocks = report.render(data, json.loads((BENCH / "judges.json").read_text()))
    assert set(blocks) == {"tables", "curves", "judges"}
    assert report.fill(text, blocks) == text
    assert ("| ddpm_lib U-Net, small preset (ours) | 0.65M | 166 | 1560 | 62 (45%) | 6.27 (0.58) | 10.85x | "
            "4.58 (0.50) | 0.68 / 0.83 | 73.8% | 3.30 | 42 |") in text
    assert "DDIM-20, eta = 1" in _between(text, "tables")
    assert "first judge" not in _between(text, "tables")  # every contender scored by both validated judges


def test_results_file_keeps_stages_added_through_references_taken_before_a_save(tmp_path):
    run = compare.Run(tmp_path)
    contender = run.data.setdefault("20min", {}).setdefault("ours_small", {})
    samples = contender.setdefault("samples", {})
    for label in ("ddim50", "ddim10"):  # one save per stage
        samples[label] = {"fid": 1.0}
        run.save()
    other = compare.Run(tmp_path)  # another invocation adds a stage of its own, then this run saves again
    other.data["20min"]["ddp"] = {"steps": 5}
    other.save()
    samples["ddpm1000"] = {"fid": 2.0}
    run.save()
    on_disk = compare.Run(tmp_path).data["20min"]
    assert set(on_disk["ours_small"]["samples"]) == {"ddim50", "ddim10", "ddpm1000"}
    assert on_disk["ddp"] == {"steps": 5}


class _Report:
    def __init__(self, x):
        self.x = x

    def as_dict(self):
        return {"fid": float(self.x.mean()), "n": len(self.x)}


class _Evaluator:
    def evaluate(self, x):
        return _Report(x)


def test_all_samplers_of_a_model_are_drawn_chunk_by_chunk_in_turn(tmp_path, monkeypatch):
    calls = []

    def fake(curve):
        net = torch.nn.Linear(1, 1)

        def draw(label, value):
            return lambda n, seed: calls.append((label, n, seed)) or torch.full((n, 1, 28, 28), value + net.bias.item())
        return net, None, {"a": draw("a", 0.0), "b": draw("b", 1.0)}

    monkeypatch.setitem(compare.CONTENDERS, "fake", fake)
    monkeypatch.setattr(compare, "CHUNK", 4)
    run = compare.Run(tmp_path)
    run.data["1min"] = {"fake": {"steps": 1}}
    net = torch.nn.Linear(1, 1)
    torch.nn.init.constant_(net.bias, 0.5)  # the trained weights are loaded before sampling
    torch.save(net.state_dict(), tmp_path / "fake_1min.pt")
    compare.sample_and_score(run, "fake", "1min", 10, 2, (), _Evaluator())
    assert calls == [("a", 4, 2000), ("b", 4, 2000), ("a", 4, 2001), ("b", 4, 2001), ("a", 2, 2002), ("b", 2, 2002)]
    samples = compare.Run(tmp_path).data["1min"]["fake"]["samples"]
    assert samples["a"]["fid"] == pytest.approx(0.5) and samples["b"]["fid"] == pytest.approx(1.5)
    assert samples["a"]["n"] == 10 and len(samples["a"]["chunk_seconds"]) == 3
    assert samples["a"]["seconds"] == pytest.approx(sum(samples["a"]["chunk_seconds"]))
    del run.data["1min"]["fake"]["samples"]["b"]  # a stage to redo: its chunks come from the cache
    calls.clear()
    compare.sample_and_score(run, "fake", "1min", 10, 2, (), _Evaluator())
    assert calls == [] and run.data["1min"]["fake"]["samples"]["b"]["fid"] == pytest.approx(1.5)


def test_our_contenders_samplers():
    model, loss, draws = compare.CONTENDERS["ours_small"]((10, 50, 1000))
    assert loss is None  # the Trainer's default recipe
    assert compare.HEADLINE == "ddim20_eta1"  # DDIM-20 with eta = 1, drawn for every contender
    assert set(draws) == {"ddim20_eta1", "ddim10", "ddim50", "ddpm1000"}
    x = draws["ddim10"](2, seed=0)
    assert x.shape == (2, 1, 28, 28) and torch.equal(x, draws["ddim10"](2, seed=0))
    headline = draws["ddim20_eta1"](2, seed=3)
    assert torch.equal(headline, ddpm_lib.sample(model, ddpm_lib.make_schedule(ddpm_lib.DiffusionConfig()), 2,
                                                 sampler="ddim", eta=1.0, spacing="even", seed=3, progress=False))


def test_spearman_and_discordant_pairs():
    assert report.spearman([1, 2, 3], [10, 20, 30]) == 1.0
    assert report.spearman([1, 2, 3], [30, 20, 10]) == -1.0
    assert report.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    rows = [{"fid": 1, "fid2": 1}, {"fid": 2, "fid2": 3}, {"fid": 3, "fid2": 2}]
    assert report.discordant_pairs(rows) == [(rows[1], rows[2])]


def test_judge_section_names_the_sets_the_judges_order_differently():
    def s(name, fid, fid2):
        return {"sampler": name, "seconds": 10.0, "fid": fid, "fid2": fid2, "precision": 0.7, "recall": 0.6,
                "confident_share": 0.8, "rejected_share": 0.01}

    study = {"n": 1000, "seed": 0, "floor": {k: {"mean": 0.6, "std": 0.1} for k in ("fid", "fid2")},
             "judges": {"main": {"kind": "cnn", "test_accuracy": 0.996}, "second": {"kind": "mlp", "test_accuracy": 0.99}},
             "validation": [{"family": "real", "strength": 0, "fid": 0.6, "fid2": 0.5, "fid_ratio": 1, "fid2_ratio": 1},
                            {"family": "blur", "strength": 0.7, "fid": 15.0, "fid2": 4.0, "fid_ratio": 25.0, "fid2_ratio": 8.0},
                            {"family": "blur", "strength": 1.0, "fid": 40.0, "fid2": 15.0, "fid_ratio": 70.0, "fid2_ratio": 30.0}],
             "samples": [s("DDIM-10, eta 0", 9.0, 5.0), s("DDIM-50, eta 0", 5.0, 6.0), s("DDIM-50, eta 1", 3.0, 2.0)]}
    text = "\n".join(report.judge_section(study))
    assert "blur 0.7: 25.0x / 8.0x (CNN more); strongest step 70x / 30x" in text
    assert "- DDIM-10, eta 0 (9.00 / 5.00; 0.70, 0.60) vs DDIM-50, eta 0 (5.00 / 6.00; 0.70, 0.60)" in text
    assert "DDIM-50, eta 1 (3.00" not in text  # ordered the same way by both: not listed
