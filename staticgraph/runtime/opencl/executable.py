"""The compiled schedule on an OpenCL device: the same graph and memory plan as the numpy
runtime, each step a launch of a generated kernel on device buffers allocated once per plan.

Feeds are copied in and fetches read back; every other value stays on the device. A
Variable's new value is written into one of two device buffers the plan keeps for it and
handed to the session as a ``DeviceArray``, so the next run reads it where it is; the
session reads it back only when asked (``sess.run(var)``, ``save``, ONNX export). A step the
device has no kernel for (a data-dependent shape, a scatter, matmul on a CPU device, where
the host's BLAS is faster) runs its numpy kernel on the host, its operands read back and
its result written to the device where a kernel reads it. Control flow is such a step too:
the loop runs on the host, its bodies compiled as executables of their own (``control``).
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...graph import Node, Role, check_assigned_shape
from ...ops import P
from ...ops.shapes import sum_to_axes
from ...passes.memory import BUFFER, FRESH, VIEW, MemoryPlan, nbytes
from ...program import FusedKernel, Program
from ..interpreter import Executable, RunError, run_kernel
from ..numpy import Recycler
from .codegen import (
    Launch,
    Rendered,
    col2im_launch,
    contiguous_strides,
    im2col_launch,
    matmul_launch,
    reduction_launch,
    size,
    strided_copy_launch,
)
from .control import HostLoop
from .device import Device, DeviceArray, _cl
from .fused import render_fused
from .placement import READ_BY_HOST, Placement, index_map, kernel_of
from .table import OPENCL, How, prelude


@dataclass
class _Step:
    """A kernel launch with its arguments: nodes (their buffers this run) or fixed buffers."""

    kernel: object
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]
    args: list
    category: str  # what ``profile`` counts its time as


class OpenCLExecutable(Executable):
    """The schedule as OpenCL launches (see the module docstring)."""

    def __init__(self, graph: Program, plan: MemoryPlan, device: Device,
                 placement: Placement) -> None:
        super().__init__(graph)
        self.device, self.plan = device, plan
        self._cl = _cl()
        self.sources: list[tuple[str, str]] = []   # (what it computes, OpenCL C)
        self.scratch_bytes = 0  # partial results and scratch rows of its kernels
        on_host = placement.on_host
        self.on_host = [f"{n.name} ({n.op}): {why}" for n, why in on_host.items()]
        self._folded = placement.folded
        float_types = ["float"] + (["double"] if device.has_fp64 else [])
        self._prelude = prelude(float_types)
        self._buffers = [self._alloc(n) for n in plan.buffer_bytes]
        self._buffer_of: dict[Node, object] = {}
        self._host_nodes = set(on_host)
        self._loops: dict[Node, HostLoop] = {}  # each CONTROL node's, its bodies compiled
        self.bodies = {}  # each CONTROL node's compiled bodies (for explain)
        self._deferred = {n for n, why in on_host.items() if why == READ_BY_HOST}
        self._steps: list = []  # _Step, or a node run on the host
        self._spares: dict[Node, list] = {}      # Variable -> its two buffers
        self._issued: dict[int, DeviceArray] = {}  # id(buffer) -> value handed out in it
        self._uploaded: dict[Node, object] = {}  # Variable -> numpy value now in buffer 0
        # On a device that shares the host's memory (a CPU), a feed is read where it lies
        # and a fetched value is written straight into the array returned (no copies).
        self._shared = device.shares_host_memory
        assigned = {a.inputs[1] for a in self.assigns}
        self._fetched = {} if not self._shared else {
            b: Recycler(b.shape, b.dtype) for b in (self._base(o) for o in graph.outputs)
            if plan.storage.get(b) == FRESH and self._on_device(b) and
            b not in assigned and b.role in (Role.OP, Role.OUTPUT)}
        self._over_host: dict[Node, tuple] = {}  # fetched value -> (weakref to array, buffer)
        self._empty = self._alloc(1)  # what an empty value's kernels are given
        self._render()
        for node, loop in self._loops.items():  # (after the launches: run once per trip)
            self.bodies[node] = loop.bodies
            self.scratch_bytes += loop.bytes
            self.sources += loop.sources()
            self.on_host += loop.on_host()
        self.source = "\n\n".join(f"// {what}\n{src}" for what, src in self.sources)

    # -- set-up ----------------------------------------------------------------------------
    def _on_device(self, node: Node) -> bool:
        """Is ``node`` computed by a device kernel (not a host step or its result)?"""
        producer = node.inputs[0] if node.role is Role.OUTPUT else node
        return producer not in self._host_nodes

    def _alloc(self, nbytes_: int):
        return self._cl.Buffer(self.device.context, self._cl.mem_flags.READ_WRITE,
                               max(int(nbytes_), 1))

    def _render(self) -> None:
        plan, order = self.plan, self.graph.nodes
        for node in order:  # every value the device holds gets its buffer
            kind = plan.storage.get(node)
            if node.role is Role.CONSTANT:
                self._buffer_of[node] = self._upload(np.asarray(node.value, order="C"))
            elif node.role is Role.VARIABLE or (node.role is Role.PLACEHOLDER and
                                                not self._shared):
                self._buffer_of[node] = self._alloc(nbytes(node))
            elif kind == BUFFER:
                self._buffer_of[node] = self._buffers[plan.buffer_of[node]]
            elif kind == FRESH and node.role is not Role.ASSIGN and None not in node.shape \
                    and node not in self._fetched:  # (a fetched one: over its host array)
                self._buffer_of[node] = self._alloc(nbytes(node))
        for a in self.assigns:
            variable = a.inputs[0]
            self._spares[variable] = [self._buffer_of[variable], self._alloc(nbytes(variable))]
        for node in order:
            if node.role is Role.OP and node not in self._host_nodes:
                self._render_op(node)
            elif node.role is Role.FUSED and node not in self._host_nodes:
                self._render_fused(node)
            elif node.role is Role.CONTROL:
                self._loops[node] = HostLoop(node, self.graph, self.device, plan.reuse)
                self._steps.append(node)
            elif node.role in (Role.OP, Role.FUSED):
                self._steps.append(node)
            elif node.role is Role.ASSIGN:
                self._render_assign(node)
        self.kernels_per_run = sum(isinstance(s, _Step) for s in self._steps)

    def _upload(self, array: np.ndarray):
        mf = self._cl.mem_flags
        if array.nbytes == 0:
            return self._alloc(1)
        return self._cl.Buffer(self.device.context, mf.READ_WRITE | mf.COPY_HOST_PTR,
                               hostbuf=array)

    def _launch(self, launch: Launch, args: list, what: str, category: str) -> None:
        if not all(_sizes(launch.global_size)):
            return  # nothing to compute: an empty value
        source = f"{self._prelude}\n{launch.source}"
        kernel = self._cl.Kernel(self.device.build(source), "k")  # (its own: args are state)
        self.sources.append((what, launch.source))
        self._steps.append(_Step(kernel, _sizes(launch.global_size), _sizes(launch.local_size),
                                 args, category))

    def _scratch(self, rendered: Rendered) -> dict[str, object]:
        self.scratch_bytes += sum(rendered.scratch.values())
        return {name: self._alloc(n) for name, n in rendered.scratch.items()}

    def _render_fused(self, node: Node) -> None:
        kernel = node.fused
        outputs = sorted((n for n in self.graph.nodes
                          if n.role is Role.OUTPUT and n.inputs[0] is node),
                         key=lambda n: n.params["index"])
        rendered = self._render_kernel(kernel, node.inputs)
        self._launch_all(rendered, list(node.inputs), outputs, f"{kernel.name}: "
                         f"{kernel.describe()}", "reduction" if kernel.reduces else "elementwise")

    def _render_kernel(self, kernel: FusedKernel, inputs: Sequence[Node]) -> Rendered:
        constants = {k: x.value for k, x in enumerate(inputs)
                     if x.role is Role.CONSTANT and np.size(x.value) == 1}
        return render_fused(kernel, self.device.compute_units, self.device.max_group,
                            self.device.kind == "cpu", constants)

    def _launch_all(self, rendered: Rendered, inputs: list[Node], outputs: list[Node],
                    what: str, category: str) -> None:
        scratch = self._scratch(rendered)
        for launch in rendered.launches:
            args = []
            for a in launch.args:
                kind, _, name = a.partition(" ")
                args.append(inputs[int(name)] if kind == "in" else
                            outputs[int(name)] if kind == "out" else scratch[name])
            self._launch(launch, args, what, category)

    def _render_op(self, node: Node) -> None:
        how = OPENCL[node.prim].how
        what = f"{node.name} = {node.op}  [{node.location}]"
        inputs = list(node.inputs)
        x = inputs[0] if inputs else None
        if how is How.EXPR:
            rendered = self._render_kernel(kernel_of(node), inputs)
            self._launch_all(rendered, inputs, [node], what, "elementwise")
        elif how is How.REDUCE:
            launch = reduction_launch(x.shape, node.params["axes"], node.prim, x.dtype,
                                      node.dtype, self.device.compute_units)
            self._launch_one(launch, inputs, node, what, "reduction")
        elif how is How.MATMUL:  # a folded transpose: its input, read with two axes swapped
            a, b = inputs
            launch = matmul_launch(a.shape, b.shape, node.shape, a.dtype, b.dtype, node.dtype,
                                   a in self._folded, b in self._folded)
            self._launch_one(launch, inputs, node, what, "matmul")
        elif node in self._folded:
            pass  # the matmuls that read it read its input
        elif how is How.SUM_TO:
            kept, lead = sum_to_axes(x.shape, inputs[1].shape)
            launch = reduction_launch(x.shape, tuple(range(lead)) + kept, P.sum, x.dtype,
                                      node.dtype, self.device.compute_units)
            self._launch_one(launch, inputs, node, what, "reduction")
        elif how is How.INDEX_MAP:
            start, strides = index_map(node)
            launch = strided_copy_launch(node.shape, x.dtype, start, strides, 0,
                                         contiguous_strides(node.shape))
            self._launch_one(launch, inputs, node, what, "movement")
        elif how is How.CONCAT:
            axis, at = node.params["axis"] % node.ndim, 0
            out_strides = contiguous_strides(node.shape)
            for part in inputs:
                if size(part.shape):
                    launch = strided_copy_launch(part.shape, part.dtype, 0,
                                                 contiguous_strides(part.shape),
                                                 at * out_strides[axis], out_strides,
                                                 node.dtype)
                    self._launch_one(launch, [part], node, what, "movement")
                at += part.shape[axis]
        elif how is How.IM2COL:
            launch = im2col_launch(x.shape, node.params["windows"], node.params["pad_value"],
                                   node.dtype)
            self._launch_one(launch, inputs, node, what, "movement")
        elif how is How.COL2IM:
            launch = col2im_launch(x.shape, node.params["windows"], node.params["size"],
                                   node.dtype)
            self._launch_one(launch, inputs, node, what, "movement")
        # (How.VIEW: no kernel; launches read the buffer of the value it views)

    def _launch_one(self, launch: Launch, inputs: list[Node], output: Node, what: str,
                    category: str) -> None:
        self._launch_all(Rendered([launch]), inputs, [output], what, category)

    def _render_assign(self, node: Node) -> None:
        variable, value = node.inputs
        check_assigned_shape(variable, value.shape, node.location, RunError)
        if self._assigned_on_host(node):
            return  # the host checks and converts the value when the run ends
        if self.plan.storage[node] == VIEW:
            return  # the value is computed straight into the variable's spare buffer
        launch = strided_copy_launch(value.shape, value.dtype, 0,
                                     contiguous_strides(value.shape), 0,
                                     contiguous_strides(value.shape), node.dtype)
        self._launch_one(launch, [value], node, f"{node.name} = assign [{node.location}]",
                         "movement")

    # -- running ---------------------------------------------------------------------------
    def run(self, feeds: Sequence[np.ndarray], variables: Sequence,
            timings: dict[str, float] | None = None):
        """``timings``: add each kind of step's seconds to it (``profile``), finishing the
        queue after every step."""
        cl, queue = self._cl, self.device.queue
        clock = _Clock(queue, timings)
        buffer_of = dict(self._buffer_of)
        host: dict[Node, np.ndarray] = {}
        keep = []  # arrays a copy in progress reads
        mf = cl.mem_flags
        for node, array in zip(self.placeholders, feeds):
            array = np.asarray(array, order="C")
            host[node] = array
            if not array.nbytes:
                buffer_of[node] = self._empty
            elif self._shared:
                buffer_of[node] = cl.Buffer(self.device.context, mf.READ_ONLY | mf.USE_HOST_PTR,
                                            hostbuf=array)
            else:
                cl.enqueue_copy(queue, buffer_of[node], array, is_blocking=False)
                keep.append(array)
        fetched = {node: recycler() for node, recycler in self._fetched.items()}
        for node, array in fetched.items():
            buffer_of[node] = self._over(node, array)
        new_buffers: dict[Node, object] = {}
        for node, value in zip(self.variables, variables):
            buffer_of[node] = self._variable_buffer(node, value, keep)
            spares = self._spares.get(node)
            if spares is not None:
                spare = next(b for b in spares if b is not buffer_of[node])
                issued = self._issued.pop(id(spare), None)
                if issued is not None and sys.getrefcount(issued) > 2:
                    issued.detach()  # someone still holds the value that buffer has
                if spare is spares[0]:
                    self._uploaded.pop(node, None)
                new_buffers[node] = spare
        for a in self.assigns:
            buffer_of[a] = new_buffers[a.inputs[0]]
            if self.plan.storage[a] == VIEW and not self._assigned_on_host(a):
                buffer_of[a.inputs[1]] = buffer_of[a]
        clock.lap("transfers")
        for step in self._steps:
            if isinstance(step, _Step):
                step.kernel(queue, step.global_size, step.local_size,
                            *[buffer_of[self._base(a)] if isinstance(a, Node) else a
                              for a in step.args])
                clock.lap(step.category)
            else:
                self._run_on_host(step, host, buffer_of, keep, timings)
                clock.lap("matmul" if step.prim is P.matmul else
                          "control" if step.role is Role.CONTROL else "host")
        # The device's writes made visible in the arrays: every map enqueued, then one wait
        # (a wait costs PoCL 50-100 us; a loop body's trip fetches several small values).
        maps = [cl.enqueue_map_buffer(queue, buffer_of[node], cl.map_flags.READ, 0,
                                      array.shape, array.dtype, is_blocking=False)[0]
                for node, array in fetched.items() if array.nbytes]
        if maps:
            queue.finish()
        for mapped in maps:
            mapped.base.release(queue)
        host.update(fetched)
        outputs = [self._host_value(o, host, buffer_of) for o in self.graph.outputs]
        updates = [self._update(a, host, buffer_of) for a in self.assigns]
        queue.finish()
        clock.lap("transfers")
        del keep
        return outputs, updates

    def _over(self, node: Node, array: np.ndarray):
        """The buffer over ``array`` (the same as last run while the recycler hands out the
        same array)."""
        last = self._over_host.get(node)
        if last is not None and last[0]() is array:
            return last[1]
        mf = self._cl.mem_flags
        buffer = self._cl.Buffer(self.device.context, mf.READ_WRITE | mf.USE_HOST_PTR,
                                 hostbuf=array) if array.nbytes else self._empty
        self._over_host[node] = (weakref.ref(array), buffer)
        return buffer

    def _base(self, node: Node) -> Node:
        return self.plan.base_of.get(node, node)

    def _variable_buffer(self, node: Node, value, keep: list):
        if isinstance(value, DeviceArray) and value.buffer is not None and \
                value.device.context == self.device.context:
            return value.buffer
        array = np.asarray(value, node.dtype, order="C")
        buffer = self._buffer_of[node]
        if self._uploaded.get(node) is not value and array.nbytes:
            self._cl.enqueue_copy(self.device.queue, buffer, array, is_blocking=False)
            keep.append(array)
            self._uploaded[node] = value
        return buffer

    def _host_value(self, node: Node, host: dict, buffer_of: dict) -> np.ndarray | None:
        if node.role is Role.GROUP:
            return None
        if node in host:
            return host[node]
        if node.role is Role.OUTPUT and node.inputs[0] in host:
            return host[node.inputs[0]][node.params["index"]]
        base = self._base(node)
        if base is not node and base in host:  # a reshape of a value the host computed
            value = np.asarray(host[base]).reshape(node.shape)
        else:
            value = np.empty(node.shape, node.dtype)
            if value.nbytes:
                self._cl.enqueue_copy(self.device.queue, value, buffer_of[base])
        host[node] = value
        return value

    def _operand(self, node: Node, host: dict, buffer_of: dict, maps: list) -> np.ndarray:
        """An operand of a host step. A device that shares the host's memory maps the
        buffer instead of copying it (released after the step; the step waits for every
        map at once)."""
        if node in self._deferred:  # a view of operands mapped for this very step
            return run_kernel(node, [self._operand(x, host, buffer_of, maps)
                                     for x in node.inputs])
        base = self._base(node)
        if not self._shared or node.role is Role.GROUP or node in host or base in host or \
                (node.role is Role.OUTPUT and node.inputs[0] in host) or not nbytes(node):
            return self._host_value(node, host, buffer_of)
        array, _ = self._cl.enqueue_map_buffer(self.device.queue, buffer_of[base],
                                               self._cl.map_flags.READ, 0, node.shape,
                                               node.dtype, is_blocking=False)
        maps.append(array)
        return array

    def _run_on_host(self, node: Node, host: dict, buffer_of: dict, keep: list,
                     timings: dict[str, float] | None) -> None:
        """Run ``node`` on the host; its results are copied to the device without waiting
        (``keep`` holds them until the run ends): a wait costs PoCL 50-100 us, per host step
        and per trip of a loop."""
        if node in self._deferred:
            return  # computed by each host step that reads it
        maps: list[np.ndarray] = []
        arrays = [self._operand(x, host, buffer_of, maps) for x in node.inputs]
        if maps:
            self.device.queue.finish()
        try:
            if node.role is Role.FUSED:
                value = node.fused.kernel(*arrays)
            elif node.role is Role.CONTROL:
                value = self._loops[node](arrays, timings)
            else:
                value = run_kernel(node, arrays)
            if any(np.may_share_memory(v, m) for v in _leaves(value) for m in maps):
                value = _copied(value)  # a view of a mapping outlives it
        finally:
            for m in maps:
                m.base.release(self.device.queue)
        host[node] = value
        results = [(node, value)] if node.role is Role.OP else \
            [(o, value[o.params["index"]]) for o in self.graph.nodes
             if o.role is Role.OUTPUT and o.inputs[0] is node]
        for target, array in results:
            buffer = buffer_of.get(target)
            host[target] = array
            if buffer is not None and None not in target.shape and np.size(array):
                keep.append(np.asarray(array, target.dtype, order="C"))
                self._cl.enqueue_copy(self.device.queue, buffer, keep[-1], is_blocking=False)

    def _assigned_on_host(self, assign: Node) -> bool:
        value = assign.inputs[1]
        return value in self._host_nodes or None in value.shape

    def _update(self, assign: Node, host: dict, buffer_of: dict):
        variable, value = assign.inputs
        if self._assigned_on_host(assign):
            array = np.asarray(self._host_value(value, host, buffer_of))
            check_assigned_shape(variable, array.shape, assign.location, RunError)
            return array.astype(variable.dtype, copy=True)
        buffer = buffer_of[assign]
        issued = DeviceArray(buffer, variable.shape, variable.dtype, self.device)
        self._issued[id(buffer)] = issued
        return issued


def _leaves(value) -> list[np.ndarray]:
    """The arrays of a host step's value: one, a fused kernel's tuple, or control flow's list
    (None for a result nothing reads)."""
    return [v for v in value if v is not None] if isinstance(value, (tuple, list)) else [value]


def _copied(value):
    if isinstance(value, (tuple, list)):
        return type(value)(None if v is None else np.array(v) for v in value)
    return np.array(value)


class _Clock:
    """Seconds per kind of step, when asked for (a queue finished at every lap)."""

    def __init__(self, queue, timings: dict[str, float] | None) -> None:
        self.queue, self.timings = queue, timings
        self.last = time.perf_counter()
        self.counted = sum(timings.values()) if timings is not None else 0.0

    def lap(self, category: str) -> None:
        """Add the time since the last lap to ``category``, less what a loop's bodies added
        to ``timings`` themselves meanwhile (their own clocks' laps)."""
        if self.timings is None:
            return
        self.queue.finish()
        now = time.perf_counter()
        nested = sum(self.timings.values()) - self.counted
        self.timings[category] = self.timings.get(category, 0.0) + now - self.last - nested
        self.counted, self.last = sum(self.timings.values()), now


def _sizes(sizes: int | tuple[int, ...]) -> tuple[int, ...]:
    return sizes if isinstance(sizes, tuple) else (sizes,)
