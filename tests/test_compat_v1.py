"""TF1's programs on ``import staticgraph.compat.v1 as tf`` (issue 14), and what the native API
gained for them: Session as a context manager, zeros/ones/one_hot/square, clipping,
compute_gradients/apply_gradients, initializers. Oracles: TF1's documented results, numpy
formulas, torch."""

from __future__ import annotations

import collections
import math
import os

import numpy as np
import pytest

import staticgraph as sg
import staticgraph.compat.v1 as tf
from comparisons.training import load_digits

THIS_FILE = os.path.basename(__file__)


@pytest.fixture
def graph():
    """A fresh graph, the default one for the whole test."""
    g = sg.Graph()
    with g.as_default():
        yield g


# =============================================================================================
# Classic TF1 programs, as their users wrote them
# =============================================================================================


def test_the_getting_started_linear_regression_reaches_tfs_printed_result() -> None:
    # TensorFlow 1.x's "Getting Started" guide; it prints W: [-0.9999969] b: [ 0.99999082]
    # loss: 5.69997e-11. (Its placeholders had no shape; here they need their rank.)
    tf.reset_default_graph()
    W = tf.Variable([.3], dtype=tf.float32)
    b = tf.Variable([-.3], dtype=tf.float32)
    x = tf.placeholder(tf.float32, [None])
    linear_model = W * x + b
    y = tf.placeholder(tf.float32, [None])
    loss = tf.reduce_sum(tf.square(linear_model - y))
    optimizer = tf.train.GradientDescentOptimizer(0.01)
    train = optimizer.minimize(loss)

    x_train = [1, 2, 3, 4]
    y_train = [0, -1, -2, -3]
    init = tf.global_variables_initializer()
    sess = tf.Session()
    sess.run(init)
    for i in range(1000):
        sess.run(train, {x: x_train, y: y_train})
    curr_W, curr_b, curr_loss = sess.run([W, b, loss], {x: x_train, y: y_train})
    np.testing.assert_allclose(curr_W, [-0.9999969], atol=2e-5)
    np.testing.assert_allclose(curr_b, [0.99999082], atol=5e-5)
    assert curr_loss < 1e-8
    sess.close()


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[labels]


def test_softmax_regression_as_mnist_for_beginners_with_an_interactive_session() -> None:
    # "MNIST For ML Beginners", on the 8x8 digits: InteractiveSession, op.run(), tensor.eval()
    x_train, y_train, x_test, y_test = load_digits()
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [None, 64])
    W = tf.Variable(tf.zeros([64, 10]))
    b = tf.Variable(tf.zeros([10]))
    y = tf.nn.softmax(tf.matmul(x, W) + b)
    y_ = tf.placeholder(tf.float32, [None, 10])
    cross_entropy = tf.reduce_mean(-tf.reduce_sum(y_ * tf.log(y), reduction_indices=[1]))
    train_step = tf.train.GradientDescentOptimizer(0.5).minimize(cross_entropy)
    sess = tf.InteractiveSession()
    tf.global_variables_initializer().run()
    for epoch in range(10):
        for start in range(0, len(x_train), 100):
            batch_xs = x_train[start:start + 100]
            batch_ys = _one_hot(y_train[start:start + 100])
            sess.run(train_step, feed_dict={x: batch_xs, y_: batch_ys})
    correct_prediction = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
    result = accuracy.eval(feed_dict={x: x_test, y_: _one_hot(y_test)})
    assert result > 0.9
    expected = np.mean(np.argmax(x_test @ W.eval() + b.eval(), 1) == y_test)  # numpy's
    assert result == pytest.approx(expected)
    sess.close()
    assert sg.get_default_session() is None


