"""eager.nn's convolutional layers, buffers, train/eval and state_dict against torch.nn: the
same weights (copied through state_dict, both ways) must give the same outputs, gradients,
running statistics, state_dict keys and printing; a LeNet trains the same in both."""

from __future__ import annotations

import re

import numpy as np
import pytest

import eager
from eager import nn, optim

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
TOLERANCES = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}
EXACT = dict(rtol=0, atol=0)  # integers (num_batches_tracked)


def _to_torch(state):
    return {key: torch.from_numpy(value.numpy().copy()) for key, value in state.items()}


def _to_eager(state):
    return {key: eager.tensor(value.numpy().copy()) for key, value in state.items()}


def _twins(build, dtype: str = "float64"):
    """``build(nn_lib)`` in eager and in torch, in ``dtype``, torch's state (weights and
    buffers) copied from eager's."""
    eager.manual_seed(0)
    model = build(nn).to(dtype)
    twin = build(torch.nn).to(getattr(torch, dtype))
    twin.load_state_dict(_to_torch(model.state_dict()))
    return model, twin


def _assert_close(actual, expected, dtype: str = "float64") -> None:
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(),
                               **TOLERANCES.get(dtype, EXACT))


def _assert_grads_close(model, twin, dtype: str = "float64") -> None:
    for (name, p), (torch_name, q) in zip(model.named_parameters(), twin.named_parameters(),
                                          strict=True):
        assert name == torch_name
        _assert_close(p.grad, q.grad, dtype)


def _assert_states_close(model, twin) -> None:
    """The same state_dict keys, in order, with the same values (weights and buffers)."""
    for (key, value), (torch_key, torch_value) in zip(model.state_dict().items(),
                                                      twin.state_dict().items(), strict=True):
        assert key == torch_key
        _assert_close(value, torch_value, str(value.dtype))


