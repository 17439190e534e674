"""The backend tables, keyed by primitive: complete, and true. Each test names the primitives
it finds wanting. The numpy runtime's table is checked against the primitives' reference
kernels on every node of every op spec's graph and gradient graph."""

from __future__ import annotations

import functools

import numpy as np
from opspecs import SPECS, spec_graph

from staticgraph.graph import Role
from staticgraph.ops import PRIMITIVES, Kind
from staticgraph.ops.autodiff import toposort
from staticgraph.runtime.numpy_table import NUMPY


def _fusible(prim) -> bool:
    return prim.kind in (Kind.ELEMENTWISE, Kind.BROADCAST) or prim.reduction is not None


def test_every_primitive_has_a_numpy_lowering() -> None:
    missing = sorted(name for name, p in PRIMITIVES.items() if p not in NUMPY)
    assert not missing, f"primitives missing from runtime/numpy_table.py NUMPY: {missing}"


def test_every_fusible_primitive_can_write_into_a_buffer() -> None:
    """Fusion decides by kind alone; a fused kernel runs each member ``into`` a chunk."""
    missing = sorted(name for name, p in PRIMITIVES.items()
                     if _fusible(p) and NUMPY[p].into is None)
    assert not missing, f"fusible primitives without an `into` in NUMPY: {missing}"


def test_reductions_combine_with_an_associative_elementwise_ufunc() -> None:
    """A fused reduction over rows combines per-chunk partials with its combine's ufunc."""
    wrong = sorted(name for name, p in PRIMITIVES.items() if p.reduction is not None and not (
        p.kind is Kind.REDUCE and p.reduction.combine.kind is Kind.ELEMENTWISE
        and NUMPY[p.reduction.combine].in_place))
    assert not wrong, f"reductions whose combine is not an elementwise ufunc: {wrong}"


@functools.cache
def _spec_nodes():
    """(spec name, node, input arrays, reference output) for every primitive node of every
    spec's forward and gradient graph, evaluated with the reference kernels."""
    found = []
    for spec in SPECS:
        built = spec_graph(spec)
        values = dict(zip(built.placeholders, built.arrays))
        with np.errstate(all="ignore"):
            for node in toposort([built.out, *built.grads], lambda n: n.inputs):
                if node.role is Role.CONSTANT:
                    values[node] = node.value
                elif node.role is Role.OP:
                    args = [values[i] for i in node.inputs]
                    values[node] = node.prim.kernel(*args, **node.params)
                    found.append((spec.name, node, args, values[node]))
    return found


def test_kernels_alias_inputs_only_where_the_table_says_views() -> None:
    """Memory planning trusts the table: a kernel that returns memory of an input without
    ``views`` would let a later write change a value still in use."""
    wrong = sorted({f"{node.op} (spec {name})" for name, node, args, out in _spec_nodes()
                    if not NUMPY[node.prim].views and any(
                        isinstance(a, np.ndarray) and np.shares_memory(out, a) for a in args)})
    assert not wrong, f"kernels that return an input's memory without `views`: {wrong}"


def test_into_writes_what_the_reference_kernel_returns() -> None:
    wrong = set()
    with np.errstate(all="ignore"):
        for name, node, args, expected in _spec_nodes():
            into = NUMPY[node.prim].into_for([i.dtype for i in node.inputs], node.dtype)
            if into is None or None in node.shape:
                continue
            out = np.full(node.shape, 7, node.dtype)  # not zeros: a skipped write shows
            into(*args, out=out, **node.params)
            expected = np.asarray(expected).astype(node.dtype)
            if not np.array_equal(out, expected, equal_nan=out.dtype.kind in "fc"):
                wrong.add(f"{node.op} (spec {name})")
    assert not wrong, f"`into` differs from the reference kernel: {sorted(wrong)}"


def test_every_primitive_has_an_opencl_lowering() -> None:
    from staticgraph.runtime.opencl.table import OPENCL, How
    missing = sorted(name for name, p in PRIMITIVES.items() if p not in OPENCL)
    assert not missing, f"primitives missing from runtime/opencl/table.py OPENCL: {missing}"
    # an elementwise primitive fuses into any kernel only as a C expression
    wrong = sorted(name for name, p in PRIMITIVES.items() if p.kind is Kind.ELEMENTWISE and
                   OPENCL[p].how not in (How.EXPR, How.VIEW))
    assert not wrong, f"elementwise primitives without an OpenCL expression: {wrong}"
    wrong = sorted(name for name, p in PRIMITIVES.items()
                   if p.reduction is not None and OPENCL[p.reduction.combine].how is not How.EXPR)
    assert not wrong, f"reductions whose combine has no OpenCL expression: {wrong}"