def test_a_two_layer_mlp_with_adam_scopes_and_a_saver(tmp_path) -> None:
    x_train, y_train, x_test, y_test = load_digits()
    tf.reset_default_graph()
    tf.set_random_seed(0)

    def dense(inputs, units, name, activation=None):
        with tf.variable_scope(name):
            w = tf.get_variable("weights", [inputs.shape[1], units],
                                initializer=tf.truncated_normal_initializer(stddev=0.1))
            b = tf.get_variable("biases", [units], initializer=tf.zeros_initializer())
            out = tf.matmul(inputs, w) + b
            return activation(out) if activation else out

    images = tf.placeholder(tf.float32, shape=[None, 64], name="images")
    labels = tf.placeholder(tf.int32, shape=[None], name="labels")
    hidden = dense(images, 128, "hidden1", tf.nn.relu)
    logits = dense(hidden, 10, "softmax_linear")
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    global_step = tf.Variable(0, name="global_step", trainable=False)
    train_op = tf.train.AdamOptimizer(1e-2).minimize(loss, global_step=global_step)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32))
    saver = tf.train.Saver()

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for epoch in range(8):
            for start in range(0, len(x_train), 64):
                feed = {images: x_train[start:start + 64], labels: y_train[start:start + 64]}
                _, loss_value = sess.run([train_op, loss], feed_dict=feed)
        test_feed = {images: x_test, labels: y_test}
        trained = sess.run(accuracy, feed_dict=test_feed)
        path = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=global_step)
        steps = sess.run(global_step)
    assert loss_value < 0.2 and trained > 0.95
    assert steps == 8 * math.ceil(len(x_train) / 64) and path.endswith(f"model.ckpt-{steps}")
    assert [v.name for v in tf.trainable_variables()] == [
        "hidden1/weights", "hidden1/biases", "softmax_linear/weights", "softmax_linear/biases"]

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(accuracy, test_feed) < 0.5  # untrained
        saver.restore(sess, path)
        assert sess.run(accuracy, test_feed) == trained and sess.run(global_step) == steps


# =============================================================================================
# Sources, state and random values
# =============================================================================================


def test_placeholder_takes_dtype_first_and_needs_a_rank(graph) -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    assert (x.name, x.shape, x.dtype) == ("Placeholder", (None, 3), np.float32)
    assert tf.placeholder("float", [], name="lr").name == "lr"
    with pytest.raises(ValueError, match="needs a placeholder's rank .*None for a size known"):
        tf.placeholder(tf.float32)


def test_constant_fills_or_reshapes_to_a_shape(graph) -> None:
    filled, reshaped = tf.constant(0.1, shape=[2, 3]), tf.constant([1, 2, 3, 4], shape=[2, 2])
    assert filled.name == "Const" and filled.dtype == np.float32
    assert filled.value.tolist() == [[np.float32(0.1)] * 3] * 2
    assert reshaped.value.tolist() == [[1, 2], [3, 4]]
    assert tf.constant([1, 2], tf.float64).dtype == np.float64
    with pytest.raises(TypeError, match="Expected 4 values for shape \\[2, 2\\], got 3"):
        tf.constant([1, 2, 3], shape=[2, 2])


def test_variables_take_initial_values_computed_from_constants(graph) -> None:
    v = tf.Variable(tf.zeros([2, 3]) + tf.ones([3]) * 2)
    counter = tf.Variable(0, name="counter", trainable=False)
    assert v.name == "Variable" and v.trainable and v.value.tolist() == [[2.0] * 3] * 2
    assert counter.dtype == np.int64 and not counter.trainable
    x = tf.placeholder(tf.float32, [3], name="x")
    with pytest.raises(sg.GraphError, match="depends on placeholder 'x': it must be computable"):
        tf.Variable(x * 2, name="w")


def test_random_values_are_drawn_once_when_the_graph_is_built(graph) -> None:
    r = tf.random_normal([4, 5], mean=1.0, stddev=2.0, seed=3)
    with tf.Session() as sess:
        first, again = sess.run(r), sess.run(r)
    assert first.shape == (4, 5) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)  # (TF draws anew each run)


def _program_values(graph_seed, op_seed=None) -> tuple[np.ndarray, np.ndarray]:
    """The values of two random_normal ops of one program."""
    with sg.Graph().as_default():
        if graph_seed is not None:
            tf.set_random_seed(graph_seed)
        return tf.random_normal([3], seed=op_seed).value, tf.random_normal([3], seed=op_seed).value


@pytest.mark.parametrize("graph_seed,op_seed", [(1, None), (None, 7), (1, 7)])
def test_seeds_make_a_program_draw_the_same_numbers_each_time(graph_seed, op_seed) -> None:
    a, b = _program_values(graph_seed, op_seed)
    again = _program_values(graph_seed, op_seed)
    np.testing.assert_array_equal(a, again[0])
    np.testing.assert_array_equal(b, again[1])
    assert not np.array_equal(a, _program_values(2, 8)[0])
    # two ops with one op seed draw the same numbers (as in TF1); without, they differ
    assert np.array_equal(a, b) == (op_seed is not None)
    unseeded = _program_values(None)
    assert not np.array_equal(unseeded[0], _program_values(None)[0])