def _lenet(nn_lib, batch_norm: bool = False):
    """conv 6@5x5, pool, conv 16@5x5, pool, 120-84-10 (with batch norm after each conv)."""
    norm = (lambda c: [nn_lib.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    return nn_lib.Sequential(
        nn_lib.Conv2d(1, 6, 5), *norm(6), nn_lib.ReLU(), nn_lib.MaxPool2d(2),
        nn_lib.Conv2d(6, 16, 5), *norm(16), nn_lib.ReLU(), nn_lib.MaxPool2d(2),
        nn_lib.Flatten(), nn_lib.Linear(16 * 4 * 4, 120), nn_lib.ReLU(), nn_lib.Linear(120, 84),
        nn_lib.ReLU(), nn_lib.Linear(84, 10))


@pytest.mark.parametrize("dtype", TOLERANCES)
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch-norm"])
def test_lenet_trains_as_torch(dtype, batch_norm):
    model, twin = _twins(lambda lib: _lenet(lib, batch_norm), dtype)
    sgd = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    torch_sgd = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    images = RNG.standard_normal((3, 8, 1, 28, 28)).astype(dtype)
    labels = RNG.integers(0, 10, (3, 8))
    for x, y in zip(images, labels):
        out, torch_out = model(eager.tensor(x)), twin(torch.tensor(x))
        _assert_close(out, torch_out, dtype)
        loss = nn.functional.cross_entropy(out, eager.tensor(y))
        torch_loss = torch.nn.functional.cross_entropy(torch_out, torch.tensor(y))
        _assert_close(loss, torch_loss, dtype)
        sgd.zero_grad()
        torch_sgd.zero_grad()
        loss.backward()
        torch_loss.backward()
        _assert_grads_close(model, twin, dtype)
        sgd.step()
        torch_sgd.step()
    _assert_states_close(model, twin)
    for m in (model, twin):
        m.eval()  # batch norm now uses the running statistics it kept
    _assert_close(model(eager.tensor(images[0])), twin(torch.tensor(images[0])), dtype)


def test_lenet_state_dict_has_torchs_keys_and_loads_from_torch():
    model, twin = _lenet(nn, batch_norm=True), _lenet(torch.nn, batch_norm=True)
    assert list(model.state_dict()) == list(twin.state_dict())
    assert "1.num_batches_tracked" in model.state_dict()
    twin.train()(torch.randn(4, 1, 28, 28))  # move torch's running statistics
    result = model.load_state_dict(_to_eager(twin.state_dict()))
    assert repr(result) == "<All keys matched successfully>"
    assert model[1].num_batches_tracked.item() == 1
    assert model[1].num_batches_tracked.dtype == np.int64
    x = RNG.standard_normal((2, 1, 28, 28)).astype(np.float32)
    _assert_close(model.eval()(eager.tensor(x)), twin.eval()(torch.tensor(x)), "float32")


# Each layer: (constructor, input shape); built from nn or torch.nn alike.
LAYERS = [
    ("Conv2d(3, 6, 5)", (2, 3, 9, 9)),
    ("Conv2d(3, 6, (3, 5), stride=2, padding=1, dilation=2, groups=3, bias=False)",
     (2, 3, 11, 12)),
    ("Conv2d(4, 6, 4, padding='same', dilation=2)", (2, 4, 7, 8)),
    ("Conv2d(4, 6, 3, padding='valid')", (2, 4, 7, 8)),
    ("ConvTranspose2d(3, 6, 3)", (2, 3, 5, 5)),
    ("ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=2)",
     (2, 4, 5, 6)),
    ("MaxPool2d(2)", (2, 3, 8, 8)),
    ("MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True)", (2, 3, 9, 9)),
    ("AvgPool2d(2)", (2, 3, 8, 8)),
    ("AvgPool2d(3, 2, 1, True, False)", (2, 3, 8, 9)),
    ("AdaptiveAvgPool2d(1)", (2, 3, 5, 7)),
    ("AdaptiveAvgPool2d((2, 3))", (2, 3, 4, 6)),
    ("LeakyReLU(0.2)", (3, 4, 5)),
    ("SiLU()", (3, 4, 5)),
    ("ELU(0.5)", (3, 4, 5)),
    ("Hardtanh(-0.5, 2.0)", (3, 4, 5)),
    ("ReLU6()", (3, 4, 5)),
    ("BatchNorm1d(4)", (6, 4)),
    ("BatchNorm1d(4, affine=False)", (6, 4, 3)),
    ("BatchNorm2d(3, momentum=None, bias=False)", (4, 3, 2, 5)),
    ("BatchNorm2d(3, track_running_stats=False)", (4, 3, 2, 5)),
    ("Dropout(0.0)", (3, 4)),
]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("spec, shape", LAYERS, ids=[spec for spec, _ in LAYERS])
def test_layer_matches_torch(spec, shape, mode):
    model, twin = _twins(lambda lib: eval(f"lib.{spec}"))
    for m in (model, twin):
        m.train(mode == "train")
    x = RNG.standard_normal(shape) * 3
    ex, tx = eager.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, torch_out = model(ex), twin(tx)
    _assert_close(out, torch_out)
    if out is not ex:
        assert out.grad_fn.name() == torch_out.grad_fn.name()
    cotangent = RNG.standard_normal(torch_out.shape)
    out.backward(eager.tensor(cotangent))
    torch_out.backward(torch.tensor(cotangent))
    _assert_close(ex.grad, tx.grad)
    _assert_grads_close(model, twin)
    _assert_states_close(model, twin)


@pytest.mark.parametrize("spec", [spec for spec, _ in LAYERS] + [
    "Conv2d(3, 6, 3, padding=(1, 2), stride=(1, 2))", "ConvTranspose2d(3, 6, 3, bias=False)",
    "MaxPool2d((2, 3), (1, 2))", "LeakyReLU(inplace=True)", "ELU(inplace=True)",
    "ReLU(inplace=True)", "ReLU6(inplace=True)", "SiLU(inplace=True)", "Dropout()",
    "Dropout(0.2, inplace=True)", "BatchNorm2d(3, eps=0.001, momentum=0.3)"])
def test_repr_is_torchs(spec):
    assert repr(eval(f"nn.{spec}")) == repr(eval(f"torch.nn.{spec}"))


def test_model_repr_is_torchs():
    assert repr(_lenet(nn, True)) == repr(_lenet(torch.nn, True))


@pytest.mark.parametrize("layer, fan_in", [("Conv2d(4, 6, 3, groups=2)", 2 * 9),
                                           ("ConvTranspose2d(4, 6, (2, 3), groups=2)", 3 * 6)])
def test_conv_weights_have_torchs_shape_and_bounds(layer, fan_in):
    module, twin = eval(f"nn.{layer}"), eval(f"torch.nn.{layer}")
    assert [p.shape for p in module.parameters()] == [tuple(p.shape) for p in twin.parameters()]
    bound = 1 / np.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) for the weight, as the bias
    for p in module.parameters():
        values = np.abs(p.detach().numpy())
        assert values.max() <= bound and values.max() > 0.5 * bound


def test_conv_transpose_output_size_picks_the_output_padding():
    model, twin = _twins(lambda lib: lib.ConvTranspose2d(2, 3, 3, stride=3))
    x = RNG.standard_normal((1, 2, 4, 4))
    for size in ([12, 14], [1, 3, 13, 12]):
        out = model(eager.tensor(x), output_size=size)
        _assert_close(out, twin(torch.tensor(x), output_size=size))
    with pytest.raises(ValueError, match=r"requested an output size of \[15, 12\], but valid "
                                         r"sizes range from \[12, 12\] to \[14, 14\]"):
        model(eager.tensor(x), output_size=[15, 12])


@pytest.mark.parametrize("call", [
    "Conv2d(4, 6, 3, groups=3)", "Conv2d(4, 6, 3, groups=4)", "Conv2d(4, 6, 3, groups=0)",
    "Conv2d(4, 6, 3, stride=2, padding='same')", "Dropout(1.5)", "Hardtanh(1.0, -1.0)",
    "BatchNorm2d(3)(eager.ones(2, 3))", "BatchNorm1d(3)(eager.ones(2, 3, 1, 1))"])
def test_bad_arguments_raise_torchs_errors(call):
    with pytest.raises(Exception) as torch_error:
        eval(f"torch.nn.{call}".replace("eager.ones", "torch.ones"))
    with pytest.raises(torch_error.type, match=f"^{re.escape(str(torch_error.value))}$"):
        eval(f"nn.{call}")


def test_what_eager_does_not_support_says_so():
    with pytest.raises(ValueError, match="padding_mode 'reflect' is not supported: eager pads "
                                         "with zeros only"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="return_indices=True is not supported"):
        nn.MaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="Invalid padding string 'full', should be one of"):
        nn.Conv2d(1, 1, 3, padding="full")


