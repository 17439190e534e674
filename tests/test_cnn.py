"""Convolutional networks in graph mode (issue 12): batch norm's running statistics and
dropout's random draws, which live in the Session, checked against torch and eager; one
model function taking ``F`` run both ways. (Each operation's values and gradients are in
tests/opspecs.py; eager's layers in tests/test_eager_cnn.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import eager
import staticgraph as sg
from staticgraph import DTypeError, ShapeError
from staticgraph.graph import Role
from staticgraph.ops import P
from staticgraph.passes import DEFAULT_PASSES
from staticgraph.passes.dce import eliminate_dead_code
from staticgraph.passes.fold_affine import fold_channel_affine
from staticgraph.ops import functional as F

RNG = np.random.default_rng(0)
IMAGES = RNG.standard_normal((8, 4, 5, 5)).astype(np.float32)


def _batch_norm_graph(momentum: float = 0.1):
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 4, 5, 5), name="x")
        training = sg.placeholder((), "bool", name="training")
        mean = sg.Variable(np.zeros(4, np.float32), name="running_mean", trainable=False)
        var = sg.Variable(np.ones(4, np.float32), name="running_var", trainable=False)
        weight = sg.Variable(np.linspace(0.5, 2, 4).astype(np.float32), name="weight")
        bias = sg.Variable(np.full(4, 0.25, np.float32), name="bias")
        y = sg.nn.functional.batch_norm(x, mean, var, weight, bias, training=training,
                                        momentum=momentum)
    return g, x, training, y, mean, var


def test_batch_norm_running_statistics_follow_torch_in_a_graph(backend) -> None:
    torch = pytest.importorskip("torch")
    g, x, training, y, mean, var = _batch_norm_graph(momentum=0.3)
    session = sg.Session(g, backend=backend)
    layer = torch.nn.BatchNorm2d(4, momentum=0.3)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(0.5, 2, 4))
        layer.bias.fill_(0.25)
    for k in range(3):  # training steps move the running statistics...
        batch = IMAGES * (k + 1) + k
        got = session.run(y, {x: batch, training: True})
        np.testing.assert_allclose(got, layer.train()(torch.tensor(batch)).detach().numpy(),
                                   rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(session.run(mean), layer.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(session.run(var), layer.running_var.numpy(), rtol=1e-5)
    before = session.run(var).copy()
    got = session.run(y, {x: IMAGES, training: False})  # ...evaluation uses them, unmoved
    np.testing.assert_allclose(got, layer.eval()(torch.tensor(IMAGES)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(session.run(var), before)


def test_batch_norm_in_training_needs_variables_for_its_statistics() -> None:
    with sg.Graph().as_default():
        x = sg.placeholder((2, 3), name="x")
        with pytest.raises(TypeError, match="'running_mean' must be a sg.Variable, not a "
                                            "constant"):
            F.batch_norm(x, sg.constant(np.zeros(3, np.float32), name="running_mean"),
                         sg.constant(np.ones(3, np.float32)), training=True)
        with pytest.raises(ValueError, match="running_mean and running_var must be defined "
                                             "in evaluation mode"):
            F.batch_norm(x, None, None, training=False)
        with pytest.raises(ValueError, match="Expected more than 1 value per channel when "
                                             r"training, got input size \[1, 3\]"):
            F.batch_norm(sg.placeholder((1, 3)), None, None, training=True)


def _dropout_graph(p: float):
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 1000), name="x")
        training = sg.placeholder((), "bool", name="training")
        first = sg.nn.functional.dropout(x, p, training=training)
        second = sg.nn.functional.dropout(x, p, training=training)
    return g, x, training, first, second


def test_dropout_draws_anew_each_run_and_a_seed_repeats_the_runs(backend) -> None:
    g, x, training, first, second = _dropout_graph(0.25)
    ones = np.ones((4, 1000), np.float32)
    session = sg.Session(g, backend=backend, seed=7)
    runs = [session.run([first, second], {x: ones, training: True}) for _ in range(3)]
    a, b = runs[0]
    assert abs((a == 0).mean() - 0.25) < 0.02  # the rate...
    np.testing.assert_array_equal(np.unique(a), np.float32([0, 1 / 0.75]))  # ...the scale
    assert not np.array_equal(a, b), "two dropouts in one run draw differently"
    assert not np.array_equal(a, runs[1][0]), "each run draws anew"
    again = sg.Session(g, backend=backend, seed=7)
    for run in runs:  # the same seed, the same sequence of runs
        np.testing.assert_array_equal(again.run([first, second], {x: ones, training: True}),
                                      run)
    np.testing.assert_array_equal(session.run(first, {x: ones, training: False}), ones)


def test_dropout_gradient_is_its_mask_and_eager_follows_its_generator() -> None:
    g, x, training, first, _ = _dropout_graph(0.5)
    with g.as_default():
        (grad,) = sg.gradients(first.sum(), [x])
    out, dx = sg.Session(g, seed=1).run([first, grad], {x: np.full((2, 1000), 3.0, np.float32),
                                                        training: True})
    np.testing.assert_array_equal(dx, out / 3)  # the kept elements' scale, 0 elsewhere
    eager.manual_seed(5)
    a = F.dropout(eager.ones(1000), 0.5)
    eager.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(eager.ones(1000), 0.5).numpy(), a.numpy())
    assert F.dropout(eager.ones(3), 0.5, training=False).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but "
                                         "got 1.5"):
        F.dropout(eager.ones(3), 1.5)


def small_cnn(F, x, c1, k1, gamma, beta, mean, var, w, b, training):
    """One model function for both modes: conv, batch norm, leaky relu, pool, dropout,
    linear."""
    h = F.conv2d(x, c1, k1, padding="same")
    h = F.batch_norm(h, mean, var, gamma, beta, training=training)
    h = F.max_pool2d(F.leaky_relu(h, 0.1), 2, ceil_mode=True)
    h = F.dropout(h, 0.3, training=training)
    return F.linear(h.flatten(1), w, b)


def _cnn_weights():
    rng = np.random.default_rng(1)
    return [rng.standard_normal(s).astype(np.float32) * 0.3 for s in
            [(6, 4, 3, 3), (6,), (6,), (6,), (6,), (6,), (10, 54), (10,)]]


def test_one_model_function_runs_eagerly_and_as_a_compiled_graph() -> None:
    c1, k1, gamma, beta, mean, var, w, b = _cnn_weights()
    var = np.abs(var) + 0.5
    tensors = [eager.tensor(a, requires_grad=True) for a in (c1, k1, gamma, beta, w, b)]
    x = eager.tensor(IMAGES)
    out = small_cnn(F, x, *tensors[:4], eager.tensor(mean), eager.tensor(var), *tensors[4:],
                    training=False)
    out.sum().backward()
    g = sg.Graph()
    with g.as_default():
        xs = sg.placeholder((None, 4, 5, 5), name="x")
        params = [sg.Variable(a) for a in (c1, k1, gamma, beta, w, b)]
        stats = [sg.Variable(a, trainable=False) for a in (mean, var)]
        node = small_cnn(sg.nn.functional, xs, *params[:4], *stats, *params[4:],
                         training=False)
        grads = sg.gradients(node.sum(), params)
    values = sg.Session(g).run([node, *grads], {xs: IMAGES})
    np.testing.assert_allclose(values[0], out.detach().numpy(), rtol=1e-5, atol=1e-5)
    for got, t in zip(values[1:], tensors):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_a_compiled_cnn_plans_its_im2col_buffers_and_fuses_the_bias_with_the_activation(
        ) -> None:
    c1, k1, *_ = _cnn_weights()
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 4, 5, 5), name="x")
        y = sg.nn.functional.relu(sg.nn.functional.conv2d(x, sg.Variable(c1), sg.Variable(k1)))
    compiled = sg.Session(g).compiled(y, {x: IMAGES})
    steps = [n.prim.name for n in compiled.graph.nodes if n.prim is not None]
    assert [s for s in steps if s != "reshape"] == ["im2col", "matmul"], steps  # decomposed
    im2col = next(n for n in compiled.graph.nodes if n.prim is P.im2col)
    assert im2col in compiled.memory.storage  # a planned buffer, like any other value
    assert "fused [elementwise, 8 rows]: add -> relu" in compiled.explain()


def test_staticgraph_nn_functional_is_eagers() -> None:
    from staticgraph.ops.functional import NN_FUNCTIONAL
    for name in NN_FUNCTIONAL:
        assert getattr(sg.nn.functional, name) is getattr(F, name)
        assert getattr(eager.nn.functional, name) is getattr(F, name), name


def _conv_batch_norm_graph(training):
    c1, k1, gamma, beta, mean, var, *_ = _cnn_weights()
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder((None, 4, 5, 5), name="x")
        w = sg.Variable(c1, name="w")
        stats = [sg.Variable(a, trainable=False) for a in (mean, np.abs(var) + 0.5)]
        y = sg.nn.functional.batch_norm(sg.nn.functional.conv2d(x, w, sg.Variable(k1)), *stats,
                                        sg.Variable(gamma), sg.Variable(beta),
                                        training=training)
    return g, x, w, y.relu()


def test_batch_norm_folds_into_the_convolution_of_an_inference_graph() -> None:
    g, x, w, y = _conv_batch_norm_graph(training=False)
    compiled = sg.Session(g).compiled(y, {x: IMAGES})
    folded = eliminate_dead_code(fold_channel_affine(compiled.specialized))
    prims = [n.prim for n in folded.nodes if n.role is Role.OP]
    assert P.batch_norm not in prims and prims.count(P.conv2d) == 1
    without = sg.Session(g, passes=[p for p in DEFAULT_PASSES if p != "fold_channel_affine"])
    np.testing.assert_allclose(sg.Session(g).run(y, {x: IMAGES}), without.run(y, {x: IMAGES}),
                               rtol=1e-5, atol=1e-5)


def test_batch_norm_stays_where_its_input_is_read_again_or_it_trains() -> None:
    for training in (False, True):
        g, x, w, y = _conv_batch_norm_graph(training)
        with g.as_default():
            (dw,) = sg.gradients(y.sum(), [w])  # the gradient reads the conv's output too
        program = sg.Session(g).compiled([y, dw], {x: IMAGES}).specialized
        assert P.batch_norm in [n.prim for n in fold_channel_affine(program).nodes]


@pytest.mark.parametrize("call, error, message", [
    (lambda x: F.conv2d(x, np.zeros((6, 2, 3, 3), np.float32)), ShapeError,
     r"Given groups=1, weight of size \[6, 2, 3, 3\], expected input\[8, 4, 5, 5\] to have 2 "
     "channels, but got 4 channels instead"),
    (lambda x: F.conv2d(x, np.zeros((6, 4, 3, 3))), DTypeError,
     r"Input type \(torch.FloatTensor\) and weight type \(torch.DoubleTensor\) should be the "
     "same"),
    (lambda x: F.conv2d(x, np.zeros((6, 4, 3, 3), np.float32), stride=2, padding="same"),
     ValueError, "padding='same' is not supported for strided convolutions"),
    (lambda x: F.conv2d(x, np.zeros((6, 4, 7, 7), np.float32)), ShapeError,
     r"Calculated padded input size per channel: \(5 x 5\). Kernel size: \(7 x 7\). Kernel "
     "size can't be greater than actual input size"),
    (lambda x: F.max_pool2d(x, 2, padding=2), ValueError,
     "pad should be at most half of effective kernel size, but got pad=2, kernel_size=2 and "
     "dilation=1"),
])
def test_convolutions_refuse_what_torch_refuses_in_both_modes(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call(eager.tensor(IMAGES))
    with sg.Graph().as_default():
        with pytest.raises(error, match=message):
            call(sg.placeholder(IMAGES.shape, name="x"))


def test_conv_transpose_refuses_output_padding_past_the_stride_in_both_modes() -> None:
    weight = np.ones((4, 2, 3, 3), np.float32)
    for x in (eager.tensor(IMAGES), sg.placeholder(IMAGES.shape, graph=sg.Graph())):
        with pytest.raises(NotImplementedError, match=r"output_padding \(1, 1\) must be "
                                                      r"smaller than the stride \(1, 1\)"):
            F.conv_transpose2d(x, weight, stride=1, dilation=2, output_padding=1)


def test_binary_cross_entropy_refuses_non_probabilities_in_compiled_graphs_too() -> None:
    with sg.Graph().as_default() as g:
        p = sg.placeholder((2,), name="p")
        loss = F.binary_cross_entropy(p, sg.constant(np.ones(2, np.float32)))
    with pytest.raises(sg.RunError, match="all elements of input should be between 0 and 1"):
        sg.Session(g).run(loss, {p: [0.5, 1.5]})  # (decomposed: the check is kept)
