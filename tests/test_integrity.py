"""No load path runs code, and no damaged weights load: every torch file in the repository is read through
the library's safe reader (``ddpm_lib.files.read_weights_file``), which needs a torch whose weights-only
reader is sound (2.6 or later, CVE-2025-32434), always asks for it explicitly (so the environment variable
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot turn it off), and checks the sha256 stored with the weights of
every shipped file."""

import ast
import json
import os
import pickle
import re
import subprocess
from pathlib import Path

import pytest
import torch

from ddpm_lib.errors import SetupError
from ddpm_lib.files import (CHECKSUM_KEY, MIN_TORCH, MIN_TORCHVISION, CheckpointError, read_weights_file,
                            weights_checksum, with_checksums, write_weights_file)

ROOT = Path(__file__).resolve().parent.parent
SAFE_READER = ROOT / "ddpm_lib" / "files.py"
TORCH_LOADERS = {"torch.load", "torch.serialization.load"}
TORCH_LOAD = re.compile(r"\btorch\s*\.\s*load\s*\(")  # for code that does not parse (a notebook's shell lines)


def _repository_files(suffix: str, *, new: bool = True):
    """The repository's files ending in ``suffix``: git's list (tracked, and with ``new`` untracked ones
    too, ignored ones left out), or, without git, every such file outside hidden folders."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", *(["--others", "--exclude-standard"] if new else []),
                                 f"*{suffix}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
        paths = [ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in ROOT.rglob(f"*{suffix}") if not any(part.startswith(".") for part in
                                                                 p.relative_to(ROOT).parts)]
    return sorted(p for p in paths if p.is_file())


def _code_cells(notebook: Path):
    for i, cell in enumerate(json.loads(notebook.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] == "code":
            source = cell["source"]
            yield i, source if isinstance(source, str) else "".join(source)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def _torch_loads(source: str):
    """Line numbers of the calls of torch.load in ``source``, however torch or its load was imported
    (``import torch as th``, ``from torch import load``); a mention in a string or a comment is not a call."""
    lines = source.splitlines()
    magic = [n for n, line in enumerate(lines, 1) if line.lstrip().startswith(("%", "!"))]  # IPython, not Python
    try:
        tree = ast.parse("\n".join("" if n in magic else line for n, line in enumerate(lines, 1)))
    except SyntaxError:
        return [n for n, line in enumerate(lines, 1) if TORCH_LOAD.search(line)]
    names = {"torch": "torch"}  # a notebook cell uses the torch an earlier cell imported
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update({a.asname or a.name: a.name for a in node.names if a.name.split(".")[0] == "torch"})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            names.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            head, _, rest = _dotted(node.func).partition(".")
            if head in names and ".".join(filter(None, (names[head], rest))) in TORCH_LOADERS:
                found.append(node.lineno)
    return sorted(found + [n for n in magic if TORCH_LOAD.search(lines[n - 1])])


def test_the_scan_finds_every_spelling_of_a_call_and_no_mention():
    calls = ("torch.load(p)\nimport torch as th\nth.load(p)\nfrom torch import load\nload(p)\n"
             "from torch import serialization as s\ns.load(p)\nx = torch.serialization.load(p)\n")
    assert _torch_loads(calls) == [1, 3, 5, 7, 8]
    assert _torch_loads('"""torch.load(weights_only=True)"""  # torch.load(p)\nnp.load(p)\njson.load(f)\n') == []
    assert _torch_loads("!ls\n%time x = torch.load(p)\ny = torch.load(q)") == [2, 3]  # IPython lines read as text


def test_no_torch_load_outside_the_safe_reader():
    """A direct call could be written without weights_only (which torch < 2.6 then reads unsafely, and which
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns off); every file goes through read_weights_file instead."""
    found = []
    for path in _repository_files(".py"):
        if path != SAFE_READER:
            found += [f"{path.relative_to(ROOT)}:{n}" for n in _torch_loads(path.read_text(encoding="utf-8"))]
    for notebook in _repository_files(".ipynb"):
        for cell, source in _code_cells(notebook):
            found += [f"{notebook.relative_to(ROOT)} code cell {cell}, line {n}" for n in _torch_loads(source)]
    assert len(_repository_files(".py")) > 20 and _repository_files(".ipynb")  # the scan saw the repository
    assert not found, f"read these with ddpm_lib.files.read_weights_file: {found}"


@pytest.mark.parametrize("version", ["2.5.1", "2.5.1+cu124", "1.13.0", "2.4.0a0+git1234"])
def test_a_torch_older_than_2_6_is_refused_in_one_line_before_anything_is_read(version, tmp_path, monkeypatch):
    path = tmp_path / "weights.pt"
    torch.save({"value": torch.ones(2)}, path)
    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read with an unsafe torch"))
    upgrade = rf"torch {re.escape(version)} .*upgrade.*torch>=2\.6.*torchvision>=0\.21"
    with pytest.raises(SetupError, match=upgrade) as err:
        read_weights_file(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("version", ["2.6.0", "2.6.0+cpu", "2.14.1+cu130", "3.0.0"])
def test_torch_2_6_and_later_reads(version, tmp_path, monkeypatch):
    path = tmp_path / "weights.pt"
    torch.save({"value": torch.ones(2)}, path)
    monkeypatch.setattr(torch, "__version__", version)
    assert torch.equal(read_weights_file(path)["value"], torch.ones(2))


@pytest.mark.parametrize("name", ["requirements.txt", "pyproject.toml"])
def test_installing_gives_a_torch_whose_safe_reader_is_sound(name):
    """requirements.txt and the package's own dependencies install what read_weights_file accepts
    (MIN_TORCH), with the torchvision built for it."""
    text = (ROOT / name).read_text()
    lower = {package: tuple(int(p) for p in version.split(".")[:2])
             for package, version in re.findall(r"^\s*\"?(torch|torchvision)\s*>=\s*([\d.]+)", text, re.M)}
    assert lower.get("torch", (0, 0)) >= MIN_TORCH == (2, 6), text
    assert lower.get("torchvision", (0, 0)) >= MIN_TORCHVISION == (0, 21), text


class _Touch:  # unpickled, it would create the file at ``marker``
    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


class _System:  # unpickled, it would run a shell command
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("force_unsafe", [None, "1"])
@pytest.mark.parametrize("payload", [_Touch, _System])
def test_a_hostile_pickle_is_refused_and_its_payload_never_runs(payload, force_unsafe, tmp_path, monkeypatch):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns torch's safe reader off wherever weights_only is not passed;
    the reader passes it, so the file is refused all the same."""
    if force_unsafe is None:
        monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    else:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", force_unsafe)
    marker = tmp_path / "pwned"
    monkeypatch.setattr(payload, "marker", str(marker))
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(2)}, "payload": payload()}, evil, pickle_module=pickle)
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    with pytest.raises(CheckpointError, match="refused because it holds Python objects"):
        read_weights_file(evil)
    assert calls and all(k.get("weights_only") is True for k in calls)  # asked for, never left to torch's default
    assert not marker.exists()


