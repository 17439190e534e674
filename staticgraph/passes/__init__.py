"""The compiler's passes, each a pure function ``Program -> Program`` in its own module, and
the pipeline that runs them on a graph specialised to the shapes being fed.

``passes`` names a pipeline: any of PASSES' keys plus "plan_memory" (applied by the
scheduler), in order; ``()`` runs the graph as built, one kernel per node, no buffer reuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..graph import GraphError, Node, Role, infer
from ..ops.autodiff import toposort
from .bucketing import bucket_allreduces
from .constant_folding import fold_constants
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .decompose import decompose
from .fold_affine import fold_channel_affine
from .hoist import hoist_invariants
from ..program import Program
from .fusion import fuse
from .rewrite import copy_node, rewrite
from .simplify import simplify

PASSES: dict[str, Callable[[Program], Program]] = {
    "fold_channel_affine": fold_channel_affine,
    "decompose": decompose,
    "simplify": simplify,
    "fold_constants": fold_constants,
    "cse": eliminate_common_subexpressions,
    "hoist": hoist_invariants,
    "dce": eliminate_dead_code,
    "fuse": fuse,
    "bucket": bucket_allreduces,  # (after fuse: it makes the schedule, which fuse re-derives)
}
DEFAULT_PASSES = ("fold_channel_affine", "decompose", "simplify", "fold_constants", "cse",
                  "hoist", "dce", "fuse", "bucket", "plan_memory")


@dataclass
class PassReport:
    """What each pass did: (pass name, nodes after it)."""

    nodes: list[tuple[str, int]] = field(default_factory=list)


def check_passes(passes: Sequence[str]) -> tuple[str, ...]:
    unknown = [p for p in passes if p not in PASSES and p != "plan_memory"]
    if unknown:
        raise ValueError(f"unknown passes {unknown}; available: {[*PASSES, 'plan_memory']}")
    return tuple(passes)


def specialize(fetches: Sequence[Node],
               feed_shapes: Mapping[Node, tuple[int, ...]]) -> Program:
    """The subgraph ``fetches`` need, copied with the fed shapes: every shape becomes concrete
    (bar data-dependent ones), so passes and memory planning can use it. A fed node becomes a
    placeholder of the fed shape; a shape mismatch between fed values raises here, naming the
    node and where it was built."""
    needed = toposort(fetches, lambda n: () if n in feed_shapes else n.inputs)
    graph = Program()
    mapping: dict[Node, Node] = {}
    for node in needed:
        if node in feed_shapes:
            mapping[node] = copy_node(graph, node, (), role=Role.PLACEHOLDER, prim=None,
                                      params={}, shape=feed_shapes[node], value=None)
            continue
        inputs = tuple(mapping[i] for i in node.inputs)
        if node.role is Role.CONTROL:
            mapping[node] = copy_node(graph, node, inputs, control=node.control.specialized(
                [i.shape for i in inputs], node.location))
        elif node.role is Role.OUTPUT and inputs[0].role is Role.CONTROL:
            shape = inputs[0].control.out_types[node.params["index"]][0]
            mapping[node] = copy_node(graph, node, inputs, shape=shape)
        elif node.role is not Role.OP:
            mapping[node] = copy_node(graph, node, inputs)
        else:
            shape, _ = infer(node.prim, inputs, node.params, node.location)
            mapping[node] = copy_node(graph, node, inputs, shape=shape)
    graph.outputs = [mapping[f] for f in fetches]
    return graph


def optimize(graph: Program, passes: Sequence[str],
             debug: bool = False) -> tuple[Program, PassReport]:
    """Run the named passes in order (``debug`` checks the graph's invariants after each)."""
    report = PassReport([("specialized", len(graph))])
    if debug:
        check_invariants(graph, "specialization")
    for name in passes:
        if name == "plan_memory":
            continue
        graph = PASSES[name](in_bodies(graph, PASSES[name]))
        report.nodes.append((name, len(graph)))
        if debug:
            check_invariants(graph, name)
    return graph, report


def in_bodies(graph: Program, apply: Callable[[Program], Program]) -> Program:
    """``graph`` with ``apply`` run inside every control-flow body (nested ones first): every
    pass runs in bodies as it runs on the graph around them."""
    if not any(n.role is Role.CONTROL for n in graph.nodes):
        return graph

    def rule(node: Node, inputs: tuple[Node, ...], new: Program) -> Node | None:
        if node.role is not Role.CONTROL:
            return None
        bodies = [b.with_program(apply(in_bodies(b.program, apply)))
                  for b in node.control.bodies]
        return copy_node(new, node, inputs, control=node.control.with_bodies(bodies))

    return rewrite(graph, rule)


def check_invariants(graph: Program, after: str) -> None:
    """Single assignment in a topological order, unique names, outputs present, and every
    primitive node's shape and dtype what its rules say."""
    seen: set[Node] = set()
    names: set[str] = set()
    for node in graph.nodes:
        if node in seen or node.name in names:
            raise GraphError(f"after {after}: {node.name!r} appears twice")
        missing = [i.name for i in node.inputs if i not in seen]
        if missing:
            raise GraphError(f"after {after}: {node.name!r} uses {missing} before they exist")
        if node.role is Role.OP:
            shape, dtype = infer(node.prim, node.inputs, node.params, node.location)
            if (tuple(shape), dtype) != (node.shape, node.dtype):
                raise GraphError(f"after {after}: {node.name!r} says {node.shape} {node.dtype} "
                                 f"but its rules give {tuple(shape)} {dtype}")
        if node.role is Role.OUTPUT and node.inputs[0].role is Role.CONTROL:
            shape, dtype = node.inputs[0].control.out_types[node.params["index"]]
            if (shape, dtype) != (node.shape, node.dtype):
                raise GraphError(f"after {after}: {node.name!r} says {node.shape} {node.dtype} "
                                 f"but its control flow gives {shape} {dtype}")
        if node.role is Role.CONTROL:
            for name, body in zip(node.control.body_names, node.control.bodies):
                check_invariants(body.program, f"{after}, in {node.name!r}'s {name}")
        seen.add(node)
        names.add(node.name)
    absent = [o.name for o in graph.outputs if o not in seen]
    if absent:
        raise GraphError(f"after {after}: outputs {absent} are not in the graph")