def test_random_ops_follow_their_distributions(graph) -> None:
    tf.set_random_seed(0)
    normal = tf.random_normal([20000], mean=1.0, stddev=2.0).value
    truncated = tf.truncated_normal([20000], mean=-1.0, stddev=0.5).value
    uniform = tf.random_uniform([20000], minval=2, maxval=5, dtype=tf.float64).value
    integers = tf.random_uniform([1000], minval=0, maxval=3, dtype=tf.int32).value
    assert normal.mean() == pytest.approx(1.0, abs=0.05) and normal.std() == pytest.approx(
        2.0, rel=0.03)
    assert np.abs(truncated + 1).max() <= 1.0 and truncated.std() == pytest.approx(
        0.5 * 0.8796, rel=0.03)  # a unit normal truncated at +-2 has std 0.8796
    assert uniform.dtype == np.float64 and 2 <= uniform.min() and uniform.max() < 5
    assert integers.dtype == np.int32 and set(integers.tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="Must specify maxval for integer dtype int32"):
        tf.random_uniform([2], dtype=tf.int32)


# =============================================================================================
# Scopes and get_variable
# =============================================================================================


def test_initializers_give_tf1s_values_and_distributions(graph) -> None:
    tf.set_random_seed(0)
    assert tf.zeros_initializer()([2]).tolist() == [0.0, 0.0]
    assert tf.ones_initializer(dtype=tf.int32)([2]).dtype == np.int32
    assert tf.constant_initializer([1, 2, 3, 4])([2, 2], tf.float64).tolist() == [[1, 2], [3, 4]]
    assert tf.constant_initializer(0.5)([3]).tolist() == [0.5] * 3
    normal = tf.random_normal_initializer(mean=2.0, stddev=0.5)([20000])
    assert normal.mean() == pytest.approx(2.0, abs=0.02)
    assert normal.std() == pytest.approx(0.5, rel=0.03)
    assert np.abs(tf.truncated_normal_initializer(stddev=0.1)([5000])).max() <= 0.2
    uniform = tf.random_uniform_initializer(-0.5, 0.5)([5000], tf.float64)
    assert uniform.dtype == np.float64 and -0.5 <= uniform.min() and uniform.max() < 0.5
    fan_in, fan_out = 300, 100
    glorot = tf.glorot_uniform_initializer()([fan_in, fan_out])
    limit = math.sqrt(6 / (fan_in + fan_out))
    assert glorot.max() <= limit and glorot.min() >= -limit and glorot.max() > 0.95 * limit
    glorot_normal = tf.glorot_normal_initializer()([fan_in, fan_out])
    assert glorot_normal.std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.03)
    # a 3x3 convolution from 16 to 32 channels: fan_in 9 * 16
    he = tf.variance_scaling_initializer(2.0, "fan_in", "untruncated_normal")([3, 3, 16, 32])
    assert he.std() == pytest.approx(math.sqrt(2 / 144), rel=0.03)
    with pytest.raises(ValueError, match="Invalid `mode` argument: 'fan'"):
        tf.variance_scaling_initializer(mode="fan")


def test_get_variable_names_by_variable_scope_not_name_scope(graph) -> None:
    with tf.variable_scope("layer1") as scope:
        with tf.name_scope("ops"):
            w = tf.get_variable("w", [3, 2])
            h = w * 2
        b = tf.get_variable("b", [2], initializer=tf.constant_initializer(0.1))
        with tf.variable_scope("inner"):
            c = tf.get_variable("c", initializer=tf.constant([1.0, 2.0]))
    assert (w.name, h.name, b.name, c.name) == ("layer1/w", "layer1/ops/mul", "layer1/b",
                                                "layer1/inner/c")
    assert scope.name == "layer1" and w.dtype == np.float32
    limit = math.sqrt(6 / 5)  # glorot_uniform_initializer, TF1's default
    assert np.abs(w.value).max() <= limit and b.value.tolist() == [np.float32(0.1)] * 2
    assert tf.get_variable("step", [], dtype=tf.int64).value == 0  # integers: zeros


