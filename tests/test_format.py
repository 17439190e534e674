"""format_tensor must print exactly what torch prints for the same data."""

import numpy as np
import pytest

from eager._format import format_tensor

REQUIRES_GRAD = "requires_grad=True"
CLONE_GRAD_FN = "grad_fn=<CloneBackward0>"

_rng = np.random.default_rng(1234)


def _normal(*shape: int, scale: float = 1.0, dtype: str = "float32") -> np.ndarray:
    return (_rng.standard_normal(shape) * scale).astype(dtype)


def _floats(values, dtype: str = "float32") -> np.ndarray:
    return np.array(values, dtype=dtype)


NAN, INF = float("nan"), float("inf")

# id -> (array, suffixes); every case is checked against torch's own repr.
CASES = {
    # floats at various scales, fixed or scientific as torch chooses
    "normal": (_normal(5), ()),
    "normal-small": (_normal(6, scale=0.01), ()),
    "normal-hundreds": (_normal(6, scale=100.0), ()),
    "normal-large": (_normal(4, scale=1e5), ()),
    "normal-tiny": (_normal(4, scale=1e-3), ()),
    "negatives": (_floats([-1.5, 2.25, -100.125]), ()),
    "integral": (_floats([1, 2, 3]), ()),
    "integral-negative-2d": (_floats(np.arange(-13, 14).reshape(3, 9)), ()),
    "sci-ratio": (_floats([1e10, 1.0]), ()),
    "sci-small": (_floats([1e-5, 1.0]), ()),
    "sci-big-integral": (_floats([1e9]), ()),
    "sci-fractional": (_floats([123.456, 0.001]), ()),
    "sci-extremes": (_floats([1e300, 5e-324, -2.5], "float64"), ()),
    "fixed-edge-1e8": (_floats([1e8, 12345678.5], "float64"), ()),
    "rounds-up-wider": (_floats([9.99996, 0.5], "float64"), ()),
    # zeros and non-finite values
    "nan-inf": (_floats([NAN, INF, -INF, 1.5]), ()),
    "nan-integral": (_floats([NAN, 1.0, -INF]), ()),
    "all-nan": (_floats([NAN, NAN]), ()),
    "only-infs-and-zero": (_floats([INF, 0.0, -INF]), ()),
    "zeros": (np.zeros((2, 3), dtype="float32"), ()),
    "negative-zero": (_floats([-0.0, 0.0, 2.0]), ()),
    "negative-zero-fixed": (_floats([-0.0, 1.5]), ()),
    # integer and bool dtypes
    "int64": (np.array([1, 2, 3]), ()),
    "int64-negative-2d": (np.array([[-100, 2], [3, 40]]), ()),
    "int32": (np.array([7, -8, 9], dtype="int32"), ()),
    "int16": (np.array([[1, 2], [3, 4]], dtype="int16"), ()),
    "int8": (np.array([-128, 127], dtype="int8"), ()),
    "uint8": (np.array([0, 255, 16], dtype="uint8"), ()),
    "bool": (np.array([True, False]), ()),
    "bool-all-true": (np.array([[True, True], [True, True]]), ()),
    # other float dtypes
    "float64": (_normal(2, 3, dtype="float64"), ()),
    "float16": (_floats([0.1, 1.5, 1000.0], "float16"), ()),
    "float16-inf": (_floats([INF, 2.0], "float16"), ()),
    # 0-d
    "scalar-integral": (_floats(27.0), ()),
    "scalar-fixed": (_floats(4.5), ()),
    "scalar-nan": (_floats(NAN), ()),
    "scalar-sci": (_floats(1e-7), ()),
    "scalar-int64": (np.array(5), ()),
    "scalar-int32": (np.array(-5, dtype="int32"), ()),
    "scalar-bool": (np.array(False), ()),
    "scalar-float64": (_floats(2.5, "float64"), ()),
    # empty
    "empty": (np.zeros(0, dtype="float32"), ()),
    "empty-int64": (np.zeros(0, dtype="int64"), ()),
    "empty-bool": (np.zeros(0, dtype="bool"), ()),
    "empty-float64": (np.zeros(0, dtype="float64"), ()),
    "empty-2d": (np.zeros((0, 3), dtype="float32"), ()),
    "empty-3d-int32": (np.zeros((2, 0, 4), dtype="int32"), ()),
    "empty-requires-grad": (np.zeros((0, 2), dtype="float32"), (REQUIRES_GRAD,)),
    # long rows wrap at 80 columns
    "wrap-floats": (_normal(30), ()),
    "wrap-ints": (np.arange(100), ()),
    "wrap-float64": (_normal(40, dtype="float64"), ()),
    "wrap-sci": (_normal(20, scale=1e6), ()),
    "wrap-bools": (_rng.standard_normal(40) > 0, ()),
    "wrap-2d": (_normal(3, 25), ()),
    # higher dimensions
    "2d": (_normal(3, 4), ()),
    "3d": (_normal(2, 3, 4), ()),
    "4d": (_normal(2, 2, 2, 3), ()),
    "4d-int": (np.arange(36).reshape(3, 2, 2, 3), ()),
    "5d-wrap": (_normal(2, 1, 2, 1, 12), ()),
    "transposed": (_normal(4, 3).T, ()),
    # summarised (more than 1000 elements)
    "summary-1d": (_normal(1001), ()),
    "summary-1d-ints": (np.arange(5000), ()),
    "summary-1d-sci": (_normal(2000, scale=1e9), ()),
    "summary-2d": (_normal(40, 40), ()),
    "summary-2d-wide": (_normal(2, 1000), ()),
    "summary-2d-tall": (_normal(1000, 2), ()),
    "summary-3d": (_normal(12, 10, 10), ()),
    "summary-3d-bool": (_rng.standard_normal((11, 11, 11)) > 0, ()),
    "summary-4d-int32": (np.arange(8 * 8 * 8 * 8, dtype="int32").reshape(8, 8, 8, 8), ()),
    "summary-nothing-elided": (_normal(6, 6, 6, 6), ()),
    "summary-float64": (_normal(30, 50, dtype="float64"), ()),
    # suffixes after torch's own
    "requires-grad-2d": (np.ones((2, 2), dtype="float32"), (REQUIRES_GRAD,)),
    "requires-grad-scalar": (_floats(3.0), (REQUIRES_GRAD,)),
    "grad-fn-scalar": (_floats(27.0), (CLONE_GRAD_FN,)),
    "grad-fn-3d": (_normal(2, 2, 3), (CLONE_GRAD_FN,)),
    "grad-fn-summary": (_normal(50, 50), (CLONE_GRAD_FN,)),
    "dtype-then-requires-grad": (_normal(3, dtype="float64"), (REQUIRES_GRAD,)),
    "suffix-wraps": (_floats(np.arange(9) * 10.5 + 100.25), (REQUIRES_GRAD,)),
    "dtype-wraps-then-grad-fits": (
        _floats(np.arange(9) * 10.5 + 100.25, "float64"),
        (REQUIRES_GRAD,),
    ),
    "grad-fn-wraps-after-wrapped-row": (_normal(12, scale=10.0), (CLONE_GRAD_FN,)),
}


