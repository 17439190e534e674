"""The programs the comparisons measure, each written once on the shared surface (so the same
function builds a graph or runs eagerly), plus the hand-written numpy baseline."""

from __future__ import annotations

import numpy as np

from staticgraph.ops import functional as F


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def layer_norm(x):
    return F.layer_norm(x, x.shape[-1:])


def elementwise_chain(x, rounds: int = 20):
    """100 elementwise ops (5 per round) ending in a sum."""
    for _ in range(rounds):
        x = (x * 1.01 + 0.1).tanh() - 0.05
        x = x * x
    return x.sum()


def mlp_loss(x, labels, w1, b1, w2, b2, w3, b3):
    h = (x @ w1 + b1).relu()
    h = (h @ w2 + b2).relu()
    return F.cross_entropy(h @ w3 + b3, labels)


def cnn_weights(seed: int = 0) -> list[np.ndarray]:
    """torch.nn.Conv2d's and Linear's initialisation (uniform within 1/sqrt(fan_in)) of the
    digits CNN: conv 1->16 3x3, conv 16->32 3x3, linear 128->10 as an (in, out) matrix."""
    rng = np.random.default_rng(seed)
    shapes = [((16, 1, 3, 3), (16,), 9), ((32, 16, 3, 3), (32,), 144), ((128, 10), (10,), 128)]
    weights = []
    for kernel, bias, fan_in in shapes:
        bound = 1 / np.sqrt(fan_in)
        weights += [rng.uniform(-bound, bound, shape).astype(np.float32)
                    for shape in (kernel, bias)]
    return weights


def mlp_weights(sizes: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """torch.nn.Linear's initialisation, as (in, out) matrices and biases, float32."""
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        weights.append(rng.uniform(-bound, bound, (fan_out,)).astype(np.float32))
    return weights


def numpy_sgd_step(x: np.ndarray, labels: np.ndarray, params: list[np.ndarray],
                   lr: float) -> float:
    """One training step of ``mlp_loss`` written by hand in numpy, updating in place: the
    baseline a compiled graph should match."""
    w1, b1, w2, b2, w3, b3 = params
    a1 = x @ w1
    a1 += b1
    h1 = np.maximum(a1, 0, out=a1)
    a2 = h1 @ w2
    a2 += b2
    h2 = np.maximum(a2, 0, out=a2)
    logits = h2 @ w3
    logits += b3
    logits -= logits.max(1, keepdims=True)
    exp = np.exp(logits)
    sums = exp.sum(1, keepdims=True)
    n = len(labels)
    loss = float(np.mean(np.log(sums[:, 0]) - logits[np.arange(n), labels]))
    g3 = exp / sums
    g3[np.arange(n), labels] -= 1
    g3 /= n
    g2 = g3 @ w3.T
    g2 *= h2 > 0
    g1 = g2 @ w2.T
    g1 *= h1 > 0
    grads = [x.T @ g1, g1.sum(0), h1.T @ g2, g2.sum(0), h2.T @ g3, g3.sum(0)]
    for p, g in zip(params, grads):
        p -= lr * g
    return loss


def torch_version(torch, name: str):
    """The torch function of one of the models timed against torch.compile."""
    functional = torch.nn.functional
    if name == "gelu_tanh":
        return lambda t: functional.gelu(t, approximate="tanh")
    if name == "softmax":
        return lambda t: torch.softmax(t, -1)
    return lambda t: functional.layer_norm(t, t.shape[-1:])


def lenet_logits(F, x, c1, k1, c2, k2, w1, b1, w2, b2, w3, b3):
    """LeNet-5's shape for 1x28x28 images: conv 6@5x5, 2x2 max pool, conv 16@5x5, 2x2 max
    pool, 120-84-10, with ReLUs; written once with ``F``, torch.nn.functional's names."""
    h = F.max_pool2d(F.conv2d(x, c1, k1).relu(), 2)
    h = F.max_pool2d(F.conv2d(h, c2, k2).relu(), 2)
    h = (h.flatten(1) @ w1 + b1).relu()
    return (h @ w2 + b2).relu() @ w3 + b3


def lenet_weights(seed: int = 0) -> list[np.ndarray]:
    """torch's default initialisation (uniform within 1/sqrt(fan_in)), float32."""
    rng = np.random.default_rng(seed)
    shapes = [((6, 1, 5, 5), 25), ((6,), 25), ((16, 6, 5, 5), 150), ((16,), 150),
              ((256, 120), 256), ((120,), 256), ((120, 84), 120), ((84,), 120),
              ((84, 10), 84), ((10,), 84)]
    return [rng.uniform(-1, 1, shape).astype(np.float32) / np.float32(np.sqrt(fan_in))
            for shape, fan_in in shapes]
