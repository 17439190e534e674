"""eager.nn and eager.optim against torch.nn and torch.optim: the same initial weights must give
the same outputs, gradients, updates and loss curves, and the Module bookkeeping must match."""

from collections import OrderedDict

import numpy as np
import pytest

import eager
import staticgraph.ops.functional as shared
from eager import nn, optim

# float64 must agree to rounding; float32 to what a few ulps per operation add up to.
TOLERANCES = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}



@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _mlp(nn_lib):
    """The same architecture in eager.nn or torch.nn (the module names match)."""
    return nn_lib.Sequential(nn_lib.Linear(4, 8), nn_lib.GELU(), nn_lib.LayerNorm(8),
                             nn_lib.Linear(8, 8), nn_lib.ReLU(), nn_lib.Linear(8, 3))


def _twins(build, dtype: str):
    """``build`` made in eager and in torch, both in ``dtype``, torch's weights copied from
    eager's (through state_dict / load_state_dict)."""
    torch = pytest.importorskip("torch")
    eager.manual_seed(0)
    model = build(nn).to(dtype)
    twin = build(torch.nn).to(getattr(torch, dtype))
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                          for k, v in model.state_dict().items()})
    return model, twin


def _both(torch, *arrays):
    """Each array as an eager tensor and as a torch tensor."""
    return [eager.tensor(a) for a in arrays], [torch.tensor(a) for a in arrays]


def _assert_close(actual, expected, dtype: str) -> None:
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(),
                               **TOLERANCES[dtype])


def _assert_params_close(model, twin, dtype: str, grads: bool = False) -> None:
    pairs = list(zip(model.named_parameters(), twin.named_parameters(), strict=True))
    for (name, p), (torch_name, q) in pairs:
        assert name == torch_name
        _assert_close(p.grad if grads else p, q.grad if grads else q, dtype)


@pytest.mark.parametrize("dtype", TOLERANCES)
def test_forward_and_gradients_match_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    model, twin = _twins(_mlp, dtype)
    (x, y), (tx, ty) = _both(torch, rng.standard_normal((5, 4)).astype(dtype),
                             rng.standard_normal((5, 3)).astype(dtype))
    out, torch_out = model(x), twin(tx)
    _assert_close(out, torch_out, dtype)
    nn.functional.mse_loss(out, y).backward()
    torch.nn.functional.mse_loss(torch_out, ty).backward()
    _assert_params_close(model, twin, dtype, grads=True)


OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd-momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd-dampening-decay": ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1,
                                        weight_decay=0.01)),
    "sgd-nesterov-decay": ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01,
                                       nesterov=True)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam-decay": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)),
    "adam-small-beta1": ("Adam", dict(lr=0.01, betas=(0.3, 0.9))),  # lerp's other branch
    "adam-amsgrad": ("Adam", dict(lr=0.01, amsgrad=True)),
    "adamw": ("AdamW", dict(lr=0.01)),
    "adamw-decay-amsgrad": ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop-centered-momentum-decay": ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9,
                                                        weight_decay=0.01)),
    "adagrad": ("Adagrad", dict(lr=0.1)),
    "adagrad-decay-init": ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.01,
                                           initial_accumulator_value=0.5)),
}


