"""From a user's graph and fetches to something that runs: specialise to the fed shapes, run
the passes, plan memory, render the schedule for a runtime; and say what was done."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np

from .graph import Node, Role
from .passes import optimize, specialize
from .passes.bucketing import describe_buckets
from .passes.collectives import order_collectives
from .passes.decompose import decompose
from .passes.memory import check_plan, format_bytes, no_reuse_bytes, plan_memory
from .runtime.interpreter import Executable, InterpretedExecutable
from .runtime.numpy import NumpyExecutable
from .runtime.numpy_table import NumpyAliasing

BACKENDS = ("numpy", "interpreter", "opencl")


def _owned(outputs: list, fed: list[np.ndarray]) -> list:
    """Each result the caller's own: a copy where it would share memory with a feed or an
    earlier result (simplify makes ``x * 1`` the feed x, CSE makes two equal fetches one
    value); writing into one never changes another, or the feeds."""
    owned: list = []
    for out in outputs:
        if isinstance(out, np.ndarray) and any(np.may_share_memory(out, other)
                                               for other in [*fed, *owned]):
            out = out.copy()
        owned.append(out)
    return owned


class Compiled:
    """One (fetches, fed shapes) signature, compiled. ``run`` takes the user's feeds and
    Variable values and returns the fetched values and the Variables' new values."""

    def __init__(self, fetches: Sequence[Node], feed_shapes: Mapping[Node, tuple[int, ...]],
                 passes: Sequence[str], backend: str = "numpy", debug: bool = False,
                 device: str | int | None = None) -> None:
        self.passes = tuple(passes)  # checked by the Session
        self.specialized = specialize(fetches, feed_shapes)
        self.graph, self.report = optimize(self.specialized, self.passes, debug)
        self.graph = order_collectives(self.graph)  # (MPI matches them by order)
        self.backend = backend
        # The interpreter runs the same numpy kernels: the plan it reports is numpy's.
        aliasing = NumpyAliasing
        if backend == "opencl":
            from .runtime import opencl  # (pyopencl only where it is used)
            self.device = opencl.get_device(device)
            opencl.check_dtypes(self.graph, self.device)
            self.placement = opencl.place(self.graph, self.device)
            aliasing = opencl.OpenCLAliasing(self.placement)
        self.memory = plan_memory(self.graph, aliasing, reuse="plan_memory" in self.passes)
        if debug:
            check_plan(self.graph, self.memory)
        self.executable = self._new_executable()
        # An executable owns its buffers: each thread that runs this plan gets its own, so
        # serving code may call one compiled function from a thread pool.
        self._per_thread = threading.local()
        self._per_thread.executable = self.executable
        ex = self.executable
        self._feed_order = [p.origin for p in ex.placeholders]
        self._variable_order = [v.origin for v in ex.variables]
        self.assigned = [a.inputs[0].origin for a in ex.assigns]

    def _new_executable(self) -> Executable:
        if self.backend == "numpy":
            return NumpyExecutable(self.graph, self.memory)
        if self.backend == "opencl":
            from .runtime.opencl import OpenCLExecutable
            return OpenCLExecutable(self.graph, self.memory, self.device, self.placement)
        return InterpretedExecutable(self.graph)

    def _executable(self) -> Executable:
        executable = getattr(self._per_thread, "executable", None)
        if executable is None:
            executable = self._per_thread.executable = self._new_executable()
        return executable

    def run(self, feeds: Mapping[Node, np.ndarray], variables: Mapping[Node, np.ndarray]):
        fed = [feeds[n] for n in self._feed_order]
        outputs, updates = self._executable().run(
            fed, [variables[v] for v in self._variable_order])
        return _owned(outputs, fed), dict(zip(self.assigned, updates))

    def profile(self, feeds: Mapping[Node, np.ndarray],
                variables: Mapping[Node, np.ndarray]) -> dict[str, float]:
        """Seconds of one run by kind of step (OpenCL: matmul, elementwise, reduction,
        movement, host, transfers, and control: a loop's own host time, its bodies' kernels
        counted by their kinds), the device finishing each step before the next."""
        if self.backend != "opencl":
            raise ValueError(f"profile is for backend='opencl', not {self.backend!r}")
        timings: dict[str, float] = {}
        self._executable().run([feeds[n] for n in self._feed_order],
                               [variables[v] for v in self._variable_order], timings)
        return timings

    @property
    def planned_peak_bytes(self) -> int:
        """The memory plan's peak plus the fused kernels' scratch and control-flow bodies'
        memory."""
        return self.memory.peak_bytes + getattr(self.executable, "scratch_bytes", 0)

    @property
    def no_reuse_bytes(self) -> int:
        """Every value of the graph as built, composites decomposed, in its own allocation."""
        return no_reuse_bytes(decompose(self.specialized), NumpyAliasing)

    @property
    def fused_kernels(self) -> list[Node]:
        return [n for n in self.graph.nodes if n.role is Role.FUSED]

    def explain(self) -> str:
        """Pass by pass: node counts, the fused kernels and what is in them, the gradient
        buckets (where each all-reduce starts and waits), the memory plan; each control-flow
        body's own, nested under its node."""
        lines = ["passes: " + " -> ".join(f"{name} {count}" for name, count in self.report.nodes)]
        lines += describe_buckets(self.graph)
        lines += _schedule(self.graph, self.executable, self.memory, "run")
        scratch = getattr(self.executable, "scratch_bytes", 0)
        lines.append(f"  fused kernels' scratch and bodies' memory: {format_bytes(scratch)}; "
                     f"planned peak "
                     f"{format_bytes(self.planned_peak_bytes)} vs "
                     f"{format_bytes(self.no_reuse_bytes)} with every value of the graph as "
                     "built in its own allocation")
        if self.backend == "opencl":
            ex = self.executable
            lines.append(f"OpenCL on {self.device.name}: {ex.kernels_per_run} launches")
            if ex.on_host:
                lines.append("  on the host: " + "; ".join(ex.on_host))
            lines.append("OpenCL C:\n" + ex.source)
        return "\n".join(lines)


def _schedule(graph, executable: Executable, memory, per: str, indent: str = "") -> list[str]:
    """The kernels, fused kernels, memory plan and control-flow bodies of one program."""
    fused = [n for n in graph.nodes if n.role is Role.FUSED]
    lines = [f"{indent}kernels per {per}: {executable.kernels_per_run} ({len(fused)} fused)"]
    for node in fused:
        k = node.fused
        kind = "reduce" if k.reduces else "elementwise"
        lines.append(f"{indent}  {k.name} [{kind}, {k.rows} rows]: {k.describe()}"
                     f"  -> {', '.join(k.output_names())}")
    for node in graph.nodes:
        if node.role is not Role.CONTROL:
            continue
        lines.append(f"{indent}  {node.op} {node.name!r} (built at {node.location}):")
        compiled = getattr(executable, "bodies", {}).get(node, [None] * len(node.control.bodies))
        for name, body, ex in zip(node.control.body_names, node.control.bodies, compiled):
            lines.append(f"{indent}    {name}: {len(body.program)} nodes")
            if ex is not None:
                lines += _schedule(body.program, ex.executable, ex.plan, "call",
                                   indent + "      ")
    lines.append(f"{indent}memory: " + memory.describe())
    if memory.in_place:
        lines.append(f"{indent}  in place: " + ", ".join(f"{a} over {b}"
                                                         for a, b in memory.in_place))
    return lines
