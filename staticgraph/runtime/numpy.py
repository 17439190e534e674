"""The compiled numpy runtime: a schedule rendered as one straight-line Python function over
preallocated buffers (no graph walking at run time); each fused kernel is a loop over
chunks of rows (see ``fused``). ``executable.source`` is the generated code, one line per
kernel with the node's name and the user's line it came from."""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..graph import Node, Role, check_assigned_shape
from ..control.body import Body
from ..passes.memory import BUFFER, FRESH, VIEW, MemoryPlan, plan_memory
from ..program import Program
from .fused import render_fused
from .interpreter import Executable, RunError
from .numpy_table import NUMPY, NumpyAliasing

_ids = itertools.count()


class Recycler:
    """Arrays a run hands out (fetched values) are new every run, since the caller may keep
    them. One the caller has already dropped, though, can be handed out again: CPython's
    reference count says so exactly. This saves the page faults of mapping fresh memory for
    large outputs (16 MB of layer_norm output costs more to map than to compute). It keeps
    two: a loop body's result is the next trip's argument, so its trips alternate between
    them (ping-pong), allocating nothing after the second."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype, self.arrays = shape, dtype, []

    def __call__(self) -> np.ndarray:
        # references: self.arrays, `array`, the argument of getrefcount; anything more is
        # someone's. A read-only array was a Variable's value, frozen by its session: never
        # again ours.
        for array in self.arrays:
            if sys.getrefcount(array) <= 3 and array.flags.writeable:
                return array
        array = np.empty(self.shape, self.dtype)
        self.arrays = [*self.arrays[-1:], array]
        return array


def _fix(array: Any, dtype: np.dtype) -> np.ndarray:
    """A kernel that allocates may return a numpy scalar or another dtype."""
    array = np.asarray(array)
    return array if array.dtype == dtype else array.astype(dtype)


class NumpyExecutable(Executable):
    """The schedule as generated Python over the memory plan's buffers; each primitive runs
    as the numpy table says (``into`` a buffer, a view, or its allocating kernel)."""

    def __init__(self, graph: Program, plan: MemoryPlan) -> None:
        super().__init__(graph)
        self.plan = plan
        self.fused_sources: dict[str, str] = {}
        self.bodies: dict[Node, list[CompiledBody]] = {}  # each CONTROL node's, compiled
        self.scratch_bytes = 0
        self._namespace: dict[str, Any] = {"np": np, "_fix": _fix}
        self._buffers = [np.empty(size, np.uint8) for size in plan.buffer_bytes]
        self._filename = f"<staticgraph-{next(_ids)}>"
        self._lines: list[str] = ["def run(feeds, variables):"]
        self._node_at: dict[int, Node] = {}
        self._names: dict[Node, str] = {}
        self._render()
        self.source = "\n".join(self._lines) + "\n"
        exec(compile(self.source, self._filename, "exec"), self._namespace)
        self._run = self._namespace["run"]

    def run(self, feeds: Sequence[np.ndarray], variables: Sequence[np.ndarray]):
        try:
            with np.errstate(all="ignore"):  # inf and nan as torch gives them, no warnings
                return self._run(feeds, variables)
        except Exception as exc:
            raise self.run_error(exc) from None

    def run_error(self, exc: Exception) -> Exception:
        """What to raise for ``exc`` raised by the generated code: which node failed."""
        node = self._failing_node(sys.exc_info()[2])
        if node is None or isinstance(exc, RunError):  # (a body's node, named already)
            return exc
        return RunError(f"{node.op} node {node.name!r} (built at {node.location}) failed at "
                        f"run time: {type(exc).__name__}: {exc}")

    def _failing_node(self, tb) -> Node | None:
        node = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self._filename:
                node = self._node_at.get(tb.tb_lineno, node)
            tb = tb.tb_next
        return node

    # -- rendering ---------------------------------------------------------------------------
    def _emit(self, line: str, node: Node | None = None) -> None:
        self._lines.append("    " + line)
        if node is not None:
            self._node_at[len(self._lines)] = node

    def _bind(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{len(self._namespace)}"
        self._namespace[name] = value
        return name

    def _kernel(self, function, params: dict) -> str:
        return self._bind("k", functools.partial(function, **params) if params else function)

    def _local(self, node: Node) -> str:
        self._names[node] = f"v{len(self._names)}"
        return self._names[node]

    def _render(self) -> None:
        names, plan = self._names, self.plan
        order = self.graph.nodes
        dying: dict[int, list[Node]] = {}
        for n in order:  # locals to `del` after their last use, so fresh arrays are freed
            if plan.storage[n] in (FRESH, VIEW) and n.role is not Role.ASSIGN:
                dying.setdefault(plan.last_use[n], []).append(n)
        fed = {n: k for k, n in enumerate(self.placeholders)}  # (nodes compare elementwise:
        held = {n: k for k, n in enumerate(self.variables)}    # dicts, not list.index)
        fetched = set(self.graph.outputs)
        for i, node in enumerate(order):
            role = node.role
            if role is Role.OP:
                self._render_primitive(node)
            elif role is Role.PLACEHOLDER:
                names[node] = f"feeds[{fed[node]}]"
            elif role is Role.VARIABLE:
                names[node] = f"variables[{held[node]}]"
            elif role is Role.CONSTANT:
                names[node] = self._bind("c", node.value)
            elif role is Role.GROUP:
                names[node] = "None"
            elif role is Role.ASSIGN:
                self._render_assign(node)
            elif role is Role.FUSED:
                self._render_fused(node)  # (its OUTPUT nodes are named there)
            elif role is Role.CONTROL:
                self._render_control(node)  # (its OUTPUT nodes are named there)
            dead = [names[n] for n in dying.get(i, ()) if n not in fetched]
            if dead:
                self._emit(f"del {', '.join(dead)}")
        outputs = ", ".join(names[o] for o in self.graph.outputs)
        updates = ", ".join(names[a] for a in self.assigns)
        self._emit(f"return [{outputs}], [{updates}]")

    def _target(self, node: Node) -> str:
        """Where a kernel writes ``node``: its planned buffer, or an array new each run."""
        if self.plan.storage[node] == BUFFER:
            raw = self._buffers[self.plan.buffer_of[node]]
            size = int(np.prod(node.shape, dtype=np.int64)) * node.dtype.itemsize
            self._names[node] = self._bind("b", raw[:size].view(node.dtype).reshape(node.shape))
            return self._names[node]
        taken = self.plan.takes_over.get(node)
        name = self._local(node)
        if taken is not None:  # in place over a fresh input that dies here
            self._emit(f"{name} = {self._names[taken]}", node)
            return name
        self._emit(f"{name} = {self._bind('a', Recycler(node.shape, node.dtype))}()", node)
        return name

    def _render_assign(self, node: Node) -> None:
        value = node.inputs[1]
        check_assigned_shape(node.inputs[0], value.shape, node.location, RunError)
        if self.plan.storage[node] == VIEW:  # the value was computed fresh for it
            self._names[node] = self._names[value]
            return
        name = self._local(node)
        self._emit(f"{name} = np.array({self._names[value]}, "
                   f"dtype={self._bind('d', node.dtype)})  # {node.name}", node)

    def _render_primitive(self, node: Node) -> None:
        storage = self.plan.storage[node]
        args = ", ".join(self._names[x] for x in node.inputs)
        comment = f"  # {node.name} = {node.op}  [{node.location}]"
        if storage == VIEW:
            call = f"{self._kernel(node.prim.kernel, node.params)}({args})"
            self._emit(f"{self._local(node)} = {call}{comment}", node)
            return
        self.kernels_per_run += 1
        into = NUMPY[node.prim].into_for([x.dtype for x in node.inputs], node.dtype)
        if into is not None and None not in node.shape:
            out = self._target(node)
            self._emit(f"{self._kernel(into, node.params)}({args}, out={out})"
                       f"{comment}", node)
        else:
            call = f"{self._kernel(node.prim.kernel, node.params)}({args})"
            self._emit(f"{self._local(node)} = _fix({call}, {self._bind('d', node.dtype)})"
                       f"{comment}", node)

    def _render_fused(self, node: Node) -> None:
        kernel = node.fused
        outputs = sorted((n for n in self.graph.nodes
                          if n.role is Role.OUTPUT and n.inputs[0] is node),
                         key=lambda n: n.params["index"])
        targets = [self._target(o) for o in outputs]
        name = f"fused_{len(self.fused_sources)}"
        source, namespace, scratch = render_fused(kernel, name)
        exec(compile(source, f"{self._filename}/{kernel.name}", "exec"), namespace)
        function = self._bind("f", namespace[name])
        self.fused_sources[kernel.name] = source
        self.scratch_bytes += scratch
        self.kernels_per_run += 1
        args = ", ".join([self._names[x] for x in node.inputs] + targets)
        self._emit(f"{function}({args})  # {kernel.name}: {kernel.describe()}", node)

    def _render_control(self, node: Node) -> None:
        control = node.control
        bodies = self.bodies[node] = [CompiledBody(b, self.plan.reuse) for b in control.bodies]
        # a body's buffers live as long as this executable: count them with the scratch
        self.scratch_bytes += sum(b.plan.peak_bytes + b.executable.scratch_bytes
                                  for b in bodies)
        outputs = sorted((n for n in self.graph.nodes
                          if n.role is Role.OUTPUT and n.inputs[0] is node),
                         key=lambda n: n.params["index"])
        run = self._bind("control", functools.partial(
            control.run, call=_call_of(bodies), wanted={o.params["index"] for o in outputs}))
        self.kernels_per_run += 1
        args = ", ".join(self._names[x] for x in node.inputs)
        results = self._local(node)
        self._emit(f"{results} = {run}([{args}])  # {node.name} = {node.op}  "
                   f"[{node.location}]", node)
        for o in outputs:
            self._emit(f"{self._local(o)} = {results}[{o.params['index']}]")
        self._emit(f"del {results}")


def _call_of(bodies: list[CompiledBody]):
    return lambda index, args: bodies[index](args)


class CompiledBody:
    """A control-flow body as generated code over its own memory plan (made once: its
    buffers serve every trip); calling it is one call of that code."""

    def __init__(self, body: Body, reuse: bool) -> None:
        self.body = body
        self.plan = plan_memory(body.program, NumpyAliasing, reuse=reuse)
        self.executable = NumpyExecutable(body.program, self.plan)
        self._order = body.feed_order(self.executable.placeholders)
        self._run = self.executable._run

    def __call__(self, args: list) -> list:
        try:
            return self._run([args[i] for i in self._order], ())[0]
        except Exception as exc:
            raise self.executable.run_error(exc) from None