def _train(lib, model, optimizer: str, x, target, loss: str, steps: int) -> list[float]:
    """``steps`` optimizer steps on ``loss(model(x), target)``; the loss before each step."""
    name, kwargs = OPTIMIZERS[optimizer]
    if lib is not eager:
        kwargs = {**kwargs, "foreach": False}  # torch's single-tensor path, eager's semantics
    opt = getattr(lib.optim, name)(model.parameters(), **kwargs)
    losses = []
    for step in range(steps):
        opt.zero_grad(set_to_none=step % 2 == 0)  # zeroing in place must not touch the state
        value = getattr(lib.nn.functional, loss)(model(x), target)
        value.backward()
        opt.step()
        losses.append(value.item())
    return losses


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("dtype", TOLERANCES)
def test_optimizer_steps_match_torch(dtype, optimizer, rng):
    torch = pytest.importorskip("torch")
    model, twin = _twins(_mlp, dtype)
    held = list(model.parameters())
    (x, y), (tx, ty) = _both(torch, rng.standard_normal((6, 4)).astype(dtype),
                             rng.standard_normal((6, 3)).astype(dtype))
    losses = _train(eager, model, optimizer, x, y, "mse_loss", steps=5)
    torch_losses = _train(torch, twin, optimizer, tx, ty, "mse_loss", steps=5)
    np.testing.assert_allclose(losses, torch_losses, **TOLERANCES[dtype])
    _assert_params_close(model, twin, dtype)
    assert all(p is q for p, q in zip(held, model.parameters()))  # updated in place


def test_mlp_classification_loss_curve_matches_torch(rng):
    torch = pytest.importorskip("torch")
    model, twin = _twins(lambda nn_lib: nn_lib.Sequential(
        nn_lib.Linear(2, 16), nn_lib.ReLU(), nn_lib.Linear(16, 3)), "float64")
    points = rng.standard_normal((32, 2))
    labels = np.digitize(np.arctan2(points[:, 1], points[:, 0]), [-1.0, 1.0])  # 3 wedges
    (x, y), (tx, ty) = _both(torch, points, labels)
    losses = _train(eager, model, "sgd-momentum", x, y, "cross_entropy", steps=20)
    torch_losses = _train(torch, twin, "sgd-momentum", tx, ty, "cross_entropy", steps=20)
    np.testing.assert_allclose(losses, torch_losses, **TOLERANCES["float64"])
    assert losses[-1] < 0.7 * losses[0]
    _assert_params_close(model, twin, "float64")


def test_embedding_gradient_scatter_adds_repeated_indices(rng):
    torch = pytest.importorskip("torch")
    model, twin = _twins(lambda nn_lib: nn_lib.Embedding(5, 3), "float64")
    indices = np.array([[0, 2, 0], [4, 2, 0]])
    (i,), (ti,) = _both(torch, indices)
    out, torch_out = model(i), twin(ti)
    _assert_close(out, torch_out, "float64")
    weights = rng.standard_normal((2, 3, 3))
    (out * eager.tensor(weights)).sum().backward()
    (torch_out * torch.tensor(weights)).sum().backward()
    _assert_close(model.weight.grad, twin.weight.grad, "float64")
    assert not model.weight.grad.numpy()[[1, 3]].any()


def test_parameters_and_names_match_torch():
    torch = pytest.importorskip("torch")
    model, twin = _mlp(nn), _mlp(torch.nn)
    names = [name for name, _ in model.named_parameters()]
    assert names == [name for name, _ in twin.named_parameters()]
    assert names[:2] == ["0.weight", "0.bias"]
    assert [p.shape for p in model.parameters()] == [tuple(p.shape) for p in twin.parameters()]
    assert all(type(p) is nn.Parameter and p.requires_grad and p.is_leaf
               for p in model.parameters())
    assert len(list(model.children())) == len(list(twin.children())) == 6
    assert [type(m).__name__ for m in model.modules()] == \
        [type(m).__name__ for m in twin.modules()]


def test_shared_parameters_are_listed_once():
    shared_layer = nn.Linear(2, 2)
    model = nn.Sequential(shared_layer, nn.ReLU(), shared_layer)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_linear_init_bounds_and_seed():
    eager.manual_seed(3)
    layer = nn.Linear(16, 50)
    eager.manual_seed(3)
    again = nn.Linear(16, 50)
    for p, q in zip(layer.parameters(), again.parameters()):
        assert p.dtype == eager.float32
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
        assert np.abs(p.detach().numpy()).max() <= 0.25  # 1 / sqrt(in_features)
    assert np.abs(layer.weight.detach().numpy()).max() > 0.2


