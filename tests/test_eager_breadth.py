"""A PyTorch user's day-one breadth in eager, each against torch 2.13: custom
``autograd.Function``, ``nn.init``, ``Module.apply`` / ``requires_grad_``, gradient
clipping, ``eager.save`` / ``eager.load``, and a tutorial program run by both."""

import io
import math
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import eager
from eager import nn
from eager.nn import init

torch = pytest.importorskip("torch")

FREED = "Trying to backward through the graph a second time"


def _np(t):
    return t.detach().numpy()


def _leaf(lib, array, requires_grad=True):
    return lib.tensor(np.array(array, np.float32), requires_grad=requires_grad)


# -- autograd.Function -------------------------------------------------------------------------
def _mul_by(lib, seen):
    """x * y * k, with y and k saved for backward: the tutorial's shape of a custom op."""

    class MulBy(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, k, y):
            seen.append(("forward", ctx.needs_input_grad, lib.is_grad_enabled()))
            ctx.save_for_backward(x, y)
            ctx.k = k
            return x * y * k

        @staticmethod
        def backward(ctx, grad):
            x, y = ctx.saved_tensors
            seen.append(("backward", ctx.needs_input_grad, lib.is_grad_enabled()))
            return grad * y * ctx.k, None, grad * x * ctx.k

    return MulBy


@pytest.mark.parametrize("y_requires_grad", [True, False])
def test_function_records_a_node_named_as_torch_and_gives_torch_gradients(y_requires_grad):
    results = []
    for lib in (eager, torch):
        seen = []
        x = _leaf(lib, [1.0, -2.0, 3.0])
        y = _leaf(lib, [0.5, 4.0, -1.0], y_requires_grad)
        out = _mul_by(lib, seen).apply(x.exp(), 2.0, y)  # a recorded op before it
        node = out.grad_fn
        names = [type(node).__name__, node.name(), repr(out).split("grad_fn=")[1],
                 [type(n).__name__ if n is not None else None
                  for n, _ in node.next_functions]]
        (out * out).sum().backward()
        results.append((names, seen, _np(out), _np(x.grad),
                        None if y.grad is None else _np(y.grad)))
    (names, seen, *values), (torch_names, torch_seen, *torch_values) = results
    assert names == torch_names == ["MulByBackward", "MulByBackward", "<MulByBackward>)",
                                    ["ExpBackward0",
                                     "AccumulateGrad" if y_requires_grad else None]]
    assert seen == torch_seen  # needs_input_grad; no recording inside forward or backward
    assert (values[-1] is None) == (torch_values[-1] is None) == (not y_requires_grad)
    for value, expected in zip(values, torch_values):
        if expected is not None:
            np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_function_outputs_do_not_record_when_nothing_requires_grad_or_under_no_grad():
    seen = []
    mul_by = _mul_by(eager, seen)
    x = _leaf(eager, [1.0, 2.0])
    assert mul_by.apply(_leaf(eager, [1.0, 2.0], False), 2.0, x.detach()).grad_fn is None
    with eager.no_grad():
        out = mul_by.apply(x, 2.0, x)
    assert out.grad_fn is None and not out.requires_grad
    assert seen[-1] == ("forward", (True, False, True), False)  # needs_input_grad ignores mode


def _cube(lib, once=False):
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return 3 * x ** 2 * grad

    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

    Cube.backward = staticmethod(lib.autograd.function.once_differentiable(backward)
                                 if once else backward)
    return Cube


def test_function_backward_of_tensor_ops_is_differentiable_again():
    grads = []
    for lib in (eager, torch):
        x = _leaf(lib, [1.0, -2.0, 0.5])
        g, = lib.autograd.grad(_cube(lib).apply(x).sum(), x, create_graph=True)
        gg, = lib.autograd.grad(g.sum(), x)
        grads.append((_np(g), _np(gg)))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
    np.testing.assert_allclose(grads[0][1], [6.0, -12.0, 3.0])