def test_reuse_shares_variables_and_errors_are_tf1s(graph) -> None:
    def layer(x):
        w = tf.get_variable("w", [2, 2], initializer=tf.ones_initializer())
        return tf.matmul(x, w), w

    x = tf.placeholder(tf.float32, [None, 2])
    with tf.variable_scope("model"):
        _, w1 = layer(x)
    with pytest.raises(ValueError, match="Variable model/w already exists, disallowed. Did you "
                       "mean to set reuse=True or reuse=tf.AUTO_REUSE in VarScope\\? "
                       f"Originally defined at: .*{THIS_FILE}:"):
        with tf.variable_scope("model"):
            layer(x)
    with tf.variable_scope("model", reuse=True):
        _, w2 = layer(x)
        with tf.variable_scope("sub"):  # reuse is inherited
            with pytest.raises(ValueError, match="Variable model/sub/w does not exist, or was "
                               "not created with tf.get_variable\\(\\). Did you mean to set "
                               "reuse=tf.AUTO_REUSE in VarScope\\?"):
                layer(x)
        with pytest.raises(ValueError, match="Trying to share variable model/w, but specified "
                           "shape \\(3, 2\\) and found shape \\(2, 2\\)."):
            tf.get_variable("w", [3, 2])
        with pytest.raises(ValueError, match="Trying to share variable model/w, but specified "
                           "dtype float64 and found dtype float32."):
            tf.get_variable("w", [2, 2], tf.float64)
    with tf.variable_scope("auto", reuse=tf.AUTO_REUSE):
        a1, a2 = tf.get_variable("a", [1]), tf.get_variable("a", [1])
    assert w1 is w2 and a1 is a2
    assert len(graph.variables) == 2


def test_a_scope_object_reenters_and_reuse_variables_turns_sharing_on(graph) -> None:
    with tf.variable_scope("net") as net:
        v = tf.get_variable("v", [1])
        net.reuse_variables()
        assert tf.get_variable("v", [1]) is v
    with tf.variable_scope(net):
        assert tf.get_variable_scope().name == "net" and tf.get_variable("v") is v
    with tf.variable_scope("other", initializer=tf.ones_initializer()):
        assert tf.get_variable("u", [2]).value.tolist() == [1.0, 1.0]  # the scope's default
    with pytest.raises(ValueError, match="If initializer is a constant, do not specify shape."):
        tf.get_variable("k", [2], initializer=tf.constant([1.0, 2.0]))
    with pytest.raises(ValueError, match="Shape of a new variable \\(m\\) must be fully defined"):
        tf.get_variable("m")


def test_name_scope_yields_tf1s_scope_string_that_reenters_it(graph) -> None:
    with tf.name_scope("block") as scope:
        a = tf.constant(1.0) + 1
    with tf.name_scope("other"):
        with tf.name_scope(scope):  # absolute: back in "block", not "other/block"
            b = a * 2
    assert scope == "block/" and a.name == "block/add" and b.name == "block/mul"


def test_reset_and_get_default_graph() -> None:
    tf.reset_default_graph()
    first = tf.get_default_graph()
    tf.Variable(1.0)
    tf.reset_default_graph()
    assert tf.get_default_graph() is not first and len(tf.get_default_graph()) == 0
    assert len(first.variables) == 1


# =============================================================================================
# Math, reductions and nn
# =============================================================================================

X = np.array([[1.0, -2.0, 3.0], [4.0, 0.5, -6.0]], np.float32)


def _run(fetches, feed=None):
    with tf.Session() as sess:
        return sess.run(fetches, feed)


def test_reductions_take_tf1s_argument_names(graph) -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    fetches = [tf.reduce_sum(x), tf.reduce_sum(x, 1), tf.reduce_mean(x, axis=0, keepdims=True),
               tf.reduce_max(x, reduction_indices=[1], keep_dims=True), tf.reduce_min(x, 0),
               tf.reduce_prod(x, 1)]
    values = _run(fetches, {x: X})
    expected = [X.sum(), X.sum(1), X.mean(0, keepdims=True), X.max(1, keepdims=True), X.min(0),
                X.prod(1)]
    for value, want in zip(values, expected):
        assert value.shape == want.shape
        np.testing.assert_allclose(value, want, rtol=1e-6)
    with pytest.raises(ValueError, match="Cannot specify both 'axis' and 'reduction_indices'."):
        tf.reduce_sum(x, 1, reduction_indices=1)


def test_elementwise_math_and_comparisons_match_numpy(graph) -> None:
    x = tf.placeholder(tf.float32, [2, 3])
    a = np.abs(X) + 0.1
    cases = {tf.log(x): np.log(a), tf.square(x): a * a, tf.sqrt(x): np.sqrt(a),
             tf.exp(x): np.exp(a), tf.equal(x, a[0]): a == a[0],
             tf.greater(x, 1.0): a > 1, tf.less_equal(x, 1.0): a <= 1,
             tf.cast(x, tf.int32): a.astype(np.int32), tf.argmax(x): a.argmax(0),
             tf.argmax(x, 1, output_type=tf.int32): a.argmax(1).astype(np.int32),
             tf.matmul(x, x, transpose_b=True): a @ a.T,
             tf.matmul(x, x, transpose_a=True): a.T @ a}
    values = _run(list(cases), {x: a})
    for value, want in zip(values, cases.values()):
        assert value.dtype == want.dtype
        np.testing.assert_allclose(value, want, rtol=1e-6)