def test_state_dict_is_detached_and_round_trips():
    model, other = _mlp(nn), _mlp(nn)
    state = model.state_dict()
    assert isinstance(state, OrderedDict)
    assert list(state) == [name for name, _ in model.named_parameters()]
    for value, param in zip(state.values(), model.parameters()):
        assert not value.requires_grad
        assert np.shares_memory(value.numpy(), param.detach().numpy())
    assert all(v is p for v, p in zip(model.state_dict(keep_vars=True).values(),
                                      model.parameters()))
    held = other[0].weight
    assert repr(other.load_state_dict(state)) == "<All keys matched successfully>"
    assert other[0].weight is held
    for p, q in zip(model.parameters(), other.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
        assert not np.shares_memory(p.detach().numpy(), q.detach().numpy())


def test_load_state_dict_errors_match_torch():
    torch = pytest.importorskip("torch")
    model, twin = _mlp(nn), _mlp(torch.nn)
    state, torch_state = model.state_dict(), twin.state_dict()
    for s in (state, torch_state):
        del s["3.bias"]
        s["9.weight"] = s["0.weight"]
    with pytest.raises(RuntimeError) as expected:
        twin.load_state_dict(torch_state)
    with pytest.raises(RuntimeError) as actual:
        model.load_state_dict(state)
    assert str(actual.value) == str(expected.value)
    result = model.load_state_dict(state, strict=False)
    assert (result.missing_keys, result.unexpected_keys) == (["3.bias"], ["9.weight"])
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        nn.Linear(2, 3).load_state_dict(nn.Linear(3, 2).state_dict())


def test_zero_grad():
    model = _mlp(nn)
    model(eager.randn(2, 4)).sum().backward()
    grads = [p.grad for p in model.parameters()]
    model.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.numpy().any() for p, g in zip(model.parameters(), grads))
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_eval_flags():
    model = _mlp(nn)
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_reprs_match_torch():
    torch = pytest.importorskip("torch")

    def build(nn_lib):
        return nn_lib.Sequential(
            nn_lib.Linear(3, 4), nn_lib.GELU(approximate="tanh"), nn_lib.LayerNorm((2, 2)),
            nn_lib.Sequential(nn_lib.Linear(4, 2, bias=False), nn_lib.ReLU()),
            nn_lib.Embedding(10, 2), nn_lib.LayerNorm(2, elementwise_affine=False))

    model, twin = build(nn), build(torch.nn)
    assert repr(model) == repr(twin)
    assert repr(model[0]) == repr(twin[0])
    assert repr(model[-3:]) == repr(twin[-3:])
    assert len(model) == len(twin) == 6
    data = np.array([[0.5, -1.25], [3.0, 0.0]], dtype="float32")
    assert repr(nn.Parameter(eager.tensor(data))) == repr(torch.nn.Parameter(torch.tensor(data)))


def test_assigning_a_plain_tensor_to_a_parameter_is_refused():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign .* as parameter 'weight'"):
        layer.weight = eager.ones(2, 2)
    layer.weight = nn.Parameter(eager.ones(2, 2))
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]


def test_functional_is_the_shared_composites():
    for name in nn.functional.__all__:
        assert getattr(nn.functional, name) is getattr(shared, name)


def test_step_skips_params_without_grad_and_bumps_versions():
    used, unused = nn.Parameter(eager.ones(3)), nn.Parameter(eager.ones(3))
    opt = optim.Adam([used, unused], lr=0.1)
    loss = (used * used).sum()
    loss.backward(retain_graph=True)
    opt.step()
    assert unused not in opt.state
    np.testing.assert_array_equal(unused.detach().numpy(), np.ones(3))
    assert (used.detach().numpy() < 1).all()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()  # the step changed a tensor that the graph saved, as in torch


def test_optimizer_argument_errors():
    p = nn.Parameter(eager.ones(1))
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p], "lr": 1.0}], lr=0.1)