def test_once_differentiable_refuses_a_second_differentiation_as_torch():
    messages = []
    for lib in (eager, torch):
        x = _leaf(lib, [1.0, 2.0])
        y = _cube(lib, once=True).apply(x).sum()
        seed = lib.ones((), requires_grad=True)
        g, = lib.autograd.grad(y, x, seed, create_graph=True)
        assert type(g.grad_fn).__name__ == "Error"
        assert g.grad_fn.name() == "torch::autograd::Error"
        with pytest.raises(RuntimeError) as info:
            g.sum().backward()
        messages.append(str(info.value))
        g, = lib.autograd.grad(_cube(lib, once=True).apply(x).sum(), x)  # once is fine
        np.testing.assert_allclose(_np(g), [3.0, 12.0])
    assert messages[0] == messages[1] == ("trying to differentiate twice a function that was "
                                          "marked with @once_differentiable")


def _value_and_index(lib, seen):
    """Two outputs, the index one marked non-differentiable."""

    class DoubleAndArgmax(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            index = x.argmax()
            ctx.mark_non_differentiable(index)
            return x * 2, index

        @staticmethod
        def backward(ctx, grad, grad_index):
            seen.append(_np(grad_index).tolist())
            return grad * 2

    return DoubleAndArgmax


def test_mark_non_differentiable_outputs_and_materialized_zero_gradients():
    for lib in (eager, torch):
        seen = []
        x = _leaf(lib, [1.0, 3.0, 2.0])
        value, index = _value_and_index(lib, seen).apply(x)
        assert value.requires_grad and not index.requires_grad and index.grad_fn is None
        value.sum().backward()
        assert seen == [0]  # zeros for the output no gradient reached
        np.testing.assert_allclose(_np(x.grad), [2.0, 2.0, 2.0])


def _two_outputs(lib):
    class SinCos(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.sin(), x.cos()

        @staticmethod
        def backward(ctx, grad_sin, grad_cos):
            x, = ctx.saved_tensors
            return grad_sin * x.cos() - grad_cos * x.sin()

    return SinCos


def test_function_with_two_outputs_gives_torch_gradients():
    grads = []
    for lib in (eager, torch):
        x = _leaf(lib, [0.3, -1.2, 2.0])
        s, c = _two_outputs(lib).apply(x)
        assert type(s.grad_fn).__name__ == type(c.grad_fn).__name__ == "SinCosBackward"
        (s * 3 + c * c).sum().backward()
        grads.append(_np(x.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


def _returning(lib, make_grads, n_inputs=1):
    class Returns(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, *rest):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return make_grads(lib, grad)

    return Returns


BAD_BACKWARDS = {
    "too few": (lambda lib, g: (g,), 2),
    "too many": (lambda lib, g: (g, g), 1),
    "wrong shape": (lambda lib, g: lib.ones(3), 1),
    "gradient for a number": (lambda lib, g: (g, g), "number"),
    "not a tensor": (lambda lib, g: 1.0, 1),
}


@pytest.mark.parametrize("case", BAD_BACKWARDS)
def test_function_backward_returning_wrong_gradients_raises_torchs_error(case):
    make_grads, arity = BAD_BACKWARDS[case]
    messages = []
    for lib in (eager, torch):
        x = _leaf(lib, [1.0, 2.0])
        args = (x, x) if arity == 2 else (x, 3.0) if arity == "number" else (x,)
        out = _returning(lib, make_grads).apply(*args)
        with pytest.raises(RuntimeError) as info:
            out.sum().backward()
        messages.append(str(info.value).replace("eager", "torch"))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("grads", [
    lambda lib, g: (lib.ones(4, 2, dtype=lib.float64), None),  # summed back and cast
    lambda lib, g: (g, None, None),  # extra Nones are allowed
    lambda lib, g: (None, None),  # no gradient at all
])
def test_function_gradients_are_fitted_to_the_input_as_torch(grads):
    results = []
    for lib in (eager, torch):
        x = _leaf(lib, [1.0, 2.0])
        _returning(lib, grads).apply(x, "unused").sum().backward()
        results.append(None if x.grad is None else (_np(x.grad), str(x.grad.dtype)[-7:]))
    if results[1] is None:
        assert results[0] is None
    else:
        np.testing.assert_array_equal(results[0][0], results[1][0])
        assert results[0][1] == results[1][1] == "float32"


def test_function_saved_tensors_are_freed_and_checked_for_in_place_changes():
    x = _leaf(eager, [1.0, 2.0])
    y = _cube(eager).apply(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(_np(x.grad), [6.0, 24.0])
    with pytest.raises(RuntimeError, match=FREED):
        y.backward()
    sin, _ = _two_outputs(eager).apply(x)
    sin.sum().backward()
    with pytest.raises(RuntimeError, match=FREED):
        sin.sum().backward()
    w = x * 1
    out = _cube(eager).apply(w)
    with eager.no_grad():
        w.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation: "
                       r"\[eager.FloatTensor \[2\]\], which is output 0 of Mul, is at version "
                       "1; expected version 0 instead"):
        out.sum().backward()


def test_function_ctx_extras_hooks_and_setup_context():
    class Scale(eager.autograd.Function):
        @staticmethod
        def forward(x, k):  # torch's newer form: forward without ctx, then setup_context
            return x * k

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.k = inputs[1]

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.k, None

    x = _leaf(eager, [1.0, 2.0])
    out = Scale.apply(x, k=3.0)  # keyword arguments are bound to forward's parameters
    assert out.grad_fn.k == 3.0  # torch's node is the ctx
    seen = []
    out.register_hook(lambda g: seen.append(_np(g).tolist()))
    out.retain_grad()
    (out * 2).sum().backward()
    assert seen == [[2.0, 2.0]] and _np(out.grad).tolist() == [2.0, 2.0]
    np.testing.assert_allclose(_np(x.grad), [6.0, 6.0])
    identity = _returning(eager, lambda lib, g: g)
    returned = type("Same", (eager.autograd.Function,), {
        "forward": staticmethod(lambda ctx, x: x), "backward": identity.backward})
    y = returned.apply(x)
    assert y is not x and x.grad_fn is None and type(y.grad_fn).__name__ == "SameBackward"


def test_function_misuse_raises_torchs_errors():
    class NoForward(eager.autograd.Function):
        pass

    with pytest.raises(NotImplementedError, match="You must implement the forward function"):
        NoForward.apply(_leaf(eager, [1.0]))

    class NoBackward(eager.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    with pytest.raises(NotImplementedError, match="You must implement either the backward"):
        NoBackward.apply(_leaf(eager, [1.0])).sum().backward()
    with pytest.raises(RuntimeError, match="Legacy autograd function with non-static forward"):
        NoBackward()(_leaf(eager, [1.0]))

    class SavesANumber(NoBackward):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x, 2.0)
            return x

    with pytest.raises(TypeError, match="save_for_backward can only save variables, but "
                       "argument 1 is of type float"):
        SavesANumber.apply(_leaf(eager, [1.0]))


# -- nn.init -------------------------------------------------------------------------------------
@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu", None)])
def test_calculate_gain_is_torchs(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == \
        torch.nn.init.calculate_gain(nonlinearity, param)


@pytest.mark.parametrize("call", [
    lambda lib: lib.nn.init.calculate_gain("softsign"),
    lambda lib: lib.nn.init.calculate_gain("leaky_relu", True),
    lambda lib: lib.nn.init._calculate_fan_in_and_fan_out(lib.ones(3)),
    lambda lib: lib.nn.init.kaiming_uniform_(lib.ones(3, 2), mode="fan_avg"),
])
def test_init_errors_are_torchs(call):
    messages = []
    for lib in (eager, torch):
        with pytest.raises(ValueError) as info:
            call(lib)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("shape", [(3, 5), (8, 3, 2, 4)])
def test_fan_in_and_fan_out_are_torchs(shape):
    assert init._calculate_fan_in_and_fan_out(eager.ones(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.ones(*shape))


def _torch_bound(shape, gain, mode="fan_in", xavier=False):
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    if xavier:
        return gain * math.sqrt(6.0 / (fan_in + fan_out))
    return gain * math.sqrt(3.0 / (fan_in if mode == "fan_in" else fan_out))


SHAPE = (240, 100)  # 24,000 draws: a sample std within ~1% of the true one
gain = torch.nn.init.calculate_gain
UNIFORM_INITS = [  # (call, the bound torch's formula gives)
    (lambda t: init.uniform_(t, -0.3, 0.7), (-0.3, 0.7)),
    (lambda t: init.xavier_uniform_(t, gain=2.0), _torch_bound(SHAPE, 2.0, xavier=True)),
    (lambda t: init.kaiming_uniform_(t), _torch_bound(SHAPE, gain("leaky_relu", 0))),
    (lambda t: init.kaiming_uniform_(t, a=0.2, mode="fan_out"),
     _torch_bound(SHAPE, gain("leaky_relu", 0.2), "fan_out")),
    (lambda t: init.kaiming_uniform_(t, mode="FAN_OUT", nonlinearity="relu"),
     _torch_bound(SHAPE, gain("relu"), "fan_out")),
]
NORMAL_INITS = [  # (call, mean, std by torch's formula)
    (lambda t: init.normal_(t, 0.5, 2.0), 0.5, 2.0),
    (lambda t: init.xavier_normal_(t, gain=0.5), 0.0, 0.5 * math.sqrt(2 / sum(SHAPE))),
    (lambda t: init.kaiming_normal_(t, nonlinearity="tanh"), 0.0, gain("tanh") / 10),
    (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), 0.0,
     gain("relu") / math.sqrt(240)),
]


@pytest.mark.parametrize("fill, bounds", UNIFORM_INITS)
def test_uniform_inits_fill_in_place_within_torchs_bounds(fill, bounds):
    low, high = bounds if isinstance(bounds, tuple) else (-bounds, bounds)
    param = nn.Parameter(eager.zeros(*SHAPE))
    before = param.detach()  # shares the memory
    assert fill(param) is param
    assert param.is_leaf and param.requires_grad and param.dtype == np.float32
    values = _np(before).ravel()
    assert low <= values.min() < low + 0.01 * (high - low)
    assert high - 0.01 * (high - low) < values.max() <= high
    np.testing.assert_allclose(values.std(), (high - low) / math.sqrt(12), rtol=0.02)


@pytest.mark.parametrize("fill, mean, std", NORMAL_INITS)
def test_normal_inits_have_torchs_mean_and_std(fill, mean, std):
    param = fill(nn.Parameter(eager.zeros(*SHAPE, dtype=eager.float64)))
    values = _np(param).ravel()
    assert param.dtype == np.float64
    assert abs(values.mean() - mean) < 4 * std / math.sqrt(values.size)
    np.testing.assert_allclose(values.std(), std, rtol=0.02)


def test_inits_follow_manual_seed_and_constants_fill():
    draws = []
    for seed in (1, 1, 2):
        eager.manual_seed(seed)
        draws.append(_np(init.kaiming_normal_(eager.empty(4, 3))).copy())
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])
    t = nn.Parameter(eager.empty(2, 3))
    assert _np(init.constant_(t, 0.25)).tolist() == [[0.25] * 3] * 2
    assert _np(init.ones_(t)).tolist() == [[1.0] * 3] * 2
    assert _np(init.zeros_(t)).tolist() == [[0.0] * 3] * 2 and t.grad_fn is None
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_uniform_(eager.empty(0, 3))


# -- Module.apply and requires_grad_ -----------------------------------------------------------
def _model(lib):
    return lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.Sequential(lib.nn.ReLU(),
                                                                    lib.nn.Linear(3, 1)))


def test_module_apply_visits_as_torch_and_requires_grad_freezes():
    orders = []
    for lib in (eager, torch):
        model = _model(lib)
        visited = []
        assert model.apply(lambda m: visited.append(type(m).__name__)) is model
        orders.append(visited)
        assert model[1].requires_grad_(False) is model[1]
        model(lib.ones(4, 2)).sum().backward()
        orders.append([p.grad is not None for p in model.parameters()])
        assert [p.requires_grad for p in model.parameters()] == [True, True, False, False]
    assert orders[0] == orders[2] == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]
    assert orders[1] == orders[3] == [True, True, False, False]


# -- gradient clipping -------------------------------------------------------------------------
def _params_with_grads(lib, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    params = []
    for shape in [(3, 4), (5,), ()]:
        p = lib.nn.Parameter(lib.tensor(rng.standard_normal(shape).astype(np.float32)))
        p.grad = lib.tensor(rng.standard_normal(shape).astype(np.float32) * 2)
        params.append(p)
    params.append(lib.nn.Parameter(lib.zeros(2)))  # no grad: skipped
    return params


@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2.0), (1.0, 1), (0.5, "inf"),
                                                 (0.5, math.inf), (2.0, 3.0), (100.0, 2)])