def test_dtypes_are_numpy_dtypes_under_tf1s_names() -> None:
    assert tf.float32 == np.float32 and tf.float64 == np.float64 and tf.int32 == np.int32
    assert tf.int64 == np.int64 and tf.bool == np.bool_ and tf.uint8 == np.uint8
    assert tf.float16 == np.float16 and tf.int8 == np.int8 and tf.int16 == np.int16


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_nn_functions_match_torch(graph) -> None:
    torch = pytest.importorskip("torch")
    logits = tf.placeholder(tf.float64, [None, 3])
    labels = tf.placeholder(tf.int64, [None])
    probs = tf.placeholder(tf.float64, [None, 3])
    z = X.astype(np.float64)
    sparse = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    dense = tf.nn.softmax_cross_entropy_with_logits_v2(labels=probs, logits=logits)
    dense_v1 = tf.nn.softmax_cross_entropy_with_logits(labels=probs, logits=logits)
    into_labels = tf.gradients(tf.reduce_sum(dense), [probs])[0]
    assert tf.gradients(tf.reduce_sum(dense_v1), [probs]) == [None]  # v1 stops it
    p = _softmax(z[::-1].copy())
    values = _run([tf.nn.relu(logits), tf.nn.softmax(logits), tf.nn.sigmoid(logits),
                   tf.nn.tanh(logits), sparse, dense, dense_v1, into_labels,
                   tf.nn.l2_loss(logits)], {logits: z, labels: [2, 0], probs: p})
    t, tp = torch.tensor(z), torch.tensor(p)
    expected = [t.relu(), t.softmax(-1), t.sigmoid(), t.tanh(),
                torch.nn.functional.cross_entropy(t, torch.tensor([2, 0]), reduction="none"),
                torch.nn.functional.cross_entropy(t, tp, reduction="none"),
                torch.nn.functional.cross_entropy(t, tp, reduction="none"),
                -t.log_softmax(-1), (t * t).sum() / 2]
    for value, want in zip(values, expected):
        np.testing.assert_allclose(value, want.numpy(), rtol=1e-12)


def test_clip_by_norm_and_global_norm_match_numpy(graph) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(5)
    ta, tb = tf.constant(a), tf.constant(b)
    norm = math.sqrt((a * a).sum() + (b * b).sum())
    (ca, none, cb), global_norm = tf.clip_by_global_norm([ta, None, tb], 1.5)
    (ua, _), _ = tf.clip_by_global_norm([ta, tb], 100.0)
    rows = tf.clip_by_norm(ta, 1.0, axes=[1])
    (inf_a, _), _ = tf.clip_by_global_norm([ta, tf.constant([np.inf])], 1.0)
    values = _run([ca, cb, global_norm, ua, rows, tf.clip_by_norm(ta, 1.0), inf_a])
    row_norms = np.sqrt((a * a).sum(1, keepdims=True))
    expected = [a * 1.5 / norm, b * 1.5 / norm, norm, a, a / np.maximum(row_norms, 1.0),
                a / np.sqrt((a * a).sum())]
    assert none is None
    for value, want in zip(values, expected):
        np.testing.assert_allclose(value, want, rtol=1e-12)
    assert np.isnan(values[-1]).all()  # a norm that is not finite: nan, as TF


def test_assign_ops_and_gradients(graph) -> None:
    v = tf.Variable([1.0, 2.0])
    x = tf.placeholder(tf.float32, [2])
    (dv, dx) = tf.gradients(tf.reduce_sum(v * x * x), [v, x])
    with tf.Session() as sess:
        assert sess.run([dv, dx], {x: [3.0, 4.0]})[1].tolist() == [6.0, 16.0]
        assert sess.run(tf.assign_add(v, [1.0, 1.0])).tolist() == [2.0, 3.0]
        assert sess.run(tf.assign_sub(v, [0.5, 0.5])).tolist() == [1.5, 2.5]
        assert sess.run(tf.assign(v, [0.0, 0.0])).tolist() == [0.0, 0.0]


# =============================================================================================
# Sessions
# =============================================================================================


