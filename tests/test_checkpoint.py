"""Checkpointer: save and restore every Variable (optimizer slots too) and each rank's random
state; a resumed run follows the uninterrupted run's loss curve exactly; keep=K prunes;
damaged files are skipped, with a warning, never loaded. Then for real on 2 ranks: a job
killed at step 5 and restarted ends with the uninterrupted job's weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import staticgraph as sg
from staticgraph.distributed.checkpoint import Checkpointer
from staticgraph.nn.functional import dropout

data = np.random.default_rng(0).standard_normal((12, 4))
labels = np.random.default_rng(1).integers(0, 3, 12)


def model(init_seed: int = 0):
    """A tiny MLP with dropout (so the random state matters) trained by SGD with momentum
    (so the optimizer's slots matter), built afresh as a restarted process would."""
    with sg.Graph().as_default() as graph:
        inputs = sg.placeholder((None, 4), "float64")
        targets = sg.placeholder((None,), "int64")
        init = np.random.default_rng(init_seed)
        w1 = sg.Variable(init.standard_normal((4, 5)), name="w1")
        w2 = sg.Variable(init.standard_normal((5, 3)), name="w2")
        loss = sg.cross_entropy(dropout((inputs @ w1).tanh(), 0.4) @ w2, targets)
        train = sg.optim.SGD(0.1, momentum=0.9).minimize(loss)
    return graph, loss, train, inputs, targets


def run_steps(sess: sg.Session, parts, ckpt: Checkpointer, start: int, stop: int) -> list:
    """Training steps start+1 .. stop, each on a batch chosen by its step number."""
    _, loss, train, inputs, targets = parts
    losses = []
    for step in range(start, stop):
        rows = (np.arange(6) + 3 * step) % 12
        losses.append(sess.run([loss, train], {inputs: data[rows], targets: labels[rows]})[0])
        ckpt.step(step + 1)
    return losses


def values(sess: sg.Session) -> dict[str, np.ndarray]:
    return {v.name: sess.run(v) for v in sess.graph.variables}


def test_restore_brings_back_every_variable_slots_and_the_seed(tmp_path) -> None:
    parts = model()
    saved = sg.Session(parts[0], seed=5)
    run_steps(saved, parts, Checkpointer(saved, tmp_path, every=3), 0, 3)
    assert any("momentum" in name for name in values(saved))  # the optimizer's slots
    fresh = sg.Session(model(init_seed=1)[0])  # other weights, another seed
    assert Checkpointer(fresh, tmp_path).restore() == 3
    assert fresh.seed == 5
    expected, got = values(saved), values(fresh)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_without_a_checkpoint_restore_starts_at_zero_changing_nothing(tmp_path) -> None:
    graph = model()[0]
    sess = sg.Session(graph, seed=9)
    before = values(sess)
    assert Checkpointer(sess, tmp_path / "none_yet").restore() == 0
    assert sess.seed == 9
    for name, value in values(sess).items():
        np.testing.assert_array_equal(value, before[name])


def test_a_resumed_run_follows_the_uninterrupted_loss_curve_exactly(tmp_path) -> None:
    parts = model()
    whole = sg.Session(parts[0], seed=7)
    expected = run_steps(whole, parts, Checkpointer(whole, tmp_path / "whole", every=2), 0, 6)

    cut = model()
    first = sg.Session(cut[0], seed=7)
    run_steps(first, cut, Checkpointer(first, tmp_path / "cut", every=2), 0, 5)  # then dies
    again = model(init_seed=3)
    restarted = sg.Session(again[0])  # unseeded: the seed comes back with the checkpoint
    ckpt = Checkpointer(restarted, tmp_path / "cut", every=2)
    start = ckpt.restore()
    assert start == 4
    np.testing.assert_array_equal(run_steps(restarted, again, ckpt, start, 6), expected[4:])
    for name, value in values(restarted).items():
        np.testing.assert_array_equal(value, values(whole)[name], err_msg=name)

    # The random state is what makes it exact: the Variables alone resume another curve.
    variables_only = sg.Session(again[0], seed=7)
    variables_only.restore(tmp_path / "cut" / "step_000004.npz")
    other = run_steps(variables_only, again, Checkpointer(variables_only, tmp_path / "x"), 4, 6)
    assert not np.allclose(other, expected[4:])


def counter(tmp_path: Path, **options) -> tuple[sg.Session, Checkpointer]:
    """A Session whose one Variable holds the step it was saved at."""
    with sg.Graph().as_default() as graph:
        sg.Variable(np.zeros(3), name="w")
    sess = sg.Session(graph, seed=1)
    return sess, Checkpointer(sess, tmp_path, **options)


def save_steps(sess: sg.Session, ckpt: Checkpointer, steps) -> None:
    for step in steps:
        sess.assign(sess.graph.variables[0], np.full(3, float(step)))
        ckpt.step(step)


def test_keep_prunes_to_the_newest_k(tmp_path) -> None:
    sess, ckpt = counter(tmp_path / "two", every=1, keep=2)
    save_steps(sess, ckpt, range(1, 6))
    assert [s for s, _ in ckpt.checkpoints] == [4, 5]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "step_000004.npz", "step_000005.npz"]  # nothing half written left behind
    sess, ckpt = counter(tmp_path / "all", every=2, keep=None)
    save_steps(sess, ckpt, range(1, 7))
    assert [s for s, _ in ckpt.checkpoints] == [2, 4, 6]