def _torch_repr(array: np.ndarray, suffixes: tuple[str, ...]) -> str:
    torch = pytest.importorskip("torch")
    tensor = torch.from_numpy(array.copy())
    if REQUIRES_GRAD in suffixes:
        tensor.requires_grad_(True)
    if CLONE_GRAD_FN in suffixes:
        tensor = tensor.requires_grad_(True).clone()
    text = repr(tensor)
    return text.replace("dtype=torch.", "dtype=eager.")


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case: str) -> None:
    array, suffixes = CASES[case]
    assert format_tensor(array, suffixes) == _torch_repr(array, suffixes)


@pytest.mark.parametrize(
    ("array", "suffixes", "expected"),
    [
        (
            np.ones((2, 2), dtype="float32"),
            [REQUIRES_GRAD],
            "tensor([[1., 1.],\n        [1., 1.]], requires_grad=True)",
        ),
        (_floats(27.0), ["grad_fn=<MeanBackward0>"], "tensor(27., grad_fn=<MeanBackward0>)"),
        (
            np.full((2, 2), 4.5, dtype="float32"),
            [],
            "tensor([[4.5000, 4.5000],\n        [4.5000, 4.5000]])",
        ),
        (_floats([1.0, 2.0]), [], "tensor([1., 2.])"),
        (_floats([1e10, 1e-5]), [], "tensor([1.0000e+10, 1.0000e-05])"),
        (_floats([NAN, -INF, 0.5]), [], "tensor([   nan,   -inf, 0.5000])"),
        (np.array([1, 2, 3]), [], "tensor([1, 2, 3])"),
        (np.array([True, False]), [], "tensor([ True, False])"),
        (np.array([1, 2], dtype="int32"), [], "tensor([1, 2], dtype=eager.int32)"),
        (np.zeros(0, dtype="float32"), [], "tensor([])"),
        (np.zeros((0, 3), dtype="int64"), [], "tensor([], size=(0, 3), dtype=eager.int64)"),
        (
            np.arange(1001, dtype="float64"),
            [],
            "tensor([   0.,    1.,    2.,  ...,  998.,  999., 1000.], dtype=eager.float64)",
        ),
        (
            np.zeros((2, 1, 2), dtype="float32"),
            [],
            "tensor([[[0., 0.]],\n\n        [[0., 0.]]])",
        ),
    ],
)
def test_literal_output(array: np.ndarray, suffixes: list[str], expected: str) -> None:
    assert format_tensor(array, suffixes) == expected


def test_long_suffixes_wrap_under_the_opening_bracket() -> None:
    text = format_tensor(_floats([1.0]), ["a" * 70, "b" * 60])
    assert text == "tensor([1.],\n       " + "a" * 70 + ",\n       " + "b" * 60 + ")"


def test_wrapped_suffix_line_is_measured_like_torch() -> None:
    # After a wrap torch counts only indent + suffix length, so this pair shares one 81-char line.
    text = format_tensor(_floats([1.0]), ["a" * 70, "b"])
    assert text == "tensor([1.],\n       " + "a" * 70 + ", b)"


def test_unsupported_dtype_is_rejected() -> None:
    with pytest.raises(TypeError):
        format_tensor(np.zeros(2, dtype="complex64"))