def test_a_session_as_context_manager_is_the_default_then_closed(graph) -> None:
    v = tf.Variable(3.0)
    double = tf.assign(v, v * 2)
    with tf.Session() as sess:
        assert tf.get_default_session() is sess
        double.run()
        assert v.eval() == 6.0 and sess.run(v) == 6.0
    assert tf.get_default_session() is None and sess.closed
    for use in (lambda: sess.run(v), lambda: sess.assign(v, 1.0), lambda: double.run(session=sess)):
        with pytest.raises(RuntimeError, match="Attempted to use a closed Session."):
            use()
    with pytest.raises(ValueError, match="Cannot evaluate tensor using `eval\\(\\)`: No default "
                       "session is registered. Use `with sess.as_default\\(\\)`"):
        v.eval()
    with pytest.raises(ValueError, match="Cannot execute operation using `run\\(\\)`"):
        double.run()
    other = tf.Session()
    assert v.eval(session=other) == 3.0  # each Session its own values
    with other.as_default():
        assert v.eval() == 3.0
    assert not other.closed


def test_interactive_sessions_are_default_until_closed(graph) -> None:
    v = tf.Variable(1.0)
    first = tf.InteractiveSession()
    second = tf.InteractiveSession()
    assert tf.get_default_session() is second
    first.close()  # closed out of order: the other stays the default
    assert tf.get_default_session() is second and v.eval() == 1.0
    second.close()
    assert tf.get_default_session() is None


def test_global_variables_initializer_sets_variables_back(graph) -> None:
    w = tf.Variable([1.0, 2.0], name="w")
    u = tf.Variable(5.0, name="u")
    x = tf.placeholder(tf.float32, [2])
    step = tf.train.GradientDescentOptimizer(0.5).minimize(tf.reduce_sum(w * x) + u * u)
    init = tf.global_variables_initializer()
    assert init.name == "init" and tf.initialize_all_variables is tf.global_variables_initializer
    with tf.Session() as sess:
        sess.run(step, {x: [1.0, 1.0]})
        assert sess.run(w).tolist() == [0.5, 1.5] and sess.run(u) == 0.0
        sess.run(tf.variables_initializer([u]))
        assert sess.run(w).tolist() == [0.5, 1.5] and sess.run(u) == 5.0
        assert sess.run(init) is None
        assert sess.run(w).tolist() == [1.0, 2.0]


def test_variable_lists_and_their_scope_filter(graph) -> None:
    with tf.variable_scope("gen"):
        g1 = tf.get_variable("w", [1])
    with tf.variable_scope("disc"):
        d1 = tf.get_variable("w", [1])
        frozen = tf.Variable(1.0, False, name="frozen")
    assert tf.global_variables() == [g1, d1, frozen] and tf.trainable_variables() == [g1, d1]
    assert tf.trainable_variables(scope="disc") == [d1]
    assert tf.global_variables("disc") == [d1, frozen]


Pair = collections.namedtuple("Pair", ["loss", "grads"])


def test_run_takes_tf1s_feeds_and_nested_fetches(graph) -> None:
    x = tf.placeholder(tf.float32, [None], name="x")
    w = tf.Variable(2.0, name="w")
    y = tf.reduce_sum(x * w)
    (dw,) = tf.gradients(y, [w])
    update = tf.group(tf.assign(w, w + 1))
    with tf.Session() as sess:
        out = sess.run({"pair": Pair(y, [dw]), "update": update, "w": "w:0"}, {"x:0": [1, 2]})
        assert out["pair"] == Pair(6.0, [3.0]) and out["update"] is None and out["w"] == 2.0
        assert sess.run(x * 2, feed_dict={x: np.array([1.0], np.float64)}).dtype == np.float32


# =============================================================================================
# Optimizers and Saver
# =============================================================================================


def _regression(make_optimizer, split: bool, steps: int = 5):
    """w and b after ``steps`` updates on a least-squares problem, by ``minimize`` or by
    ``compute_gradients`` + ``apply_gradients``."""
    rng = np.random.default_rng(1)
    xs, ys = rng.standard_normal((8, 3)), rng.standard_normal(8)
    with sg.Graph().as_default():
        w, b = tf.Variable(np.ones(3)), tf.Variable(0.5, dtype=tf.float64)
        loss = tf.reduce_mean(tf.square(tf.matmul(xs, tf.expand_dims(w, 1))[:, 0] + b - ys))
        optimizer = make_optimizer()
        if split:
            update = optimizer.apply_gradients(optimizer.compute_gradients(loss))
        else:
            update = optimizer.minimize(loss)
        with tf.Session() as sess:
            for _ in range(steps):
                sess.run(update)
            return sess.run([w, b]), (xs, ys)


@pytest.mark.parametrize("make", [
    lambda: tf.train.GradientDescentOptimizer(0.1), lambda: tf.train.MomentumOptimizer(0.1, 0.9),
    lambda: tf.train.AdamOptimizer(0.1)], ids=["sgd", "momentum", "adam"])