def test_saving_drops_later_checkpoints_of_a_run_not_resumed(tmp_path) -> None:
    """Started over without restore: the old run's step 8 must not win the next restore."""
    sess, ckpt = counter(tmp_path, every=2, keep=3)
    save_steps(sess, ckpt, [2, 4, 6, 8])
    save_steps(sess, ckpt, [2, 4])
    assert [s for s, _ in ckpt.checkpoints] == [2, 4]


def test_damaged_checkpoints_are_skipped_for_the_newest_complete_one(tmp_path) -> None:
    sess, ckpt = counter(tmp_path, every=2, keep=None)
    save_steps(sess, ckpt, [2, 4, 6, 8])
    truncated = ckpt.path(4).read_bytes()
    ckpt.path(4).write_bytes(truncated[:len(truncated) // 2])
    flipped = bytearray(ckpt.path(6).read_bytes())
    flipped[100] ^= 1  # inside the first member's data: only its CRC shows it
    ckpt.path(6).write_bytes(bytes(flipped))
    sess.save(ckpt.path(8))  # a plain Session.save file: no random state
    partial = tmp_path / ".step_000010.npz.partial"  # left by a writer killed mid-way
    partial.write_bytes(b"half a zip")

    fresh, again = counter(tmp_path)
    with pytest.warns(UserWarning) as caught:
        assert again.restore() == 2
    said = [str(w.message) for w in caught]
    assert len(said) == 3
    assert "step_000008.npz" in said[0] and "Session.save wrote it" in said[0]
    assert "step_000006.npz" in said[1] and "Bad CRC-32" in said[1]
    assert "step_000004.npz" in said[2]
    np.testing.assert_array_equal(fresh.run(fresh.graph.variables[0]), [2.0, 2.0, 2.0])
    assert not partial.exists()


def test_when_every_checkpoint_is_damaged_restore_refuses(tmp_path) -> None:
    (tmp_path / "step_000002.npz").write_bytes(b"not a zip at all")
    sess, ckpt = counter(tmp_path)
    with pytest.warns(UserWarning, match="step_000002"), \
            pytest.raises(ValueError, match="none of the 1 checkpoints .* reads back complete"):
        ckpt.restore()


def test_a_checkpoint_of_another_model_is_an_error_not_skipped(tmp_path) -> None:
    sess, ckpt = counter(tmp_path, every=1)
    save_steps(sess, ckpt, [1])
    with sg.Graph().as_default() as graph:
        sg.Variable(np.zeros(4), name="w")
    with pytest.raises(ValueError, match="shape"):
        Checkpointer(sg.Session(graph), tmp_path).restore()
    with sg.Graph().as_default() as graph:
        sg.Variable(np.zeros(3), name="v")
    with pytest.raises(KeyError, match="'v'"):
        Checkpointer(sg.Session(graph), tmp_path).restore()


def test_bad_arguments_say_what_was_expected(tmp_path) -> None:
    sess = counter(tmp_path)[0]
    with pytest.raises(ValueError, match="every must be .* >= 1, got 0"):
        Checkpointer(sess, tmp_path, every=0)
    with pytest.raises(ValueError, match="keep must be .* got 0"):
        Checkpointer(sess, tmp_path, keep=0)


def test_a_killed_two_rank_job_resumes_where_it_was_saved(tmp_path) -> None:
    pytest.importorskip("mpi4py", reason="pip install -e '.[distributed]' for MPI tests")
    from test_distributed import launch

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    first = launch(2, "checkpoint_job.py", "first", str(whole), str(cut),
                   str(tmp_path / "first.json"), timeout=60)
    assert first.returncode != 0
    assert "rank 1 of 2 failed" in first.stderr and "before step 5" in first.stderr
    assert "unreachable" not in first.stdout
    assert sorted(p.name for p in cut.iterdir()) == ["step_000002.npz", "step_000004.npz"]

    resumed = launch(2, "checkpoint_job.py", "resume", str(cut), str(tmp_path / "resumed.json"),
                     timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    expected = json.loads((tmp_path / "first.json").read_text())
    got = json.loads((tmp_path / "resumed.json").read_text())
    assert expected["start"] == 0 and got["start"] == 4
    np.testing.assert_allclose(got["losses"], expected["losses"][4:], rtol=0, atol=1e-12)
    ranks = np.array(got["ranks_state"])  # every Variable (Adam's too) on each rank
    assert ranks.shape[0] == 2
    np.testing.assert_allclose(ranks, expected["ranks_state"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ranks[0], ranks[1])
