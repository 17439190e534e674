"""The two articles' examples as static graphs: built first, differentiated symbolically,
then run; the numbers equal what eager (and PyTorch) compute."""

from __future__ import annotations

import numpy as np

import eager
import staticgraph as sg


def test_article_000_mean_of_3_times_square() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.Variable(np.ones((2, 2), np.float32), name="x")
        y = x + 2
        z = y * y * 3
        out = z.mean()
        (dx,) = sg.gradients(out, [x])
    assert (out.shape, out.dtype, dx.shape) == ((), np.float32, (2, 2))
    value, grad = sg.Session(g).run([out, dx])
    assert value == 27.0
    np.testing.assert_array_equal(grad, np.full((2, 2), 4.5, np.float32))


def test_article_000_sum_example_gradients() -> None:
    g = sg.Graph()
    with g.as_default():
        x2 = sg.placeholder((5, 5), name="x2")
        y2 = x2 + 2
        g2 = y2 * 2
        z2 = y2.sum()
        dx2, dy2, dg2 = sg.gradients(z2, [x2, y2, g2])
    assert dg2 is None  # g2 does not lead to z2, as the article says
    got = sg.Session(g).run([z2, dx2, dy2], {x2: np.ones((5, 5))})
    np.testing.assert_array_equal(got[0], 75.0)
    np.testing.assert_array_equal(got[1], np.ones((5, 5)))
    np.testing.assert_array_equal(got[2], np.ones((5, 5)))  # what retain_grad shows in eager


def article_001(a, w1, w2, w3, w4):
    """b = w1*a; c = w2*a; d = w3*b + w4*c; L = f(d), with f = tanh (any mode's values)."""
    b = w1 * a
    c = w2 * a
    d = w3 * b + w4 * c
    return d.tanh(), d


def test_article_001_gradient_is_the_sum_over_both_paths() -> None:
    values = dict(a=0.3, w1=0.5, w2=-1.5, w3=2.0, w4=0.25)
    g = sg.Graph()
    with g.as_default():
        nodes = {k: sg.placeholder((), "float64", name=k) for k in values}
        loss, d = article_001(**nodes)
        grads = sg.gradients(loss, list(nodes.values()))
    session = sg.Session(g)
    feed = {nodes[k]: v for k, v in values.items()}
    d_value, *grad_values = session.run([d] + grads, feed)
    dl_dd = 1 - np.tanh(d_value) ** 2
    a, w1, w2, w3, w4 = values.values()
    # L -> d -> b -> a  plus  L -> d -> c -> a
    assert np.isclose(grad_values[0], dl_dd * w3 * w1 + dl_dd * w4 * w2, rtol=1e-14)
    # and eager computes the same numbers with the same rules
    tensors = {k: eager.tensor(v, dtype=eager.float64, requires_grad=True)
               for k, v in values.items()}
    eager_loss, _ = article_001(**tensors)
    eager_loss.backward()
    for t, v in zip(tensors.values(), grad_values):
        assert t.grad.item() == float(v)