def test_compute_then_apply_gradients_equals_minimize(make) -> None:
    (w1, b1), _ = _regression(make, split=False)
    (w2, b2), _ = _regression(make, split=True)
    np.testing.assert_array_equal(w1, w2)
    assert b1 == b2 and not np.allclose(w1, 1.0)


def _tf1_updates(kind: str, steps: int, xs, ys, lr: float = 0.1) -> np.ndarray:
    """TF1's update rules (training_ops), in numpy, on the problem of ``_regression``."""
    p = np.array([1.0, 1.0, 1.0, 0.5])
    X1 = np.hstack([xs, np.ones((len(xs), 1))])
    accum, m, v = np.zeros(4), np.zeros(4), np.zeros(4)
    for t in range(1, steps + 1):
        g = 2 * X1.T @ (X1 @ p - ys) / len(ys)
        if kind == "momentum":  # ApplyMomentum
            accum = 0.9 * accum + g
            p = p - lr * accum
        elif kind == "nesterov":
            accum = 0.9 * accum + g
            p = p - lr * (g + 0.9 * accum)
        else:  # ApplyAdam: epsilon added before the bias correction of lr
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            lr_t = lr * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            p = p - lr_t * m / (np.sqrt(v) + 1e-8)
    return p


@pytest.mark.parametrize("kind,make,atol", [
    ("momentum", lambda: tf.train.MomentumOptimizer(0.1, 0.9), 1e-12),
    ("nesterov", lambda: tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True), 1e-12),
    ("adam", lambda: tf.train.AdamOptimizer(0.1), 1e-6)])  # Adam: the epsilon's place
def test_optimizers_follow_tf1s_update_rules(kind, make, atol) -> None:
    (w, b), (xs, ys) = _regression(make, split=False, steps=6)
    np.testing.assert_allclose(np.append(w, b), _tf1_updates(kind, 6, xs, ys), rtol=0, atol=atol)


def test_apply_gradients_applies_changed_gradients_and_counts_steps(graph) -> None:
    w = tf.Variable([3.0, 4.0])
    frozen = tf.Variable(1.0, trainable=False, name="frozen")
    step = tf.Variable(0, trainable=False, name="global_step")
    optimizer = tf.train.GradientDescentOptimizer(1.0)
    grads_and_vars = optimizer.compute_gradients(tf.reduce_sum(w * w) + frozen)
    assert [v for _, v in grads_and_vars] == [w]
    clipped, _ = tf.clip_by_global_norm([g for g, _ in grads_and_vars], 1.0)
    update = optimizer.apply_gradients(list(zip(clipped, [w])), global_step=step)
    with tf.Session() as sess:
        sess.run(update)
        sess.run(update)
        assert np.allclose(sess.run(w), [3 - 1.2, 4 - 1.6]) and sess.run(step) == 2
    with pytest.raises(ValueError, match="No gradients provided for any variable: \\['frozen'\\]"):
        optimizer.apply_gradients([(None, frozen)])


def test_saver_keeps_max_to_keep_checkpoints_of_its_variables(graph, tmp_path) -> None:
    kept, other = tf.Variable([1.0, 2.0], name="kept"), tf.Variable(3.0, name="other")
    saver = tf.train.Saver([kept], max_to_keep=2)
    prefix = str(tmp_path / "ckpt")
    with tf.Session() as sess:
        paths = [saver.save(sess, prefix, global_step=step) for step in (1, 2, 3)]
        assert paths == [prefix + "-1", prefix + "-2", prefix + "-3"]
        assert [os.path.exists(p) for p in paths] == [False, True, True]
        assert saver.last_checkpoints == paths[1:]
        sess.run([tf.assign(kept, [0.0, 0.0]), tf.assign(other, 0.0)])
        saver.restore(sess, paths[-1])
        assert sess.run(kept).tolist() == [1.0, 2.0] and sess.run(other) == 0.0
    with pytest.raises(TypeError, match="give a list"):
        tf.train.Saver({"kept": kept})
    with sg.Graph().as_default(), pytest.raises(ValueError, match="No variables to save"):
        tf.train.Saver()


# =============================================================================================
# The native API's additions
# =============================================================================================