def test_batch_norm_running_statistics_follow_torch_over_training_steps():
    for momentum in (0.1, None):
        model, twin = _twins(lambda lib: lib.BatchNorm2d(3, momentum=momentum))
        for step in range(4):
            x = RNG.standard_normal((5, 3, 2, 2)) * (step + 1) + step
            _assert_close(model(eager.tensor(x)), twin(torch.tensor(x)))
        _assert_states_close(model, twin)
        assert model.num_batches_tracked.item() == 4
        for m in (model, twin):
            m.eval()
        x = RNG.standard_normal((2, 3, 2, 2))
        before = model.running_var.numpy().copy()
        _assert_close(model(eager.tensor(x)), twin(torch.tensor(x)))
        np.testing.assert_array_equal(model.running_var.numpy(), before)  # unmoved
        assert model.num_batches_tracked.item() == 4


def _net_with_buffers(lib, tensor):
    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.norm = lib.BatchNorm1d(2)
            self.register_buffer("scale", tensor([2.0, 3.0]))
            self.register_buffer("cache", tensor([0.0]), persistent=False)
            self.register_buffer("unset", None)

    return Net()


def test_buffers_are_registered_listed_saved_and_converted():
    model, twin = _net_with_buffers(nn, eager.tensor), _net_with_buffers(torch.nn, torch.tensor)
    assert [n for n, _ in model.named_buffers()] == [n for n, _ in twin.named_buffers()] == \
        ["scale", "cache", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"]
    assert list(model.state_dict()) == list(twin.state_dict()) == \
        ["scale", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
         "norm.num_batches_tracked"]
    assert [n for n, _ in model.norm.named_buffers(prefix="bn")] == \
        ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert len(list(model.buffers(recurse=False))) == 2
    assert model.state_dict(keep_vars=True)["scale"] is model.scale
    model.double()
    assert [b.dtype for b in model.buffers()] == [np.float64] * 4 + [np.int64]
    assert model.norm.weight.dtype == np.float64
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point"):
        model.to(eager.int64)


def test_buffer_assignment_and_deletion_follow_torch():
    for lib, tensor in ((nn, eager.tensor), (torch.nn, torch.tensor)):
        module = lib.Module()
        module.register_buffer("stat", tensor([1.0]))
        module.stat = tensor([2.0])  # a Tensor assigned to a buffer replaces it...
        assert module.stat.tolist() == [2.0] and list(module.state_dict()) == ["stat"]
        module.plain = tensor([3.0])  # ...while a new name is a plain attribute
        assert list(module.state_dict()) == ["stat"]
        module.stat = None
        assert list(module.state_dict()) == []
        module.stat = lib.Parameter(tensor([4.0]))  # a Parameter takes the name over
        assert [n for n, _ in module.named_parameters()] == ["stat"]
        assert list(module.buffers()) == []
        module.register_buffer("gone", tensor([1.0]))
        del module.gone
        assert not hasattr(module, "gone") and list(module.buffers()) == []


@pytest.mark.parametrize("call", [
    "register_buffer('a.b', tensor([1.0]))", "register_buffer('', tensor([1.0]))",
    "register_buffer('weight', tensor([1.0]))",
    "register_buffer('forward', tensor([1.0]))", "register_parameter('running_mean', None)",
    "add_module('weight', None)"])
def test_registration_errors_match_torch(call):
    with pytest.raises(Exception) as torch_error:
        eval(f"module.{call}", {"module": torch.nn.BatchNorm1d(2), "tensor": torch.tensor})
    with pytest.raises(torch_error.type) as error:
        eval(f"module.{call}", {"module": nn.BatchNorm1d(2), "tensor": eager.tensor})
    assert error.value.args == torch_error.value.args


def test_setting_a_buffer_to_a_non_tensor_names_it():
    module = nn.BatchNorm1d(2)
    with pytest.raises(TypeError, match=r"cannot assign 'builtins.list' as buffer "
                                        r"'running_mean' \(eager.Tensor or None expected\)"):
        module.running_mean = [0.0, 0.0]
    with pytest.raises(TypeError, match=r"cannot assign 'builtins.int' object to buffer 'b' "
                                        r"\(eager.Tensor or None required\)"):
        module.register_buffer("b", 3)


def test_train_and_eval_propagate_and_change_what_layers_do():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
            self.norm = nn.BatchNorm1d(4)

        def forward(self, x):
            return self.norm(self.body(x))

    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    x = eager.randn(8, 4)
    with eager.no_grad():
        first, second = net(x), net(x)
    np.testing.assert_array_equal(first.numpy(), second.numpy())  # deterministic
    assert net.norm.num_batches_tracked.item() == 0
    net.body.train()
    assert net.body[1].training and not net.norm.training and not net.training
    net.train()
    assert all(m.training for m in net.modules())
    net(x)
    assert net.norm.num_batches_tracked.item() == 1
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("no")


def test_dropout_zeroes_and_scales_in_training_and_is_reproducible():
    layer = nn.Dropout(0.25)
    x = eager.ones(100, 100, requires_grad=True)
    eager.manual_seed(3)
    y = layer(x)
    values = y.detach().numpy()
    assert set(np.unique(values)) == {0.0, np.float32(1 / 0.75)}
    assert abs((values == 0).mean() - 0.25) < 0.02  # 10,000 draws: sd 0.004
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # the same mask and scale
    eager.manual_seed(3)
    np.testing.assert_array_equal(layer(x).detach().numpy(), values)
    assert layer.eval()(x) is x
    assert float(nn.Dropout(1.0)(x).abs().sum()) == 0.0


def test_inplace_activations_write_into_their_input_as_torch():
    for spec in ("ReLU(inplace=True)", "LeakyReLU(0.1, inplace=True)", "ELU(inplace=True)",
                 "Hardtanh(inplace=True)"):
        x = RNG.standard_normal((3, 4)) * 2
        ex, tx = eager.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        hidden, torch_hidden = ex * 2, tx * 2
        out, torch_out = eval(f"nn.{spec}")(hidden), eval(f"torch.nn.{spec}")(torch_hidden)
        assert out is hidden
        _assert_close(hidden, torch_hidden)
        (out * out).sum().backward()
        (torch_out * torch_out).sum().backward()
        _assert_close(ex.grad, tx.grad)


def test_functional_has_the_shared_functions():
    from staticgraph.ops.functional import NN_FUNCTIONAL
    assert sorted(nn.functional.__all__) == sorted(NN_FUNCTIONAL)
    for name in NN_FUNCTIONAL:
        assert hasattr(torch.nn.functional, name), name