def test_clip_grad_norm_gives_torchs_norm_and_gradients(max_norm, norm_type):
    params, twins = _params_with_grads(eager), _params_with_grads(torch)
    total = nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(twins, max_norm, norm_type)
    assert isinstance(total, eager.Tensor) and total.shape == () and total.dtype == np.float32
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-6)
    for p, q in zip(params[:3], twins[:3]):
        np.testing.assert_allclose(_np(p.grad), _np(q.grad), rtol=1e-6)
    assert params[3].grad is None


def test_clip_grad_norm_edge_cases_as_torch():
    p = _params_with_grads(eager)[0]
    norm = nn.utils.clip_grad_norm_(p, 1.0)  # one tensor
    np.testing.assert_allclose(np.linalg.norm(_np(p.grad)), 1.0, rtol=1e-5)
    assert norm.item() > 1
    with pytest.warns(UserWarning, match="`parameters` is an empty generator"):
        assert nn.utils.clip_grad_norm_((p for p in []), 1.0).item() == 0.0
    messages = []
    for lib in (eager, torch):
        q = lib.nn.Parameter(lib.ones(2))
        q.grad = lib.tensor([1.0, float("inf")])
        with pytest.raises(RuntimeError) as info:
            lib.nn.utils.clip_grad_norm_([q], 1.0, error_if_nonfinite=True)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_clip_grad_value_is_torchs():
    params, twins = _params_with_grads(eager), _params_with_grads(torch)
    nn.utils.clip_grad_value_(params, 0.8)
    torch.nn.utils.clip_grad_value_(twins, 0.8)
    for p, q in zip(params[:3], twins[:3]):
        np.testing.assert_array_equal(_np(p.grad), _np(q.grad))
    assert params[3].grad is None