def test_native_zeros_ones_likes_square_and_one_hot(graph) -> None:
    i = sg.placeholder((None,), "int64", name="i")
    x = sg.placeholder((None, 2), name="x")
    fetches = [sg.zeros([2, 3]), sg.ones([2], sg.int32), sg.zeros_like(x), sg.ones_like(i),
               sg.ones_like(x, dtype=sg.float64), sg.square(x),
               sg.one_hot(i, 4), sg.one_hot(i, 3, on_value=5, off_value=-1, dtype=sg.int32)]
    data, idx = np.array([[1.0, -2.0]], np.float32), np.array([0, 3, -1])
    values = sg.Session(graph).run(fetches, {x: data, i: idx})
    hot = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], np.float32)  # -1: no class
    expected = [np.zeros((2, 3), np.float32), np.ones(2, np.int32), np.zeros_like(data),
                np.ones(3, np.int64), np.ones((1, 2)), data * data, hot,
                np.array([[5, -1, -1], [-1, -1, -1], [-1, -1, -1]], np.int32)]
    for value, want in zip(values, expected):
        assert value.dtype == want.dtype
        np.testing.assert_array_equal(value, want)
    with pytest.raises(TypeError, match="one_hot at .*: indices must be integers, got float32"):
        sg.one_hot(x, 3)


def test_native_session_closes_and_is_the_default_inside_with(graph, tmp_path) -> None:
    v = sg.Variable([1.0], name="v")
    with sg.Session(graph) as sess:
        assert sg.get_default_session() is sess and v.eval().tolist() == [1.0]
        sess.save(tmp_path / "v.npz")
    assert sess.closed and sg.get_default_session() is None
    for use in (lambda: sess.run(v), lambda: sess.save(tmp_path / "w.npz"),
                lambda: sess.restore(tmp_path / "v.npz"), lambda: sess.compiled(v)):
        with pytest.raises(RuntimeError, match="Attempted to use a closed Session."):
            use()
    sess.close()  # again: nothing happens


def test_native_graph_names_tf1s_tensor_names_and_absolute_scopes(graph) -> None:
    x = sg.placeholder((2,), name="x")
    with sg.name_scope("a"):
        with sg.name_scope("b") as scope:
            y = x + 1
        with sg.name_scope(scope + "/"):
            z = x * 2
        with sg.name_scope("/"):
            top = x - 1
    assert graph.get("x:0") is x and (y.name, z.name, top.name) == ("a/b/add", "a/b/mul", "sub")
    with pytest.raises(sg.GraphError, match="no node named 'x:1'"):
        graph.get("x:1")


def test_nn_dropout_draws_at_run_time_from_the_sessions_generator() -> None:
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [None, 2000])
    kept = tf.nn.dropout(x, keep_prob=0.8)
    ones = np.ones((2, 2000), np.float32)
    with tf.Session(seed=3) as sess:
        first, second = sess.run(kept, {x: ones}), sess.run(kept, {x: ones})
    assert abs((first == 0).mean() - 0.2) < 0.02 and not np.array_equal(first, second)
    np.testing.assert_allclose(np.unique(first), [0, 1 / 0.8], rtol=1e-6)
    with tf.Session(seed=3) as sess:
        np.testing.assert_array_equal(sess.run(kept, {x: ones}), first)
    with pytest.raises(ValueError, match="one of keep_prob and rate"):
        tf.nn.dropout(x)


def test_nn_dropout_takes_keep_prob_from_a_placeholder_as_tf1_tutorials_do() -> None:
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [None, 2000])
    keep_prob = tf.placeholder(tf.float32, [])
    kept = tf.nn.dropout(x, keep_prob)
    ones = np.ones((2, 2000), np.float32)
    with tf.Session(seed=1) as sess:
        train = sess.run(kept, {x: ones, keep_prob: 0.5})
        test = sess.run(kept, {x: ones, keep_prob: 1.0})
    assert abs((train == 0).mean() - 0.5) < 0.03 and set(np.unique(train)) == {0.0, 2.0}
    np.testing.assert_array_equal(test, ones)


def test_tf1_control_flow_takes_tf1s_arguments(graph) -> None:
    x = tf.placeholder(tf.float32, [3])
    halved = tf.while_loop(lambda i, v: tf.reduce_sum(v * v) > 1.0, lambda i, v: (i + 1, v / 2),
                           [tf.constant(0), x], parallel_iterations=1, back_prop=True,
                           maximum_iterations=10)
    sums = tf.scan(lambda a, e: a + e, x, reverse=True, swap_memory=False)
    sign = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.constant(1.0), lambda: tf.constant(-1.0))
    with tf.Session() as sess:
        trips, value, got, s = sess.run([*halved, sums, sign], {x: [3.0, 4.0, 0.0]})
    assert trips == 3 and np.allclose(value, [0.375, 0.5, 0.0])
    assert np.allclose(got, [7.0, 4.0, 0.0]) and s == 1.0
    with pytest.raises(ValueError, match="shape_invariants is not supported"):
        tf.while_loop(lambda v: v[0] > 0, lambda v: v, [x], shape_invariants=[None])
