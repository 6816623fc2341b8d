"""benchmarks/studies.py shipped: the study that scores the shipped weights writes the structure
notebooks 03-05 read from benchmarks/studies/shipped.json, replaces only the sections it
computed, and refuses sections it has no checkpoint for; one row of it scored by the real
evaluator."""

import json
import sys
from pathlib import Path

import pytest
import torch

from ddpm_lib import DiffusionConfig, TrainConfig, Trainer, UNet, UNetConfig, load_mnist, make_schedule, sample
from ddpm_lib.metrics import QualityReport, build_classifier

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import studies  # noqa: E402

N = 20  # the study's least n is 10 (every digit asked for); the evaluator's precision needs n > k = 3


class CheapEvaluator:
    """Stands in for SampleEvaluator where the study's bookkeeping is under test (22 rows): a real
    QualityReport of simple statistics, and an untrained judge for the per-digit shares. The
    real evaluator scores a row in test_a_shipped_row_is_scored_by_the_real_evaluator."""

    def __init__(self, device=None):
        torch.manual_seed(0)
        self.classifier = build_classifier("mlp")
        self.asked = []

    def evaluate(self, samples, digits=None):
        self.asked.append(None if digits is None else digits.tolist())
        n = len(samples)
        return QualityReport(n=n, fid=float(samples.std()), fid_floor=0.5, confident_share=0.5, entropy_bits=3.0,
                             histogram=[n // 10] * 10, accuracy=None if digits is None else 0.1, fid2=1.0,
                             fid2_floor=0.5, precision=0.5, recall=0.5, rejected_share=0.0)


def _snapshots(config: UNetConfig, folder: Path, data) -> list:
    """A tiny U-Net trained 1 then 2 steps (T = 100 keeps ddpm1000 short), a checkpoint after each."""
    torch.manual_seed(0)
    trainer = Trainer(UNet(config), DiffusionConfig(T=100), TrainConfig.quick(steps=1, batch_size=8), device="cpu")
    paths = []
    for steps in (1, 2):
        trainer.config.steps = steps
        trainer.fit(data, progress=False)
        paths.append(trainer.save(folder / f"step{steps}.pt"))
    return [str(p) for p in paths]


def test_shipped_study_writes_the_sections_notebooks_read_and_keeps_the_rest(tiny_unet_config, tmp_path, monkeypatch):
    data = load_mnist(train=False, subset=32, seed=0)
    unet = _snapshots(tiny_unet_config, tmp_path / "unet", data)
    cond = _snapshots(UNetConfig(**{**tiny_unet_config.__dict__, "num_classes": 10}), tmp_path / "cond", data)
    out = tmp_path / "shipped.json"
    out.write_text(json.dumps({"study": "shipped", "commands": {"cond_unet": "made the old way"}, "note": "old note",
                               "previous_cond_unet": [{"name": "kept"}], "unet": [{"name": "stale"}]}))
    evaluator = CheapEvaluator()
    monkeypatch.setattr(studies, "SampleEvaluator", lambda device=None: evaluator)

    studies.main(["shipped", "--unet", unet[-1], "--cond", cond[-1], "--unet-snapshots", *unet[::-1],
                  "--cond-snapshots", *cond, "--n", str(N), "--out", str(out), "--device", "cpu",
                  "--command-unet", "python -m ddpm_lib train --steps 2"])

    got = json.loads(out.read_text())
    assert got["previous_cond_unet"] == [{"name": "kept"}] and got["note"] == "old note"
    assert got["commands"] == {"cond_unet": "made the old way", "unet": "python -m ddpm_lib train --steps 2"}
    assert got["device"] == "cpu" and got["torch"] == torch.__version__
    assert got["devices"] == {k: f"cpu, torch {torch.__version__}" for k in studies.SHIPPED_SECTIONS.values()}
    assert [r["name"] for r in got["unet"]] == studies.SHIPPED_SAMPLERS + ["ddim20_eta1_seed1", "ddpm1000_seed1",
                                                                           "sde20_trail_seed1", "sde20_trail_seed2"]
    assert [r["seed"] for r in got["unet"][-4:]] == [1, 1, 1, 2]
    assert got["unet"][studies.SHIPPED_SAMPLERS.index("sde20_trail")]["sampler"] == "dpm++sde"

    assert [r["name"] for r in got["cond_unet"]] == ["w0.0", "w0.5", "w1.0", "w2.0", "w3.0",
                                                     "w0.0_ddim20_eta0", "w1.0_ddim20_eta0"]
    assert [r["guidance"] for r in got["cond_unet"]] == [0.0, 0.5, 1.0, 2.0, 3.0, 0.0, 1.0]
    assert {r["sampler"] for r in got["cond_unet"][:5]} == {"dpm++sde"}  # the guidance sweep uses the default
    from ddpm_lib import SamplerConfig
    assert studies.sampler_setting(studies.DEFAULT_SAMPLER) == \
        (SamplerConfig.sampler, SamplerConfig.steps, 0.0, SamplerConfig.spacing)
    for key in ("unet_training_curve", "cond_unet_training_curve"):  # sorted by step whatever the order given
        assert [(r["name"], r["train_step"]) for r in got[key]] == [("step1", 1), ("step2", 2)]
    # each row has the keys, in order, of the committed file's rows: the notebooks read those
    committed = json.loads((BENCH / "studies" / "shipped.json").read_text())
    for key in ("unet", "cond_unet", "unet_training_curve", "cond_unet_training_curve"):
        assert all(list(r) == list(committed[key][0]) for r in got[key]), key
        assert all(r["n"] == N and len(r["histogram"]) == 10 for r in got[key])
    ddpm = got["unet"][studies.SHIPPED_SAMPLERS.index("ddpm1000")]
    assert (ddpm["sampler"], ddpm["steps"], ddpm["seed"]) == ("ddpm", 1000, 0)
    for r in got["cond_unet"] + got["cond_unet_training_curve"]:  # 2 samples asked of each digit
        assert len(r["per_digit"]) == 10 and all(a in (0.0, 0.5, 1.0) for a in r["per_digit"])
    assert all(r["accuracy"] is None and "per_digit" not in r for r in got["unet"] + got["unet_training_curve"])
    digits = list(range(10)) * (N // 10)  # the conditional rows ask for digits 0..9 in turn, the others none
    assert evaluator.asked == [None] * 19 + [digits] * 7 + [None] * 2 + [digits] * 2

    samples = torch.load(out.with_suffix(".samples.pt"), weights_only=True)
    assert list(samples) == studies.SHIPPED_SAMPLERS
    assert all(x.dtype == torch.float16 and x.shape == (N, 1, 28, 28) for x in samples.values())

    # --unet-samplers recomputes only the rows named and keeps the others, in the section's order
    before = {r["name"]: r for r in got["unet"]}
    grids_before = torch.load(out.with_suffix(".samples.pt"))
    studies.main(["shipped", "--unet", unet[0], "--only", "unet", "--unet-samplers", "dpm20", "sde20_trail_seed2",
                  "--n", str(N), "--out", str(out), "--device", "cpu"])
    again = json.loads(out.read_text())
    assert [r["name"] for r in again["unet"]] == list(before)
    changed = {name for name, r in before.items() if again["unet"][list(before).index(name)] != r}
    assert changed <= {"dpm20", "sde20_trail_seed2"} and "dpm20" in changed  # another checkpoint: other images
    grids = torch.load(out.with_suffix(".samples.pt"))
    assert list(grids) == list(grids_before) and not torch.equal(grids["dpm20"], grids_before["dpm20"])
    assert torch.equal(grids["sde20_trail"], grids_before["sde20_trail"])
    with pytest.raises(ValueError, match="not rows of the unet section"):
        studies.main(["shipped", "--unet", unet[0], "--only", "unet", "--unet-samplers", "euler20",
                      "--n", str(N), "--out", str(out), "--device", "cpu"])


def test_shipped_sections_follow_the_inputs_given():
    given = {"unet": True, "cond": False, "unet_curve": True, "cond_curve": False}
    assert studies.shipped_sections(None, given) == ["unet", "unet_curve"]
    assert studies.shipped_sections("unet_curve", given) == ["unet_curve"]
    with pytest.raises(ValueError, match="cond"):
        studies.shipped_sections("cond", given)  # asked for, but no --cond checkpoint
    with pytest.raises(ValueError, match="unknown section"):
        studies.shipped_sections("unet,uncond", given)


def test_a_shipped_row_is_scored_by_the_real_evaluator(tiny_unet_config, shipped_evaluator):
    torch.manual_seed(0)
    model = UNet(UNetConfig(**{**tiny_unet_config.__dict__, "num_classes": 10}))
    schedule, y = make_schedule(T=100), torch.arange(N) % 10
    row, x = studies.shipped_row("w1.0", "ddim20_eta1", model, schedule, n=N, seed=3, evaluator=shipped_evaluator,
                                 y=y, guidance=1.0)
    # the images are the library's sampler's, labels and guidance passed through
    assert torch.equal(x, sample(model, schedule, N, sampler="ddim", steps=20, eta=1.0, spacing="even", seed=3, y=y, guidance=1.0,
                                 progress=False).cpu())
    assert {k: row[k] for k in ("name", "sampler", "steps", "eta", "spacing", "guidance", "seed", "n")} == \
        {"name": "w1.0", "sampler": "ddim", "steps": 20, "eta": 1.0, "spacing": "even", "guidance": 1.0, "seed": 3, "n": N}
    assert row["fid_floor"] == round(shipped_evaluator.fid_floor(N), 5) and row["fid"] > 0 and row["recall"] is not None
    # per_digit reads the samples as the evaluator does: its accuracy is their mean (2 asked of each digit)
    assert row["accuracy"] == pytest.approx(sum(row["per_digit"]) / 10, abs=1e-4)
    assert sum(row["histogram"]) + round(row["rejected_share"] * N) == N


def test_more_draws_scores_new_seeds_and_with_mean_averages_every_number(tiny_unet_config):
    """--draws k: the default sampler scored again with seeds 1 .. k-1 (other noise, so other images)
    and a _mean row whose numbers are the plain averages over all k draws."""
    torch.manual_seed(0)
    model, schedule = UNet(tiny_unet_config), make_schedule(DiffusionConfig(T=100))
    grids = {}
    res = studies.score("m", model, schedule, ["ddim5_eta1"], n=N, evaluator=CheapEvaluator(), grids=grids)
    res.update(studies.more_draws("m", model, schedule, "ddim5_eta1", 3, n=N, evaluator=CheapEvaluator(),
                                  grids=grids))
    assert set(res) == {"ddim5_eta1", "ddim5_eta1_seed1", "ddim5_eta1_seed2"}
    assert [res[k]["seed"] for k in sorted(res)] == [0, 1, 2]
    fids = [res[k]["fid"] for k in ("ddim5_eta1", "ddim5_eta1_seed1", "ddim5_eta1_seed2")]
    assert len(set(fids)) == 3  # CheapEvaluator's "fid" is the images' std: three different draws
    mean = studies.with_mean(res, "ddim5_eta1")["ddim5_eta1_mean"]
    assert mean["fid"] == pytest.approx(sum(fids) / 3, abs=1e-4)
    assert mean["draws"] == 3 and mean["seeds"] == [0, 1, 2] and mean["precision"] == pytest.approx(0.5)


def test_batch_steps_keeps_the_training_time_of_the_20_minute_budget():
    """A smaller batch gets more steps in the same time: images/s ratio x 128 / batch."""
    assert studies.batch_steps(2634, 64) == round(2634 * 2 * 1.04)
    assert studies.batch_steps(2634, 32) == round(2634 * 4 * 0.87)
    names = [row[0] for row in studies.recipe_plan(quick=False)]
    assert {"min_snr5", "min_snr5_batch64", "min_snr5_batch32"} <= set(names)
    assert all(len(row) == 9 for row in studies.recipe_plan(quick=True))


def test_recipe_study_with_only_keeps_the_other_runs_and_their_samples(tiny_unet_config, tmp_path, monkeypatch):
    """Two --only runs into one file: the second keeps the first run's row and its sample grids,
    and each row records where it ran. Training is stubbed (an untrained tiny U-Net): the
    bookkeeping is under test, not the recipe."""
    def fake_train(cfg, steps, **kw):
        torch.manual_seed(0)
        return {"model": UNet(tiny_unet_config), "schedule": make_schedule(DiffusionConfig(T=100)),
                "facts": {"steps": steps, "batch_size": kw["batch_size"], "lr": kw["lr"]}}
    monkeypatch.setattr(studies, "train", fake_train)
    monkeypatch.setattr(studies, "SampleEvaluator", lambda device=None: CheapEvaluator())
    monkeypatch.setattr(studies, "load_mnist", lambda **kw: None)
    monkeypatch.setattr(studies, "sampler_setting", lambda name: ("ddim", 2, 1.0, "even") if name != "ddim50_eta0" else ("ddim", 3, 0.0, "even"))
    out = tmp_path / "recipe.json"
    for only in ("base", "min_snr5_batch64"):
        studies.main(["recipe", "--quick", "--only", only, "--out", str(out), "--device", "cpu", "--draws", "2"])
    stored = json.loads(out.read_text())
    assert [r["name"] for r in stored["runs"]] == ["base", "min_snr5_batch64"]
    assert all(r["device"] == "cpu" and "--only" in r["command"] for r in stored["runs"])
    assert stored["runs"][1]["batch_size"] == 64 and "ddim20_eta1_mean" in stored["runs"][1]["samplers"]
    grids = torch.load(out.with_suffix(".samples.pt"), weights_only=True)
    assert {"base/ddim20_eta1", "base/ddim20_eta1_seed1", "min_snr5_batch64/ddim20_eta1"} <= set(grids)
    # a file from before rows recorded their machine: its old rows take the file's top-level one
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"study": "recipe", "device": "NVIDIA H200", "torch": "2.11", "command": "made then",
                               "n": 100, "seed": 0, "runs": [{"name": "x0", "samplers": {}}]}))
    studies.main(["recipe", "--quick", "--only", "base", "--out", str(old), "--device", "cpu"])
    rows = {r["name"]: r for r in json.loads(old.read_text())["runs"]}
    assert (rows["x0"]["device"], rows["x0"]["torch"], rows["x0"]["command"]) == ("NVIDIA H200", "2.11", "made then")
    assert rows["base"]["device"] == "cpu"
