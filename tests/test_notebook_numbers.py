"""Every number the notebooks' text quotes is one their stored outputs print.

A markdown number with d decimals (``0.86``, ``93.1%``, ``28,000``, ``4.04e-05``) must equal, at d
decimals, some number printed by a code cell of the same notebook (as it is, or times 100 for a
percentage). A number that comes from outside the notebook (a paper's section, a constant of the
recipe, a measurement kept in benchmarks/RESULTS.md) is listed in ``QUOTED`` with where it comes
from. Numbers inside maths (``$...$``) and links are not read. So a re-run that moves a result makes
this test fail until the sentence quoting it follows."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# a decimal, a thousands-grouped integer, or an integer before %; not part of a word, a name or a version
TEXT_NUMBER = re.compile(r"(?<![\w.\\^_{])(\d{1,3}(?:,\d{3})+|\d+\.\d+(?:e-?\d+)?|\d+(?=\s?%))(?![\w,]*\d)")
PRINTED_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:e-?\d+)?")
MATHS_AND_LINKS = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|`[^`]*`", re.S)

QUOTED = {  # notebook: {number: where it comes from}
    "02_mlp_noise_predictor": {"3.2": "Ho et al. 2020, Sec. 3.2", "3.32": "log2(10), the entropy of ten equal classes"},
    "03_unet": {"0.999": "TrainConfig.ema_decay, the recipe's EMA decay"},
    "04_evaluation": {"3.32": "log2(10), the entropy of ten equal classes", "3.2": "Ho et al. 2020, Sec. 3.2",
                      "1.38": "xz on the raw test images, benchmarks/RESULTS.md (Likelihood)",
                      "60,000": "the size of MNIST's training set"},
    "05_faster_sampling": {"28,000": "the shipped U-Net's training budget (data/README.md)"},
    "07_your_own_data": {"0.9": "the judge's confidence threshold for a clear digit (ddpm_lib.metrics)"},
}


def printed_numbers(nb: dict) -> set:
    """Every number in the stored text outputs of the notebook's code cells."""
    found = set()
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            found.update(float(m.replace(",", "")) for m in PRINTED_NUMBER.findall(text))
    return found


def is_printed(quoted: str, printed: set) -> bool:
    """``quoted`` equals a printed number rounded to its decimals (or a fraction printed as a share)."""
    value = float(quoted.replace(",", ""))
    mantissa = quoted.split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    if "e" in quoted:  # scientific: compare mantissas
        return any(abs(p - value) <= 0.5 * 10 ** (int(quoted.split("e")[1]) - decimals) for p in printed)
    half = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(p - value) <= half or abs(100 * p - value) <= half for p in printed)


def unprinted(path: Path) -> list:
    """(cell index, number, context) of each number the notebook's markdown quotes and no output prints."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    printed, quoted = printed_numbers(nb), QUOTED.get(path.stem, {})
    missing = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = MATHS_AND_LINKS.sub(" ", "".join(cell["source"]))
        for m in TEXT_NUMBER.finditer(text):
            if m.group(1) not in quoted and not is_printed(m.group(1), printed):
                missing.append((i, m.group(1), " ".join(text[max(0, m.start() - 50):m.end() + 15].split())))
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_the_text_quotes_is_printed_below(path):
    missing = unprinted(path)
    assert not missing, "markdown numbers no output prints (cell, number, context):\n" + "\n".join(map(str, missing))


def test_the_check_catches_a_number_that_moved(tmp_path):
    """The instrument reacts: a sentence quoting a number its output no longer prints fails."""
    nb = {"cells": [{"cell_type": "code", "source": "print(fid)", "outputs": [
                        {"output_type": "stream", "name": "stdout", "text": "MNIST-FID 0.8612, share 0.931\n"}]},
                    {"cell_type": "markdown", "source": "It scores 0.86 with 93.1% confident and $x_{0.5}$."},
                    {"cell_type": "markdown", "source": "After a re-run the text still says 1.17 and 1,500 steps."}]}
    path = tmp_path / "99_example.ipynb"
    path.write_text(json.dumps(nb))
    assert [(i, n) for i, n, _ in unprinted(path)] == [(2, "1.17"), (2, "1,500")]
