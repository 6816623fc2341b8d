"""benchmarks/studies.py shipped: the study that scores the shipped weights writes the structure
notebooks 03-05 read from benchmarks/studies/shipped.json, replaces only the sections it
computed, and refuses sections it has no checkpoint for; one row of it scored by the real
evaluator."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from benchmarks import studies
from ddpm_lib import (DiffusionConfig, SamplerConfig, TrainConfig, Trainer, UNet, UNetConfig, load_mnist,
                      make_schedule, sample)
from ddpm_lib.files import read_weights_file
from ddpm_lib.metrics import QualityReport, build_classifier

COMMITTED = Path(studies.__file__).parent / "studies"
N = 20  # the study's least n is 10 (every digit asked for); the evaluator's precision needs n > k = 3
CURVES = ("unet_training_curve", "cond_unet_training_curve")


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


@pytest.fixture(scope="module")
def shipped_run(tiny_unet_settings, tmp_path_factory):
    """One run of every section of the shipped study (22 unet rows, 7 cond rows, two curves) into a
    file that holds keys of its own: the file read back, the evaluator's requests, the paths."""
    folder = tmp_path_factory.mktemp("shipped")
    data = load_mnist(train=False, subset=32, seed=0)
    unet = _snapshots(UNetConfig(**tiny_unet_settings), folder / "unet", data)
    cond = _snapshots(UNetConfig(**tiny_unet_settings, num_classes=10), folder / "cond", data)
    out = folder / "shipped.json"
    out.write_text(json.dumps({"study": "shipped", "commands": {"cond_unet": "made the old way"}, "note": "old note",
                               "previous_cond_unet": [{"name": "kept"}], "unet": [{"name": "stale"}]}))
    evaluator = CheapEvaluator()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(studies, "SampleEvaluator", lambda device=None: evaluator)
        studies.main(["shipped", "--unet", unet[-1], "--cond", cond[-1], "--unet-snapshots", *unet[::-1],
                      "--cond-snapshots", *cond, "--n", str(N), "--out", str(out), "--device", "cpu",
                      "--command-unet", "python -m ddpm_lib train --steps 2"])
    return {"got": json.loads(out.read_text()), "asked": evaluator.asked, "out": out, "unet": unet}


@pytest.mark.slow
def test_shipped_study_replaces_only_the_sections_it_computed(shipped_run):
    got = shipped_run["got"]
    assert got["previous_cond_unet"] == [{"name": "kept"}] and got["note"] == "old note"
    assert got["commands"] == {"cond_unet": "made the old way", "unet": "python -m ddpm_lib train --steps 2"}
    assert got["device"] == "cpu" and got["torch"] == torch.__version__
    assert got["devices"] == {k: f"cpu, torch {torch.__version__}" for k in studies.SHIPPED_SECTIONS.values()}


@pytest.mark.slow
def test_the_unet_section_has_every_sampler_then_the_repeats_with_other_seeds(shipped_run):
    unet = shipped_run["got"]["unet"]
    assert [r["name"] for r in unet] == studies.SHIPPED_SAMPLERS + ["ddim20_eta1_seed1", "ddpm1000_seed1",
                                                                     "sde20_trail_seed1", "sde20_trail_seed2"]
    assert [r["seed"] for r in unet[-4:]] == [1, 1, 1, 2]
    assert unet[studies.SHIPPED_SAMPLERS.index("sde20_trail")]["sampler"] == "dpm++sde"
    ddpm = unet[studies.SHIPPED_SAMPLERS.index("ddpm1000")]
    assert (ddpm["sampler"], ddpm["steps"], ddpm["seed"]) == ("ddpm", 1000, 0)


@pytest.mark.slow
def test_the_guidance_sweep_uses_the_default_sampler(shipped_run):
    cond = shipped_run["got"]["cond_unet"]
    assert [r["name"] for r in cond] == ["w0.0", "w0.5", "w1.0", "w2.0", "w3.0", "w0.0_ddim20_eta0", "w1.0_ddim20_eta0"]
    assert [r["guidance"] for r in cond] == [0.0, 0.5, 1.0, 2.0, 3.0, 0.0, 1.0]
    assert {r["sampler"] for r in cond[:5]} == {"dpm++sde"}
    default = SamplerConfig()
    assert studies.sampler_setting(studies.DEFAULT_SAMPLER) == (default.sampler, default.steps, 0.0, default.spacing)


