"""The main job runs end to end (``--quick``) and writes its report, JSON and pictures; and
without matplotlib it still writes the text report and says what it skipped. Its times are
taken with every thread pool set by --threads (and said so), shown as median (min-max), and
a measurement whose runs spread wide is warned of."""

from __future__ import annotations

import itertools
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import threadpoolctl

import staticgraph as sg
from comparisons import __main__ as main_job
from comparisons import common, dynamic, plots, rnn, scale_out, training
from comparisons.common import Timing, arguments, how_timed, interleaved, measuring, shown


def _torch_threads() -> int | None:
    torch = common.optional("torch")
    return None if torch is None else torch.get_num_threads()


def test_the_quick_main_job_writes_a_report(tmp_path, capsys) -> None:
    threads_before = _torch_threads()
    results = main_job.main(["--quick", "--threads", "1", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert _torch_threads() == threads_before  # the pools are given back as they were
    assert set(results["threads"].values()) == {1} and "numpy's openblas" in results["threads"]
    assert "Threads: --threads 1 (default: half of this machine's" in printed
    for heading in ("[1/6] The seeds, both ways", "[2/6] Training, both ways",
                    "[3/6] What the compiler did", "[4/6] Where define-by-run wins",
                    "[5/6] ONNX, both ways", "[6/6] Scale-out"):
        assert heading in printed
    onnx = results["onnx"]
    assert onnx["eager model exported and imported back"]["imported vs eager"] < 1e-5
    for exported in ("graph with gradients exported", "CNN with gradients exported"):
        if "onnxruntime vs Session" in onnx[exported]:
            assert onnx[exported]["onnxruntime vs Session"] < 1e-5
    assert {"Conv", "MaxPool"} <= set(onnx["CNN with gradients exported"]
                                      ["convolution operators"])
    if "torch model imported and fine-tuned" in onnx:
        tuned = onnx["torch model imported and fine-tuned"]
        assert tuned["last loss"] < tuned["first loss"] / 2
    report = (tmp_path / "report.md").read_text()
    assert "## 2. Training, both ways" in report and "y2.grad" in report
    assert "numpy's openblas 1" in report and "time/step: median (min-max)" in report
    saved = json.loads((tmp_path / "results.json").read_text())
    for model in ("MLP", "CNN"):  # eager and compiled: the same curve
        assert saved["training"][model]["max_loss_gap"] == 0.0
    assert "The CNN's test accuracy" in report
    for timing in (saved["training"]["MLP"]["eager"]["step_ms"],
                   saved["training"]["CNN"]["torch"]["step_ms"],
                   saved["compiler"]["mlp"]["eager_ms"],
                   saved["dynamic"]["compile_cost"]["compiled_step_ms"],
                   saved["dynamic"]["rnn"]["ms"]["compiled"]):
        assert 0 < timing["min"] <= timing["median"] <= timing["max"] and timing["runs"] >= 3
        assert f"({timing['min']:#.3g}-" in report
    assert saved["dynamic"]["control_flow"]["trips"] == [2, 9, 22]
    assert "recomputes each trip's cell" in report
    for warning in saved["spread_warnings"]:
        assert warning in printed and warning in report
    for model in ("MLP", "CNN"):
        assert results["training"][model]["compiled"]["kernels_per_step"] < \
            results["training"][model]["eager"]["kernels_per_step"]
    both = results["compiler"]["runtimes"]
    pngs = ["loss_curves.png", "time_per_step.png", "memory_per_step.png",
            "cnn_loss_curves.png", "while_loop.png", "rnn_step.png",
            "block_before_fusion.png", "block_after_fusion.png"]
    if "skipped" in both:  # no OpenCL device: the section says how to get one
        assert "pocl-opencl-icd" in both["skipped"] and "OpenCL runtime is skipped" in printed
    else:
        assert set(both["rows"]) == {"layer_norm", "softmax", "gelu_tanh"}
        assert both["mlp"]["opencl_ms"]["median"] > 0
        assert abs(sum(both["mlp"]["opencl_share"].values()) - 1) < 1e-9
        assert "OpenCL device:" in printed
        pngs.append("runtimes_crossover.png")
    scaled = results["scale_out"]
    assert scaled["allreduces_per_step"]["without"] == 4
    if "skipped" in scaled:  # no MPI: the section says how to install it
        assert "pip install -e '.[distributed]'" in scaled["skipped"]
    else:
        assert max(scaled["loss_gap_vs_1_rank"].values()) < 1e-10
        pngs += ["scale_out_loss.png", "scale_out_step.png"]
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
    eager_run, _ = training.train_eager(data, epochs, lambda k: None)
    compiled_run, *_ = training.train_compiled(data, epochs, lambda k: None)
    assert eager_run.accuracy >= 0.95 and compiled_run.accuracy >= 0.95
    assert eager_run.losses == compiled_run.losses


def _halved_in_numpy(x: np.ndarray) -> tuple[np.ndarray, int]:
    trips = 0
    while np.linalg.norm(x) > 1:
        x, trips = x * np.float32(0.5), trips + 1
    return x, trips


def test_the_data_dependent_loop_three_ways(tmp_path) -> None:
    flow = dynamic.control_flow(SimpleNamespace(out=tmp_path), repeats=1)
    looped = sg.trace(dynamic.halve_while_loop, dynamic.loop_inputs()[0])
    unrolled = sg.trace(dynamic.halve_as_graph, dynamic.loop_inputs()[0])
    for x, trips in zip(dynamic.loop_inputs(), flow["trips"]):
        expected, expected_trips = _halved_in_numpy(x)
        value, graph_trips = looped(x)
        assert trips == graph_trips == expected_trips
        np.testing.assert_allclose(value, expected, rtol=1e-6)
        np.testing.assert_allclose(unrolled(x), expected, rtol=1e-6)
    assert 0 < flow["trips"][0] < flow["trips"][1] < flow["trips"][2] <= 32
    assert looped.traces == 1  # one graph serves every trip count
    for way in ("eager", "sg.while_loop", "unrolled (32 steps)"):
        for timing in flow["us"][way]:
            assert 0 < timing["min"] <= timing["median"] <= timing["max"]
    if plots.available():
        assert flow["figure"].stat().st_size > 1000


def test_the_rnn_step_as_a_scan_matches_torch_in_float64() -> None:
    torch = pytest.importorskip("torch")
    data = rnn.sequences()
    mode, _ = rnn.compiled(data)
    loss, grads = mode.gradients()
    xs, labels, h = (torch.from_numpy(a) for a in data)
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True)
              for w in rnn.rnn_weights()]
    wx, wh, b, wo, bo = params

    def torch_loss():
        state = h.double()
        for x in xs.double():
            state = torch.tanh(x @ wx + state @ wh + b)
        return torch.nn.functional.cross_entropy(state @ wo + bo, labels)
    expected = torch_loss()
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    for ours, param in zip(grads, params):
        np.testing.assert_allclose(ours, param.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert mode.step() == pytest.approx(expected.item(), rel=1e-5)
    with torch.no_grad():  # the compiled step's update, by hand
        for param in params:
            param -= rnn.LR * param.grad
    assert mode.gradients()[0] == pytest.approx(torch_loss().item(), rel=1e-5)


def test_the_rnn_section_says_what_each_side_pays(tmp_path) -> None:
    with measuring(arguments("t", ["--quick", "--threads", "1", "--out", str(tmp_path)])) as ctx:
        section = rnn.run(ctx, repeats=3)
    r = section["data"]
    torch = {"torch"} if ctx.torch is not None else set()
    assert set(r["loss_at_start"]) == {"eager", "compiled"} | torch
    for gaps in r["gaps_from_eager"].values():
        assert gaps["loss"] < 1e-5 and gaps["gradients_relative"] < 1e-4
    assert r["compiled_body_calls"] == 2 * rnn.STEPS  # a forward scan and its reverse
    assert r["eager_ops"] > 6 * rnn.STEPS > r["compiled_kernels"]
    assert 0 < r["per_trip_bytes"] <= r["planned_peak_bytes"] and r["eager_peak_bytes"] > 0
    assert [rnn.STEPS, rnn.BATCH, rnn.HIDDEN] in r["per_trip_arrays"]
    for timing in r["ms"].values():
        assert 0 < timing["min"] <= timing["median"] <= timing["max"] and timing["runs"] >= 3
    for words in ("What each side pays", "recomputes each trip's cell", "compiling:"):
        assert words in section["text"]


def test_every_pool_takes_the_threads_asked_for_and_gets_its_own_back(tmp_path) -> None:
    torch_before = _torch_threads()  # imports torch first: its OpenMP is one of the pools
    before = threadpoolctl.threadpool_info()
    with measuring(arguments("t", ["--threads", "1", "--out", str(tmp_path)])) as ctx:
        assert {pool["num_threads"] for pool in threadpoolctl.threadpool_info()} == {1}
        assert _torch_threads() in (None, 1)
        assert set(ctx.thread_counts.values()) == {1} and "numpy's openblas" in ctx.thread_counts
        assert "--threads 1 " in how_timed(ctx) and "numpy's openblas 1" in how_timed(ctx)
    assert threadpoolctl.threadpool_info() == before and _torch_threads() == torch_before


def test_threads_default_to_half_the_cores_and_must_be_positive(capsys) -> None:
    assert arguments("t", []).threads == max(1, common.cores() // 2) == common.default_threads()
    with pytest.raises(SystemExit):
        arguments("t", ["--threads", "0"])
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err


def _programs_on_a_fake_clock(monkeypatch, milliseconds: dict[str, list[float]]) -> dict:
    """Programs that take the given times, in turn, on a clock that only they move."""
    now = [0.0]
    monkeypatch.setattr(common.time, "perf_counter", lambda: now[0])

    def program(times: list[float]):
        durations = itertools.cycle(times)
        return lambda: now.__setitem__(0, now[0] + next(durations) / 1e3)
    return {name: program(times) for name, times in milliseconds.items()}


def test_a_measurement_whose_runs_spread_wide_is_warned_of(monkeypatch, capsys) -> None:
    monkeypatch.setattr(common, "SPREAD_WARNINGS", [])
    programs = _programs_on_a_fake_clock(monkeypatch, {
        "steady": [1.0, 1.1, 1.05, 0.95] * 3 + [30.0],  # a slow run now and then: no warning
        "busy": [1.0, 30.0]})                            # half the runs 30x slower: a warning
    timings = interleaved(programs, 30, "fake step")
    (warning,) = common.SPREAD_WARNINGS
    assert warning.startswith("warning: fake step, busy: runs spread from 1.00 to 30.0 ms")
    assert "--threads 1" in warning and warning in capsys.readouterr().err
    steady = timings["steady"].summary("ms")
    assert steady["min"] == pytest.approx(0.95) and steady["max"] == pytest.approx(30.0)
    assert steady["min"] <= steady["q1"] <= steady["median"] <= steady["q3"] <= steady["max"]
    assert steady["runs"] == 30 and timings["steady"].spread_warning("x") is None


def test_a_timing_shows_its_median_with_the_fastest_and_slowest_run() -> None:
    timing = Timing((0.00041, 0.00039, 0.00052))
    assert timing.median == 0.00041
    assert shown(timing.summary("ms")) == "0.410 ms (0.390-0.520)"
    assert shown(Timing((0.12, 0.125, 0.2)).summary("ms")) == "125 ms (120-200)"


def test_scale_out_counts_an_allreduce_per_parameter_and_fewer_when_bucketed() -> None:
    counts = scale_out.allreduces_per_step()
    assert counts["without"] == counts["parameters"] == 4
    if counts["bucketing_pass"] is not None:
        assert counts["with"] <= 3


def test_scale_out_on_two_ranks_follows_one_process_on_the_whole_batch() -> None:
    """Rank 0's losses (each the mean over both ranks' halves of the global batch) against
    one process training on the whole batch without MPI, in float64."""
    if scale_out.missing():
        pytest.skip(scale_out.missing())
    found = scale_out.launch(2, "--steps", "6", "--repeats", "3")
    g, x, y, loss, step = scale_out.mlp_step(training.SIZES, "float64", distributed=False)
    session = sg.Session(g)
    images, labels, *_ = training.load_digits()
    expected = [float(session.run([loss, step], {x: images[i], y: labels[i]})[0])
                for i in itertools.islice(training.batches(len(labels), 1), 6)]
    np.testing.assert_allclose(found["digits"]["losses"], expected, rtol=0, atol=1e-10)
    assert found["ranks"] == 2 and found["digits"]["rows_per_rank"] == training.BATCH // 2
    for timing in found["digits"]["ms"].values():
        assert 0 < timing["min"] <= timing["median"] <= timing["max"]


def test_without_mpi4py_scale_out_says_how_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if not installed
    with measuring(arguments("t", ["--quick", "--out", str(tmp_path)])) as ctx:
        section = scale_out.run(ctx)
    assert "pip install -e '.[distributed]'" in section["data"]["skipped"]
    assert section["text"].startswith("skipped: mpi4py is not installed")
    assert section["data"]["allreduces_per_step"]["without"] == 4
