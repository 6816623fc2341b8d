"""benchmarks/report.py: the targets table is computed from the numbers, never written by hand."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
report = pytest.importorskip("report")


def _sample(fid: float, seconds: float, chunks=None) -> dict:
    s = {"fid": fid, "fid_floor": 0.5, "fid_ratio": fid / 0.5, "confident_share": 0.6, "entropy_bits": 3.2,
         "seconds": seconds}
    if chunks is not None:
        s["chunks"] = chunks
    return s


def _data(ddpm_chunks, retime=None) -> dict:
    ours = {"params": 2e6, "steps": 10, "images_per_s": 90.0, "train_gflops": 100.0, "peak_fraction": 0.7,
            "samples": {"ddim50": _sample(1.9, 100.0), "ddpm1000": _sample(2.0, 4000.0, ddpm_chunks)}}
    if retime:
        ours["retime"] = {"ddim50": retime}
    return {"meta": {"n": 500, "peak_gflops": 150.0, "commands": ["python benchmarks/compare.py"]},
            "20min": {"ours": ours, "ddp": {"params": 2e6, "steps": 5, "images_per_s": 40.0, "train_gflops": 50.0,
                                            "peak_fraction": 0.3, "samples": {"ddim50": _sample(4.0, 300.0)}}}}


def _target_row(lines: list, start: str) -> str:
    return next(line for line in lines if line.startswith(f"| {start}"))


def test_same_sitting_ratio_uses_the_latest_ddpm_chunk():
    chunks = [{"seconds": 2000.0, "n": 250, "finished": "2026-11-20 10:00 UTC"},
              {"seconds": 2500.0, "n": 250, "finished": "2026-11-24 04:00 UTC"}]
    again = {"seconds": 100.0, "n": 250, "finished": "2026-11-24 04:02 UTC"}
    ratio, last, _ = report._same_sitting_speedup(_data(chunks, again)["20min"]["ours"])
    assert last["finished"].startswith("2026-11-24") and ratio == pytest.approx(25.0)
    row = _target_row(report._targets(_data(chunks, again)), "DDIM-50 within")
    # FID 1.9 / 2.0 = 0.95x, 25x faster in one sitting: met; the stage totals (40x) shown beside it
    assert "25.0x faster in one sitting" in row and "40.0x from the stage totals" in row and row.endswith("| met |")


def test_a_slow_sitting_misses_the_speed_target_and_says_so():
    chunks = [{"seconds": 1000.0, "n": 250, "finished": "2026-11-24 04:00 UTC"}]
    again = {"seconds": 100.0, "n": 250, "finished": "2026-11-24 04:02 UTC"}  # only 10x
    row = _target_row(report._targets(_data(chunks, again)), "DDIM-50 within")
    assert row.endswith("| **missed** |")
    # without a re-timing the stage totals decide, and the row says they were not taken in one sitting
    row = _target_row(report._targets(_data(chunks)), "DDIM-50 within")
    assert "not re-timed" in row and row.endswith("| met |")


def test_write_report_lists_every_chunk(tmp_path):
    chunks = [{"seconds": 1000.0, "n": 250, "finished": "2026-11-24 04:00 UTC"}]
    data = _data(chunks, {"seconds": 50.0, "n": 250, "finished": "2026-11-24 04:02 UTC"})
    data["meta"]["out"] = str(tmp_path / "runs")
    report.write_report(data, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| DDPM-1000 | 0 | 250 | 1000 | 4.00 |" in text  # 1000 s / (250 images x 1000 calls) = 4 ms
    assert "| DDIM-50, re-timed | | 250 | 50 | 4.00 |" in text
    assert "20.0x less time for DDIM-50" in text
    assert (tmp_path / "results.png").stat().st_size > 0