@pytest.mark.slow
def test_training_curves_are_sorted_by_step_whatever_the_order_given(shipped_run):
    for key in CURVES:
        assert [(r["name"], r["train_step"]) for r in shipped_run["got"][key]] == [("step1", 1), ("step2", 2)]


@pytest.mark.slow
@pytest.mark.parametrize("key", ["unet", "cond_unet", *CURVES])
def test_rows_have_the_keys_of_the_committed_file_the_notebooks_read(shipped_run, key):
    committed = json.loads((COMMITTED / "shipped.json").read_text())
    rows = shipped_run["got"][key]
    assert all(list(r) == list(committed[key][0]) for r in rows)
    assert all(r["n"] == N and len(r["histogram"]) == 10 for r in rows)


@pytest.mark.slow
def test_conditional_rows_ask_for_each_digit_and_the_others_for_none(shipped_run):
    got = shipped_run["got"]
    for r in got["cond_unet"] + got["cond_unet_training_curve"]:  # 2 samples asked of each digit
        assert len(r["per_digit"]) == 10 and all(a in (0.0, 0.5, 1.0) for a in r["per_digit"])
    assert all(r["accuracy"] is None and "per_digit" not in r for r in got["unet"] + got["unet_training_curve"])
    digits = list(range(10)) * (N // 10)  # the conditional rows ask for digits 0..9 in turn
    assert shipped_run["asked"] == [None] * 19 + [digits] * 7 + [None] * 2 + [digits] * 2


@pytest.mark.slow
def test_the_samples_file_holds_each_seed_0_sampler_in_half_precision(shipped_run):
    samples = read_weights_file(shipped_run["out"].with_suffix(".samples.pt"))
    assert list(samples) == studies.SHIPPED_SAMPLERS
    assert all(x.dtype == torch.float16 and x.shape == (N, 1, 28, 28) for x in samples.values())


@pytest.fixture
def shipped_copy(shipped_run, tmp_path):
    """The shipped run's file and samples copied, to be changed by a test."""
    out = tmp_path / "shipped.json"
    shutil.copy(shipped_run["out"], out)
    shutil.copy(shipped_run["out"].with_suffix(".samples.pt"), out.with_suffix(".samples.pt"))
    return out


@pytest.mark.slow
def test_unet_samplers_recomputes_only_the_rows_named_in_the_sections_order(shipped_run, shipped_copy, monkeypatch):
    monkeypatch.setattr(studies, "SampleEvaluator", CheapEvaluator)
    out, before = shipped_copy, {r["name"]: r for r in shipped_run["got"]["unet"]}
    grids_before = read_weights_file(out.with_suffix(".samples.pt"))
    studies.main(["shipped", "--unet", shipped_run["unet"][0], "--only", "unet", "--unet-samplers", "dpm20",
                  "sde20_trail_seed2", "--n", str(N), "--out", str(out), "--device", "cpu"])
    again = json.loads(out.read_text())
    assert [r["name"] for r in again["unet"]] == list(before)
    changed = {name for name, r in before.items() if again["unet"][list(before).index(name)] != r}
    assert changed <= {"dpm20", "sde20_trail_seed2"} and "dpm20" in changed  # another checkpoint: other images
    grids = read_weights_file(out.with_suffix(".samples.pt"))
    assert list(grids) == list(grids_before) and not torch.equal(grids["dpm20"], grids_before["dpm20"])
    assert torch.equal(grids["sde20_trail"], grids_before["sde20_trail"])


@pytest.mark.slow
def test_unet_samplers_refuses_a_row_the_section_does_not_have(shipped_run, shipped_copy, monkeypatch):
    monkeypatch.setattr(studies, "SampleEvaluator", CheapEvaluator)
    with pytest.raises(ValueError, match="not rows of the unet section"):
        studies.main(["shipped", "--unet", shipped_run["unet"][0], "--only", "unet", "--unet-samplers", "euler20",
                      "--n", str(N), "--out", str(shipped_copy), "--device", "cpu"])


def test_shipped_sections_follow_the_inputs_given():
    given = {"unet": True, "cond": False, "unet_curve": True, "cond_curve": False}
    assert studies.shipped_sections(None, given) == ["unet", "unet_curve"]
    assert studies.shipped_sections("unet_curve", given) == ["unet_curve"]
    with pytest.raises(ValueError, match="cond"):
        studies.shipped_sections("cond", given)  # asked for, but no --cond checkpoint
    with pytest.raises(ValueError, match="unknown section"):
        studies.shipped_sections("unet,uncond", given)


@pytest.mark.slow
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


def test_the_recipe_plan_gives_the_steps_of_the_committed_runs():
    """The plan (batch_steps: a smaller batch gets more steps in the same 20 minutes) still makes
    the runs benchmarks/studies/recipe.json records, step for step and batch for batch."""
    committed = {r["name"]: r for r in json.loads((COMMITTED / "recipe.json").read_text())["runs"]}
    plan = {row[0]: row for row in studies.recipe_plan(quick=False)}
    assert set(plan) == set(committed)
    for name, (_, _, steps, *_, batch_size, _) in plan.items():
        assert steps == committed[name]["steps"], name
        assert batch_size == committed[name].get("batch_size", batch_size), name
    assert all(len(row) == 9 for row in studies.recipe_plan(quick=True))


@pytest.mark.slow
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
    grids = read_weights_file(out.with_suffix(".samples.pt"))
    assert {"base/ddim20_eta1", "base/ddim20_eta1_seed1", "min_snr5_batch64/ddim20_eta1"} <= set(grids)
    # a file from before rows recorded their machine: its old rows take the file's top-level one
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"study": "recipe", "device": "NVIDIA H200", "torch": "2.11", "command": "made then",
                               "n": 100, "seed": 0, "runs": [{"name": "x0", "samplers": {}}]}))
    studies.main(["recipe", "--quick", "--only", "base", "--out", str(old), "--device", "cpu"])
    rows = {r["name"]: r for r in json.loads(old.read_text())["runs"]}
    assert (rows["x0"]["device"], rows["x0"]["torch"], rows["x0"]["command"]) == ("NVIDIA H200", "2.11", "made then")
    assert rows["base"]["device"] == "cpu"


