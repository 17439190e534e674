"""Every primitive is exercised by the op-spec table: each spec's function is built in graph
mode on placeholders (as test_graph_ops does), and the primitives of the nodes its outputs
depend on, and of its gradient graph, are collected. Graphs are only built, never run."""

from __future__ import annotations

import functools

from opspecs import SPECS, spec_graph

from staticgraph.ops import PRIMITIVES
from staticgraph.ops.autodiff import toposort
from staticgraph.passes import specialize
from staticgraph.passes.decompose import decompose

# Primitives no user-facing function of both modes builds: only gradient rules do.
GRADIENT_ONLY = {
    "sum_to": "autodiff sums a broadcast input's cotangent back to the input's shape",
    "scatter_add": "getitem's gradient (repeated indices accumulate)",
    "fill": "the ones seeding sg.gradients and the zeros of unconnected inputs",
    "threshold_backward": "relu's gradient (torch's threshold_backward)",
}
# Primitives whose results no spec can compare with torch's, each tested where it is used.
NOT_IN_SPECS = {
    "uniform_like": "random numbers: tests/test_cnn.py checks dropout's rate, scaling and "
                    "reproducibility",
    "after": "running-statistics updates: tests/test_cnn.py checks batch norm's against torch",
    **{name: "an MPI collective: tests/test_distributed.py checks values and gradients on jobs "
             "of 2 and 4 ranks" for name in ("allreduce", "broadcast", "allgather")},
    **{name: "built by the compiler's bucketing pass: tests/test_bucketing.py checks values, "
             "buckets and schedule, on one rank and a job of 2" for name in
       ("allreduce_start", "allreduce_wait")},
}


def _prims(outputs) -> set[str]:
    """The primitives of every node the outputs depend on (nodes built but unused, such as
    the indices of ``max(dim).values``, exercise nothing)."""
    return {n.prim.name for n in toposort(outputs, lambda n: n.inputs) if n.prim is not None}


@functools.cache
def _coverage() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """For each spec, the primitives of its forward graph and of its gradient graph."""
    forward, backward = {}, {}
    for spec in SPECS:
        built = spec_graph(spec)
        # the composites' decompositions count as forward too: the compiler runs them
        decomposed = decompose(specialize([built.out], {}))
        forward[spec.name] = _prims([built.out]) | _prims(decomposed.outputs)
        backward[spec.name] = _prims(built.grads)
    return forward, backward


def test_every_primitive_is_exercised_by_a_spec() -> None:
    forward, _ = _coverage()
    covered = set().union(*forward.values())
    missing = sorted(set(PRIMITIVES) - covered - set(GRADIENT_ONLY) - set(NOT_IN_SPECS))
    assert not missing, f"primitives no spec in tests/opspecs.py exercises: {missing}"


def test_gradient_only_primitives_are_exercised_by_gradients() -> None:
    forward, backward = _coverage()
    unknown = sorted(set(GRADIENT_ONLY) - set(PRIMITIVES))
    assert not unknown, f"GRADIENT_ONLY names no primitive: {unknown}"
    in_gradients = set().union(*backward.values())
    missing = sorted(set(GRADIENT_ONLY) - in_gradients)
    assert not missing, f"GRADIENT_ONLY primitives no spec's gradient graph uses: {missing}"
    direct = {p: [s for s, prims in forward.items() if p in prims] for p in GRADIENT_ONLY}
    direct = {p: specs for p, specs in direct.items() if specs}
    assert not direct, f"in forward graphs, so no longer gradient-only: {direct}"