def test_weights_checksum_covers_names_dtypes_shapes_and_every_bit():
    w = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([True, False]),
         "c": torch.tensor(3, dtype=torch.int64)}
    digest = weights_checksum(w)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert weights_checksum(dict(reversed(list(w.items())))) == digest  # the order of the keys does not count
    assert weights_checksum({k: v.clone() for k, v in w.items()}) == digest
    assert weights_checksum({**w, "a": w["a"].t().contiguous().t()}) == digest  # the values, not the layout
    flipped = w["a"].clone()
    flipped.view(-1).view(torch.int32)[4] ^= 1  # the lowest bit of one float
    changed = [{**w, "a": flipped}, {**w, "a": w["a"].reshape(3, 2)}, {**w, "a": w["a"].double()},
               {"A": w["a"], "b": w["b"], "c": w["c"]}, {"a": w["a"], "b": w["b"]}]
    assert len({digest, *(weights_checksum(c) for c in changed)}) == 1 + len(changed)


def test_a_file_written_with_checksums_refuses_a_changed_weight_and_says_so(tmp_path):
    path = tmp_path / "w.pt"
    state = {"format": "x", "model": {"w": torch.randn(50)}, "ema": None, "step": 3}
    write_weights_file(with_checksums(state, ("model", "ema")), path)
    stored = read_weights_file(path)
    assert set(stored[CHECKSUM_KEY]) == {"model"} and stored["step"] == 3
    stored["model"]["w"][7] += 1e-6  # one weight changed, the file rewritten with its old checksum
    torch.save(stored, path)
    with pytest.raises(CheckpointError, match=r"^classifier file .*w\.pt is damaged.*'model'.*use another copy") as err:
        read_weights_file(path, "classifier file")
    assert "\n" not in str(err.value)


PRETRAINED = [p for p in _repository_files(".pt", new=False) if p.parent == ROOT / "data" / "pretrained"]


@pytest.mark.parametrize("path", PRETRAINED, ids=[p.name for p in PRETRAINED])
def test_every_shipped_file_carries_checksums_that_verify(path):
    assert len(PRETRAINED) >= 7  # the shipped files were found
    state = read_weights_file(path)  # verifies them
    stored = state[CHECKSUM_KEY]
    weights = [name for name in ("model", "ema") if state.get(name) is not None]
    assert weights and sorted(stored) == sorted(weights)
    for name in weights:
        assert stored[name] == weights_checksum(state[name])