def test_the_variance_study_samples_with_the_models_fit_and_scores_the_bound_with_each_variance(tiny_unet_config):
    """studies.py variance: a *_fit sampler draws DDIM with the model's variance_fit (and refuses a model
    without one); the bound's rows are the fixed variances, Analytic-DPM's and the fitted one with and without
    the decoder's pick; the committed file holds the means the notebooks read."""
    from ddpm_lib.fitted_variance import fit_variance
    from ddpm_lib.samplers import ddim_sample, trailing_timesteps
    torch.manual_seed(0)
    model, schedule = UNet(tiny_unet_config).eval(), make_schedule(DiffusionConfig(T=100))
    fn = studies.sampler_table(["ddim5_eta0_trail_fit"])["ddim5_eta0_trail_fit"]
    with pytest.raises(ValueError, match="fit-variance"):
        fn(model, schedule, 2, 0)
    model.variance_fit = fit_variance(model, schedule, load_mnist(train=False, subset=16, seed=0).tensors[0],
                                      images_per_t=2, decoder_images=8, progress=False)
    got = fn(model, schedule, 2, 0)
    want = ddim_sample(model, schedule, 2, timesteps=trailing_timesteps(100, 5), eta=0.0, seed=0,
                       fit=model.variance_fit, progress=False)
    plain = ddim_sample(model, schedule, 2, timesteps=trailing_timesteps(100, 5), eta=0.0, seed=0, progress=False)
    assert torch.equal(got, want) and not torch.allclose(got, plain)
    rows = studies.bound_variances(model.variance_fit)
    assert list(rows) == list(studies.BOUND_VARIANCES)
    assert rows["analytic"].kind == "analytic" and rows["analytic"].decoder_variance is None
    assert rows["fitted, decoder e_0"].decoder_variance is None and rows["fitted"] is model.variance_fit
    committed = {r["name"]: r for r in json.loads((COMMITTED / "variance.json").read_text())["runs"]}
    assert set(committed["bound"]["variances"]) == set(studies.BOUND_VARIANCES)
    means = committed["few_steps"]["samplers"]
    assert all(f"{p.format(k=k)}_mean" in means for p in studies.FEW_STEP_SAMPLERS for k in studies.FEW_STEPS)


