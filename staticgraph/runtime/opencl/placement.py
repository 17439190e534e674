"""Where each step of a compiled plan runs: the device, or the host (numpy's kernel), and
what memory planning may assume of the device's kernels. Decided before the memory plan,
since a step on the host allocates its result and a folded transpose is only a view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...graph import Node, Role
from ...ops import P
from ...program import FusedKernel, Member, Program
from .device import Device
from .fused import stores_in_output
from .table import OPENCL, How, Operand, member_expr


def member_of(node: Node) -> Member:
    args = tuple(("in", k) for k in range(len(node.inputs)))
    return Member(node.prim, args, node.params, node.shape, node.dtype, node.name)


def kernel_of(node: Node) -> FusedKernel:
    """One elementwise op as a fused kernel of one member."""
    return FusedKernel([member_of(node)], [x.shape for x in node.inputs],
                       [x.dtype for x in node.inputs], [0], node.shape[0] if node.ndim else 1)


def _expression(member: Member, kernel: FusedKernel) -> str | None:
    operands = [Operand(*(_arg(kernel, tag, i))) for tag, i in member.args]
    args = [f"a{k}" for k in range(len(operands))]
    return member_expr(member.prim, args, operands, member.dtype, member.params)


def _arg(kernel: FusedKernel, tag: str, i: int) -> tuple[np.dtype, int]:
    if tag == "in":
        return kernel.input_dtypes[i], len(kernel.input_shapes[i])
    return kernel.members[i].dtype, len(kernel.members[i].shape)


def index_map(node: Node) -> tuple[int, tuple[int, ...]] | None:
    """(offset, element strides) of ``node`` as a view of its first input, read off numpy's
    own view of a byte-sized probe; None if the kernel copies (index arrays)."""
    x = node.inputs[0]
    if node.prim is P.getitem and len(node.inputs) > 1:
        return None
    probe = np.empty(x.shape, np.uint8)
    others = [np.broadcast_to(np.zeros((), np.uint8), o.shape) for o in node.inputs[1:]]
    view = np.asarray(node.prim.kernel(probe, *others, **node.params))
    if view.size and not np.shares_memory(view, probe):
        return None
    start = view.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
    return start, tuple(view.strides)


def _supported(device: Device, dtypes: Sequence[np.dtype]) -> bool:
    return all(device.c_type(d) is not None for d in dtypes)


def check_dtypes(graph: Program, device: Device, inside: str = "") -> None:
    """float64 needs cl_khr_fp64: say so at compile time, naming the node (a node of a
    control-flow body too: its kernels are this device's)."""
    if device.has_fp64:
        return
    for n in graph.nodes:
        if n.dtype == np.float64:
            raise TypeError(f"{n.op} node {n.name!r}{inside} (built at {n.location}) is "
                            f"float64, which {device.name} cannot compute (no cl_khr_fp64): "
                            "build the graph in float32 or choose another device")
        if n.role is Role.CONTROL:  # (before its results: the body's node is the cause)
            for body in n.control.bodies:
                check_dtypes(body.program, device,
                             f" in the body of {n.op} node {n.name!r}{inside}")


READ_BY_HOST = "a view read only by host steps"
CONTROL_FLOW = "control flow: the loop on the host, each body's steps as kernels"


def host_steps(graph: Program, device: Device) -> dict[Node, str]:
    """The ops and fused kernels the host runs, and why; the device runs every other. A
    transpose or slice read only by host steps is a free numpy view there (the weights'
    transposes in a backward pass, for the host's matmul), not a copy on the device."""
    reasons = {}
    for node in graph.nodes:
        if node.role is Role.CONTROL:
            reasons[node] = CONTROL_FLOW
        elif node.role in (Role.OP, Role.FUSED):
            why = _why_on_host(node, device)
            if why is not None:
                reasons[node] = why
    readers = _readers(graph)
    outputs = set(graph.outputs)
    for node in reversed(graph.nodes):
        if node.role is Role.OP and node not in reasons and node not in outputs and \
                OPENCL[node.prim].how in (How.INDEX_MAP, How.VIEW) and readers.get(node) and \
                all(r in reasons for r in readers[node]):
            reasons[node] = READ_BY_HOST
    return reasons


def _why_on_host(node: Node, device: Device) -> str | None:
    shapes = [node.shape] + [x.shape for x in node.inputs]
    if any(None in s for s in shapes):
        return "a shape the data decides"
    if node.role is Role.FUSED:
        dtypes = list(node.fused.input_dtypes) + [m.dtype for m in node.fused.members]
        if not _supported(device, dtypes):
            return "a dtype the device has no kernel type for"
        for m in node.fused.members:
            if m.prim.reduction is None and _expression(m, node.fused) is None:
                return f"{m.prim.name} has no OpenCL expression for these dtypes"
        return None
    how = OPENCL[node.prim].how
    if how is How.HOST:
        return "no OpenCL kernel (the table says host)"
    if not _supported(device, [node.dtype] + [x.dtype for x in node.inputs]):
        return "a dtype the device has no kernel type for"
    if how is How.MATMUL and device.kind == "cpu":
        return "matmul: the host's BLAS (on a CPU device the tiled kernel is ~16x slower)"
    if how is How.EXPR and _expression(member_of(node), kernel_of(node)) is None:
        return "no OpenCL expression for these dtypes"
    if how is How.INDEX_MAP and index_map(node) is None:
        return "indexing with index arrays"
    return None


@dataclass
class Placement:
    """``on_host``: the steps numpy runs, and why; ``folded``: transposes of the last two
    axes that only matmul kernels read, which read the transpose's input with the two
    axes swapped instead (no copy is made)."""

    on_host: dict[Node, str]
    folded: set[Node] = field(default_factory=set)


def place(graph: Program, device: Device) -> Placement:
    on_host = host_steps(graph, device)
    return Placement(on_host, _foldable_transposes(graph, on_host))


def _foldable_transposes(graph: Program, on_host: dict[Node, str]) -> set[Node]:
    readers = _readers(graph)
    outputs = set(graph.outputs)
    folded = set()
    for node in graph.nodes:
        if node.role is Role.OP and node.prim is P.transpose and node not in on_host and \
                node not in outputs and swaps_last_two(node) and readers.get(node) and \
                all(r.role is Role.OP and r.prim is P.matmul and r not in on_host
                    for r in readers[node]):
            folded.add(node)
    return folded


def swaps_last_two(node: Node) -> bool:
    perm = tuple(node.params["perm"])
    n = len(perm)
    return n >= 2 and perm == tuple(range(n - 2)) + (n - 1, n - 2)


def _readers(graph: Program) -> dict[Node, list[Node]]:
    readers: dict[Node, list[Node]] = {}
    for node in graph.nodes:
        for x in node.inputs:
            readers.setdefault(x, []).append(node)
    return readers


class OpenCLAliasing:
    """What memory planning may assume of this runtime's steps (passes.memory.Aliasing):
    reshapes (and folded transposes) are the same bytes; every device kernel writes into a
    given buffer, and an elementwise one may write over an operand of its shape that dies
    there."""

    hands_over_fresh = False  # a returned value is read back from, or kept in, its own buffer

    def __init__(self, placement: Placement) -> None:
        self.on_host, self.folded = placement.on_host, placement.folded

    def views(self, node: Node) -> bool:
        # A view read only by host steps is computed by them, from its input: that input must
        # live until they run, as a view's base does.
        if self.on_host.get(node) == READ_BY_HOST:
            return True
        return node.role is Role.OP and node not in self.on_host and \
            (OPENCL[node.prim].how is How.VIEW or node in self.folded)

    def writes_into(self, node: Node) -> bool:
        return node.role is Role.OP and node not in self.on_host

    def in_place_inputs(self, value: Node, producer: Node,
                        base_of: dict[Node, Node]) -> list[Node]:
        if producer in self.on_host:
            return []
        if producer.role is Role.OP:
            if OPENCL[producer.prim].how is not How.EXPR:
                return []
            return [x for x in producer.inputs if x.shape == value.shape]
        # A fused kernel writes its one output in its last phase, after a barrier past every
        # other read of the row, and reads an operand of the output's shape at the element it
        # writes: in place over it is safe, unless it also comes in through a view.
        kernel = producer.fused
        if not kernel.writes_last_only or kernel.members[-1].prim.reduction is not None or \
                stores_in_output(kernel):
            return []
        roots = [base_of.get(x, x) for x in producer.inputs]
        return [x for k, x in enumerate(producer.inputs)
                if x.shape == value.shape and sum(r is x for r in roots) == 1
                and kernel.reads_by_rows(k)]
