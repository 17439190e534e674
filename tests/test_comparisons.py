"""The main job runs end to end (``--quick``) and writes its report, JSON and pictures; and
without matplotlib it still writes the text report and says what it skipped."""

from __future__ import annotations

import json

import pytest

from comparisons import __main__ as main_job
from comparisons import plots, training


def test_the_quick_main_job_writes_a_report(tmp_path, capsys) -> None:
    results = main_job.main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    for heading in ("[1/5] The seeds, both ways", "[2/5] Training, both ways",
                    "[3/5] What the compiler did", "[4/5] Where define-by-run wins",
                    "[5/5] ONNX, both ways"):
        assert heading in printed
    onnx = results["onnx"]
    assert onnx["eager model exported and imported back"]["imported vs eager"] < 1e-5
    if "onnxruntime vs Session" in onnx["graph with gradients exported"]:
        assert onnx["graph with gradients exported"]["onnxruntime vs Session"] < 1e-5
    if "torch model imported and fine-tuned" in onnx:
        tuned = onnx["torch model imported and fine-tuned"]
        assert tuned["last loss"] < tuned["first loss"] / 2
    report = (tmp_path / "report.md").read_text()
    assert "## 2. Training, both ways" in report and "y2.grad" in report
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["training"]["max_loss_gap"] == 0.0  # eager and compiled: the same curve
    assert results["training"]["compiled"]["kernels_per_step"] < \
        results["training"]["eager"]["kernels_per_step"]
    both = results["compiler"]["runtimes"]
    pngs = ["loss_curves.png", "time_per_step.png", "memory_per_step.png",
            "block_before_fusion.png", "block_after_fusion.png"]
    if "skipped" in both:  # no OpenCL device: the section says how to get one
        assert "pocl-opencl-icd" in both["skipped"] and "OpenCL runtime is skipped" in printed
    else:
        assert set(both["rows"]) == {"layer_norm", "softmax", "gelu_tanh"}
        assert both["mlp"]["opencl_ms"] > 0 and abs(sum(both["mlp"]["opencl_share"].values())
                                                    - 1) < 1e-9
        assert "OpenCL device:" in printed
        pngs.append("runtimes_crossover.png")
    if plots.available():
        for png in pngs:
            assert (tmp_path / png).stat().st_size > 1000
            assert f"({png})" in report


def test_without_matplotlib_the_report_says_what_it_skipped(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(plots, "_pyplot", lambda: None)
    monkeypatch.setattr(plots.shutil, "which", lambda name: None)
    monkeypatch.setattr(plots, "SKIPPED", [])
    assert plots.lines(tmp_path / "a.png", "t", {"x": [1.0, 2.0]}, "x", "y") is None
    assert plots.graph(tmp_path / "g.png", "digraph {}", "t") is None
    assert any("matplotlib" in s for s in plots.SKIPPED)
    assert not (tmp_path / "a.png").exists()


def test_digits_data_ships_with_the_project() -> None:
    x_train, y_train, x_test, y_test = training.load_digits()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert set(y_train.tolist()) == set(range(10)) and 0 <= x_train.min() <= x_train.max() <= 1


@pytest.mark.parametrize("epochs", [12])
def test_the_digits_mlp_reaches_95_percent_in_both_modes(epochs) -> None:
    data = training.load_digits()
    eager_run = training.train_eager(data, epochs, lambda k: None)
    compiled_run, *_ = training.train_compiled(data, epochs, lambda k: None)
    assert eager_run.accuracy >= 0.95 and compiled_run.accuracy >= 0.95
    assert eager_run.losses == compiled_run.losses
