"""The notebooks' other paths. nbval runs every notebook as shipped (quick mode, shipped weights);
these run them again, in quick mode, the two other ways a learner will:

- with ``DDPM_TRAIN=1`` in the environment, which trains every model the notebook uses, as
  ``USE_PRETRAINED = False`` does;
- (04-06) with ``CHECKPOINT`` set to a run of the learner's own, which must then be the model the
  notebook samples and scores.

Each run works on a copy of notebooks/ (its ``runs/`` folders land in a temporary directory), with
a line of the cell tagged ``parameters`` changed, as a learner would change it."""

import shutil
from pathlib import Path

import pytest
import torch

from ddpm_lib import DiffusionConfig, TrainConfig, Trainer, UNet, UNetConfig, load_mnist

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TRAINS = ["02_mlp_noise_predictor", "03_unet", "04_evaluation", "05_faster_sampling", "06_guided_generation",
          "07_your_own_data"]  # 01 trains nothing
TAKE_CHECKPOINT = {"04_evaluation": None, "05_faster_sampling": None, "06_guided_generation": 10}  # num_classes
TINY = dict(base_channels=8, channel_mults=(1, 2, 2), num_heads=2, groups=4)

SHIPPED_MODELS = ["unet_mnist", "cond_unet_mnist", "mlp_mnist", "mlp_mnist_eps", "mlp_mnist_v"]

# After the last cell: which models the notebook holds, compared weight by weight with the shipped
# files and with the learner's checkpoint (globals, and one level into dicts, lists and tuples).
REPORT_MODELS = f"""
import torch as _torch
from ddpm_lib import load_model as _load_model, pretrained_path as _pretrained_path

def _modules(value, depth=0):
    if isinstance(value, _torch.nn.Module):
        yield value
    elif depth < 2 and isinstance(value, (dict, list, tuple)):
        for item in (value.values() if isinstance(value, dict) else value):
            yield from _modules(item, depth + 1)

def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and _torch.equal(sa[k].cpu(), sb[k].cpu())
                                         for k in sa)

_held = [m for k, v in list(globals().items()) if not k.startswith("_") for m in _modules(v)]
_shipped = [n for n in {SHIPPED_MODELS!r}
            if any(_same(m, _load_model(_pretrained_path(n), device="cpu")[0]) for m in _held)]
_own = globals().get("CHECKPOINT") is not None and any(_same(m, _load_model(CHECKPOINT, device="cpu")[0]) for m in _held)
print(f"models held: {{len(_held)}} | shipped: {{_shipped}} | own checkpoint: {{_own}}")
"""


def parameters_index(nb) -> int:
    """The index of the cell tagged ``parameters`` (exactly one per notebook)."""
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged 'parameters'"
    return tagged[0]


def set_parameter(cell, name: str, value) -> None:
    """Change the line ``NAME = ...`` of the parameters cell, as a learner would."""
    lines = cell.source.splitlines()
    hits = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
    assert len(hits) == 1, f"{len(hits)} lines set {name} in the parameters cell"
    comment = lines[hits[0]].partition("#")[2]
    lines[hits[0]] = f"{name} = {value!r}" + (f"  #{comment}" if comment else "")
    cell.source = "\n".join(lines)


def run_notebook(name: str, workdir: Path, monkeypatch, parameters: dict = {}, env: dict = {}):
    """Execute a copy of ``notebooks/<name>.ipynb`` in quick mode (``env`` added to the kernel's
    environment, ``parameters`` set in its parameters cell, REPORT_MODELS after the last cell);
    returns the executed notebook. A failing cell fails the test with its traceback."""
    for folder in ("benchmarks", "data"):
        (workdir / folder).symlink_to(ROOT / folder)
    shutil.copytree(NOTEBOOKS, workdir / "notebooks", ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
    nb = nbformat.read(workdir / "notebooks" / f"{name}.ipynb", as_version=4)
    cell = nb.cells[parameters_index(nb)]
    for key, value in parameters.items():
        set_parameter(cell, key, value)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_MODELS))
    for key, value in {"DDPM_QUICK": "1", "DDPM_DEVICE": "cpu", "MPLBACKEND": "Agg", **env}.items():
        monkeypatch.setenv(key, value)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir / "notebooks")}})
    client.execute()
    return nb


def text_of(cell) -> str:
    """Everything a code cell printed (streams and plain-text results)."""
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


@pytest.mark.parametrize("name", TRAINS)
def test_the_train_path_trains_every_model_it_uses(name, tmp_path, monkeypatch):
    nb = run_notebook(name, tmp_path, monkeypatch, env={"DDPM_TRAIN": "1"})
    header, held = text_of(nb.cells[parameters_index(nb)]), text_of(nb.cells[-1])
    assert "training" in header and "shipped weights" not in header, header
    assert "| shipped: [] |" in held and not held.startswith("models held: 0 "), held


@pytest.fixture(scope="module")
def learner_runs(tmp_path_factory) -> dict:
    """Two learner's runs, as notebook 03 (unconditional) and 06 (class-conditional) would leave them:
    a tiny U-Net trained a few steps, its checkpoint.pt in a folder of its own."""
    runs = {}
    data = load_mnist(subset=64)
    for classes in {None, 10}:
        out = tmp_path_factory.mktemp(f"run_{classes}")
        torch.manual_seed(0)
        trainer = Trainer(UNet(UNetConfig(**TINY, num_classes=classes)), DiffusionConfig(),
                          TrainConfig.quick(steps=2, batch_size=16, subset=64), out_dir=out, device="cpu")
        trainer.fit(data, progress=False)
        trainer.save()
        runs[classes] = trainer.checkpoint_path
    return runs


@pytest.mark.parametrize("name", sorted(TAKE_CHECKPOINT))
def test_a_checkpoint_of_your_own_is_the_model_sampled_and_scored(name, learner_runs, tmp_path, monkeypatch):
    path = str(learner_runs[TAKE_CHECKPOINT[name]])
    nb = run_notebook(name, tmp_path, monkeypatch, parameters={"CHECKPOINT": path})
    header, held = text_of(nb.cells[parameters_index(nb)]), text_of(nb.cells[-1])
    assert f"loading {path}" in header, header
    assert held.rstrip().endswith("own checkpoint: True"), held
    replaced = "unet_mnist" if TAKE_CHECKPOINT[name] is None else "cond_unet_mnist"
    assert f"'{replaced}'" not in held.split("| shipped: ")[1], held  # the shipped model it replaces is not loaded
