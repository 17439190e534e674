"""onnx's own node conformance tests (onnx.backend.test) for the ops staticgraph imports, run
through ``staticgraph.onnx.backend``. Every float32, float64, int32, int64 and bool test of
those ops runs; EXCLUDED says why each other one does not."""

import importlib
import unittest
import warnings
from unittest import mock

import onnx
import onnx.backend.test
import onnx.backend.test.case.node as node_cases
import onnx.backend.test.runner
from onnx import TensorProto

import staticgraph.onnx.backend

# The op types under test, each with the module of onnx.backend.test.case.node defining its
# tests (importing a module builds its cases: far faster than loading all of onnx's). Loop is
# not here: each of its node tests needs something else first (test_loop11 a Slice whose
# starts are known only at run time, test_loop13_seq and test_loop16_seq_none sequences and
# optionals); tests/test_onnx_control.py tests Loop against onnxruntime instead.
OPS = {
    "Abs": "abs", "Add": "add", "And": "and_", "ArgMax": "argmax", "ArgMin": "argmin",
    "AveragePool": "averagepool", "BatchNormalization": "batch_normalization", "Col2Im": "col2im",
    "Conv": "conv", "ConvTranspose": "convtranspose", "Elu": "elu",
    "GlobalAveragePool": "globalaveragepool", "GlobalMaxPool": "globalmaxpool",
    "HardSigmoid": "hardsigmoid", "LeakyRelu": "leakyrelu", "MaxPool": "maxpool", "Pad": "pad",
    "If": "if_", "Scan": "scan",
    "Cast": "cast", "Clip": "clip", "Concat": "concat", "Constant": "constant",
    "Ceil": "ceil", "Cos": "cos", "CumSum": "cumsum", "Floor": "floor",
    "GatherElements": "gatherelements",
    "Sin": "sin",
    "ConstantOfShape": "constantofshape", "Div": "div", "Dropout": "dropout", "Equal": "equal",
    "Erf": "erf", "Exp": "exp", "Expand": "expand", "Flatten": "flatten", "Gather": "gather",
    "Gelu": "gelu", "GatherND": "gathernd", "Gemm": "gemm", "Greater": "greater",
    "GreaterOrEqual": "greater_or_equal",
    "Identity": "identity", "LayerNormalization": "layernormalization", "Less": "less",
    "LessOrEqual": "less_or_equal", "Log": "log", "LogSoftmax": "logsoftmax",
    "MatMul": "matmul", "Max": "max", "NegativeLogLikelihoodLoss": "negativeloglikelihoodloss",
    "NonZero": "nonzero", "Min": "min", "Mod": "mod", "Mul": "mul", "Neg": "neg",
    "Not": "not_", "Or": "or_", "Pow": "pow", "Range": "rangeop", "ReduceMax": "reducemax",
    "ReduceMean": "reducemean", "ReduceMin": "reducemin", "ReduceProd": "reduceprod",
    "ReduceSum": "reducesum", "Relu": "relu", "Reshape": "reshape", "Shape": "shape",
    "Sigmoid": "sigmoid", "Sign": "sign", "Slice": "slice", "Softmax": "softmax",
    "Softplus": "softplus", "Split": "split", "Sqrt": "sqrt", "Squeeze": "squeeze",
    "Sub": "sub", "Tanh": "tanh", "Transpose": "transpose", "Trilu": "trilu",
    "ScatterElements": "scatterelements", "Unsqueeze": "unsqueeze", "Where": "where",
}
DTYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT32, TensorProto.INT64,
          TensorProto.BOOL}

# Every test of these ops that does not run, and why (besides dtypes other than DTYPES).
EXCLUDED = {
    **dict.fromkeys(["test_training_dropout", "test_training_dropout_default",
                     "test_training_dropout_mask", "test_training_dropout_default_mask"],
                    "training-mode Dropout is random; only inference is imported"),
    **dict.fromkeys(["test_maxpool_with_argmax_2d_precomputed_pads",
                     "test_maxpool_with_argmax_2d_precomputed_strides"],
                    "MaxPool's Indices output is not imported"),
    "test_col2im_5d": "Col2Im into 3-D images is not imported (only 2-D)",
    **dict.fromkeys(["test_identity_sequence", "test_if_seq"],
                    "sequence values are not supported"),
    **dict.fromkeys(["test_identity_opt", "test_if_opt"], "optional values are not supported"),
    "test_scan_sum": "Scan before opset 9 (a batch axis and sequence_lens) is not imported",
}


# Whole families, by a part of their names.
EXCLUDED_PATTERNS = (
    ("test_nllloss_", "_weight", "NegativeLogLikelihoodLoss with class weights is not imported"),
    ("test_gathernd_", "batch_dim1", "GatherND with batch_dims other than 0 is not imported"),
    ("test_scatter_elements_", "_reduction_m", "ScatterElements reductions other than none "
                                               "and add (mul, max, min) are not imported"),
    *((family, part, "only 2-D convolutions and pools are imported (inputs N x C x H x W)")
      for family in ("test_averagepool_", "test_maxpool_", "test_convtranspose_")
      for part in ("_1d", "_3d")),
)


def _excluded(name: str) -> str | None:
    return EXCLUDED.get(name) or next((reason for family, part, reason in EXCLUDED_PATTERNS
                                       if name.startswith(family) and part in name), None)


def _dtype_outside(case) -> str | None:
    """The first dtype of a graph input or output that staticgraph does not import."""
    for value in (*case.model.graph.input, *case.model.graph.output):
        elem = value.type.tensor_type.elem_type
        if value.type.HasField("tensor_type") and elem not in DTYPES:
            return TensorProto.DataType.Name(elem)
    return None


def _node_cases() -> list:
    with warnings.catch_warnings():  # the case builders overflow casts on purpose
        warnings.simplefilter("ignore")
        for module in OPS.values():
            importlib.import_module(f"{node_cases.__name__}.{module}")
    cases = node_cases._NodeTestCases  # every case any module imported so far built
    subject = {c.name: c.model.graph.node[0].op_type for c in cases
               if "_expanded" not in c.name}
    return [c for c in cases if subject.get(c.name.split("_expanded")[0]) in OPS]


CASES = _node_cases()
REASONS = {c.name: _excluded(c.name) or
           (f"dtype {d} is not imported" if (d := _dtype_outside(c)) else None) for c in CASES}


def _backend_test_cases() -> dict[str, type[unittest.TestCase]]:
    # BackendTest loads all five kinds of onnx's tests when built (seconds, and the real
    # models would download): give it only these node tests.
    with mock.patch.object(onnx.backend.test.runner, "load_model_tests",
                           lambda kind: CASES if kind == "node" else []):
        test_cases = onnx.backend.test.BackendTest(staticgraph.onnx.backend, __name__).test_cases
    for case in test_cases.values():
        for name in dir(case):
            reason = REASONS.get(name.removesuffix("_cpu").removesuffix("_cuda"))
            if name.startswith("test_") and reason:
                setattr(case, name, unittest.skip(reason)(getattr(case, name)))
    return test_cases


globals().update(_backend_test_cases())


def test_every_exclusion_names_a_test():
    assert set(EXCLUDED) <= {c.name for c in CASES}


def test_every_op_has_tests():
    tested = {c.model.graph.node[0].op_type for c in CASES if not REASONS[c.name]}
    assert set(OPS) - tested == set()