def test_the_budget_plan_trains_every_configuration_at_every_budget_with_three_seeds():
    """studies.py budget: 5, 20 and 60 minutes x each configuration x training seeds 0-2, every
    configuration naming its width, so a row keeps its meaning when what --minutes picks changes."""
    plan = studies.budget_plan(quick=False)
    assert len(plan) == len(studies.BUDGET_MINUTES) * len(studies.BUDGET_CONFIGS) * 3 == len({p[0] for p in plan})
    assert {(m, s) for _, _, m, s in plan} == {(m, s) for m in (5.0, 20.0, 60.0) for s in (0, 1, 2)}
    assert all("--base-channels" in flags for flags in studies.BUDGET_CONFIGS.values())
    first = [p[0] for p in studies.budget_plan(quick=False, minutes=[5])][:len(studies.BUDGET_CONFIGS)]
    assert first == [f"{config}_5min_seed0" for config in studies.BUDGET_CONFIGS]  # seed by seed: paired if stopped


@pytest.mark.slow
def test_the_budget_study_runs_the_cli_command_it_stores_and_scores_what_it_trained(tmp_path, monkeypatch):
    """One quick run of the budget study: the CLI trains for 3 seconds in a subprocess, the row holds that
    command, the width and rate it asked for, the steps the checkpoint reached and the default sampler's
    scores; the table averages the row. The evaluator is stubbed: the bookkeeping is under test."""
    monkeypatch.setattr(studies, "SampleEvaluator", lambda device=None: CheapEvaluator())
    monkeypatch.setattr(studies, "sampler_setting", lambda name: ("ddim", 2, 1.0, "trailing"))
    out, work = tmp_path / "budget.json", tmp_path / "runs"
    name = "small_lr2e-3_cosine_0.05min_seed0"
    studies.main(["budget", "--quick", "--only", name, "--out", str(out), "--work", str(work), "--device", "cpu"])
    (run,) = json.loads(out.read_text())["runs"]
    assert run["name"] == name and run["config"] == "small_lr2e-3_cosine" and run["seed"] == 0
    assert "train --minutes 0.05 --seed 0 --base-channels 16 --lr 2e-3 --lr-schedule cosine" in run["train_command"]
    assert (run["base_channels"], run["lr"], run["lr_schedule"], run["schedule"]) == (16, 2e-3, "cosine", "linear")
    assert run["steps"] >= 1 and 0 < run["train_s"] < 60 and run["images_per_s"] > 0
    assert (work / name / "checkpoint.pt").exists()
    assert set(run["samplers"]) == {studies.DEFAULT_SAMPLER}
    table = studies.budget_table(json.loads(out.read_text()))
    fid = run["samplers"][studies.DEFAULT_SAMPLER]["fid"]
    assert f"| 0.05 | small_lr2e-3_cosine | {run['steps']} |" in table and f"{fid:.2f} (seeds 0)" in table


def test_the_budget_figure_puts_each_runs_stored_grid_beside_the_shipped_one(tmp_path):
    """studies.py budget --figure: one titled panel per run after the shipped U-Net's, read from the stored
    uint8 grids; a run with no stored grid is refused by name, before anything is written."""
    import numpy as np
    from PIL import Image

    grid = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    grids = {f"small_20min_seed{s}/{studies.DEFAULT_SAMPLER}": grid + 60 * s for s in (0, 1)}
    path = tmp_path / "budget.png"
    shipped = torch.ones(64, 1, 28, 28, dtype=torch.float16)  # stored in [-1, 1]: drawn white, as 255 pixels are
    titles = studies.budget_figure(grids, ["small_20min_seed0", "small_20min_seed1"], path, shipped=shipped)
    assert titles == ["shipped U-Net", "small 20min seed0", "small 20min seed1"]
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L"))
    height, width = pixels.shape
    assert width > 2.5 * height  # three panels side by side
    shipped_panel, last_panel = pixels[:, : width // 3].mean(), pixels[:, 2 * width // 3:].mean()
    assert shipped_panel > 240 and last_panel < 160  # the [-1, 1] ones drawn white, the pixels of 60 dark
    with pytest.raises(ValueError, match="small_20min_seed2"):
        studies.budget_figure(grids, ["small_20min_seed2"], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