# -- save and load -----------------------------------------------------------------------------
def _nested():
    x = eager.tensor([[1.5, -2.0]], requires_grad=True)
    return OrderedDict([
        ("weights", x), ("again", x), ("param", nn.Parameter(eager.ones(2, dtype=eager.float64))),
        ("ints", eager.arange(6, dtype=eager.int8).reshape(2, 3)),
        ("mask", eager.tensor([True, False])), ("half", eager.ones(3, dtype=eager.float16)),
        ("scalar", eager.tensor(7)), ("empty", eager.zeros(0, 4)),
        ("meta", {"epoch": 3, 4: [1.0, math.inf, math.nan, None, True, "ünï"], "t": (2, "a")}),
    ])


def _assert_same(loaded, original):
    assert type(loaded) is type(original)
    if isinstance(original, eager.Tensor):
        assert loaded.dtype == original.dtype and loaded.shape == original.shape
        assert loaded.requires_grad == original.requires_grad and loaded.is_leaf
        np.testing.assert_array_equal(_np(loaded), _np(original))
    elif isinstance(original, dict):
        assert list(loaded) == list(original)
        for key in original:
            _assert_same(loaded[key], original[key])
    elif isinstance(original, (list, tuple)):
        assert len(loaded) == len(original)
        for a, b in zip(loaded, original):
            _assert_same(a, b)
    elif isinstance(original, float) and math.isnan(original):
        assert math.isnan(loaded)
    else:
        assert loaded == original and type(loaded) is type(original)


def test_save_and_load_round_trip_structures_through_paths_and_file_objects(tmp_path):
    original = _nested()
    eager.save(original, tmp_path / "a.pt")
    eager.save(original, str(tmp_path / "b.pt"))
    buffer = io.BytesIO()
    eager.save(original, buffer)
    buffer.seek(0)
    for loaded in (eager.load(tmp_path / "a.pt"), eager.load(str(tmp_path / "b.pt")),
                   eager.load(buffer, map_location="cpu", weights_only=True)):
        _assert_same(loaded, original)
        assert loaded["weights"] is loaded["again"]  # one tensor stays one tensor
        loaded["weights"].detach().add_(1)  # loaded arrays are writable
    view = eager.arange(4.0)
    a, b = eager.load(_saved_bytes([view, view[1:]]))
    a.add_(1)
    assert _np(b).tolist() == [1.0, 2.0, 3.0]  # views load as copies (documented)


def _saved_bytes(obj):
    buffer = io.BytesIO()
    eager.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_state_dict_saved_and_loaded_into_a_fresh_model(tmp_path):
    eager.manual_seed(0)
    model, fresh = _model(eager), _model(eager)
    path = tmp_path / "model.pt"
    eager.save(model.state_dict(), path)
    assert repr(fresh.load_state_dict(eager.load(path))) == "<All keys matched successfully>"
    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        np.testing.assert_array_equal(_np(p), _np(q), err_msg=name)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("obj, message", [
    ({"a": [1, {2, 3}]}, r"cannot store obj\['a'\]\[1\] \(of type builtins.set\)"),
    ({"net": nn.Linear(1, 1)}, r"obj\['net'\] \(of type eager.nn.modules.Linear\).*save its "
                               r"state_dict\(\) instead"),
    ([np.ones(2)], r"obj\[0\] \(of type numpy.ndarray\)"),
    ({("a", 1): 2}, r"a key of obj of type builtins.tuple"),
])
def test_saving_an_unsupported_object_names_it_and_leaves_the_file_alone(tmp_path, obj,
                                                                         message):
    path = tmp_path / "keep.pt"
    eager.save({"old": 1}, path)
    with pytest.raises(TypeError, match=message):
        eager.save(obj, path)
    assert eager.load(path) == {"old": 1}
    assert sorted(os.listdir(tmp_path)) == ["keep.pt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "keep.pt"
    eager.save({"old": 1}, path)

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        eager.save({"new": eager.ones(3)}, path)
    monkeypatch.undo()
    assert eager.load(path) == {"old": 1} and os.listdir(tmp_path) == ["keep.pt"]
    with pytest.raises(FileNotFoundError, match="cannot save to .*nowhere/a.pt: there is no "
                       "directory"):
        eager.save({}, tmp_path / "nowhere" / "a.pt")


class _Boom:
    """What a malicious pickle would run on load."""

    ran = False

    def __reduce__(self):
        return (setattr, (_Boom, "ran", True))


def _damaged_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = _saved_bytes({"w": eager.ones(64)}).getvalue()
    files = {"empty": (b"", "the file is empty"),
             "garbage": (b"hello, world", "not a file written by eager.save"),
             "truncated": (good[: len(good) // 2], "damaged or truncated"),
             "flipped": (good.replace(b"\x00\x00\x80?", b"\x00\x00\x80@"), "damaged"),
             "pickle": (pickle.dumps(_Boom()), "Python pickle")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.json", '{"format": "eager.save", "version": 1, "object": '
                                      '{"kind": "tensor", "index": 0, "requires_grad": false, '
                                      '"parameter": false}}')
        with archive.open("tensors/0.npy", "w") as member:
            np.lib.format.write_array(member, np.array([_Boom()], object), allow_pickle=True)
    files["object array"] = (buffer.getvalue(), "damaged")
    files["other zip"] = (_zip_of("notes.txt"), "not one written by eager.save")
    written = {}
    for name, (data, message) in files.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        path.write_bytes(data)
        written[name] = (path, message)
    torch.save({"w": torch.ones(2)}, tmp_path / "torch.pt")
    written["torch"] = (tmp_path / "torch.pt", "it is a PyTorch checkpoint")
    return written


def _zip_of(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, "hello")
    return buffer.getvalue()


def test_loading_a_damaged_or_foreign_file_says_which_and_what_and_runs_no_code(tmp_path):
    for name, (path, message) in _damaged_files(tmp_path).items():
        with pytest.raises(ValueError) as info:
            eager.load(path)
        assert str(info.value).startswith(f"cannot load {path}: "), name
        assert message in str(info.value), name
    assert not _Boom.ran
    with pytest.raises(FileNotFoundError):
        eager.load(tmp_path / "missing.pt")
    with pytest.raises(RuntimeError, match="eager computes on the CPU only"):
        eager.load(_saved_bytes(1), map_location="cuda:0")


# -- a tutorial program, run by eager and by torch --------------------------------------------
BLITZ = '''
import eager as torch
import eager.nn as nn
import eager.nn.functional as F
import eager.optim as optim


class ScaledReLU(torch.autograd.Function):
    """relu(x) * scale with a hand-written backward, as in "Learning PyTorch with Examples"."""

    @staticmethod
    def forward(ctx, input, scale):
        ctx.save_for_backward(input)
        ctx.scale = scale
        return input.clamp(min=0) * scale

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        grad_input = grad_output.clone() * ctx.scale
        grad_input[input < 0] = 0
        return grad_input, None


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 3)
        nn.init.kaiming_uniform_(self.fc1.weight, nonlinearity="relu")
        nn.init.zeros_(self.fc1.bias)
        nn.init.xavier_uniform_(self.fc3.weight)
        nn.init.constant_(self.fc3.bias, 0.01)

    def forward(self, x):
        x = ScaledReLU.apply(self.fc1(x), 1.5)
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def init_weights(m):
    if isinstance(m, nn.Linear) and m.in_features == m.out_features:
        nn.init.normal_(m.weight, std=0.2)
        nn.init.zeros_(m.bias)


def make_data(n=128):
    inputs = torch.randn(n, 4)
    labels = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    return inputs, labels


def train(net, inputs, labels, steps=40):
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    losses, norms = [], []
    for step in range(steps):
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(net.parameters(), max_norm=1.0).item())
        optimizer.step()
        losses.append(loss.item())
        if step % 10 == 0:
            print(f"step {step:2d}  loss {loss.item():.4f}")
    return losses, norms


def accuracy(net, inputs, labels):
    with torch.no_grad():
        predicted = net(inputs).argmax(dim=1)
        return (predicted == labels).float().mean().item()


if __name__ == "__main__":
    torch.manual_seed(0)
    inputs, labels = make_data()
    net = Net()
    net.apply(init_weights)
    losses, norms = train(net, inputs, labels)
    print(f"accuracy {accuracy(net, inputs, labels):.2f}")
    torch.save(net.state_dict(), "net.pt")
    restored = Net()
    restored.load_state_dict(torch.load("net.pt", weights_only=True))
    restored.eval()
    with torch.no_grad():
        same = bool((restored(inputs) == net(inputs)).all())
'''


def _run_blitz(framework: str, name: str = "blitz") -> dict:
    source = BLITZ
    if framework == "torch":
        source = source.replace("import eager as torch", "import torch")
        source = source.replace("import eager.", "import torch.")
    namespace = {"__name__": name}
    exec(compile(source, f"blitz_{framework}.py", "exec"), namespace)
    return namespace


def test_tutorial_program_trains_saves_and_restores(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run_blitz("eager", "__main__")
    losses = run["losses"]
    assert losses[-1] < 0.3 * losses[0]
    assert max(run["norms"]) > 1.0  # clipping did scale some steps
    assert run["same"] and (tmp_path / "net.pt").exists()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"step  0  loss {losses[0]:.4f}"
    assert printed[-1].startswith("accuracy ") and float(printed[-1].split()[1]) > 0.9


def test_tutorial_program_gives_torchs_losses_from_the_same_weights():
    ours, theirs = _run_blitz("eager"), _run_blitz("torch")
    eager.manual_seed(0)
    inputs, labels = ours["make_data"]()
    net = ours["Net"]()
    net.apply(ours["init_weights"])
    twin = theirs["Net"]()
    twin.load_state_dict({k: torch.from_numpy(_np(v).copy())
                          for k, v in net.state_dict().items()})
    losses, norms = ours["train"](net, inputs, labels)
    expected = theirs["train"](twin, torch.from_numpy(_np(inputs).copy()),
                               torch.from_numpy(_np(labels).copy()))
    np.testing.assert_allclose(losses, expected[0], rtol=1e-4)
    np.testing.assert_allclose(norms, expected[1], rtol=1e-4)
    for (name, p), (_, q) in zip(net.named_parameters(), twin.named_parameters()):
        np.testing.assert_allclose(_np(p), _np(q), rtol=1e-3, atol=1e-5, err_msg=name)


def test_optimizer_and_scheduler_state_dicts_resume_training_as_torch_checkpoints_do(
        tmp_path) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0, data = rng.standard_normal(3), rng.standard_normal((6, 3))

    def run(lib, steps, checkpoint=None, restore=None, first=0):
        w = lib.tensor(w0.copy(), requires_grad=True)
        opt = lib.optim.Adam([w], lr=0.1)
        sched = lib.optim.lr_scheduler.StepLR(opt, 2, gamma=0.5)
        if restore is not None:
            saved = eager.load(restore)
            with lib.no_grad():
                w.copy_(lib.tensor(saved["w"].numpy()))
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
        for k in range(first, first + steps):
            opt.zero_grad()
            ((lib.tensor(data[k]) * w).sin().sum()).backward()
            opt.step()
            sched.step()
        if checkpoint is not None:
            eager.save({"w": w.detach(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict()}, checkpoint)
        return w.detach().numpy(), opt
    straight, opt = run(eager, 6)
    run(eager, 3, checkpoint=tmp_path / "ckpt.pt")
    resumed, _ = run(eager, 3, restore=tmp_path / "ckpt.pt", first=3)
    np.testing.assert_allclose(resumed, straight, rtol=1e-12)
    want, torch_opt = run(torch, 6)
    np.testing.assert_allclose(straight, want, rtol=1e-10)
    ours, theirs = opt.state_dict(), torch_opt.state_dict()
    assert ours["state"].keys() == theirs["state"].keys()
    assert ours["state"][0].keys() == theirs["state"][0].keys()
    assert ours["param_groups"][0]["params"] == theirs["param_groups"][0]["params"]
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
