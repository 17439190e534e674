"""Control flow on an OpenCL device: the bodies as its kernels, the loop on the host.

A CONTROL node is a host step (see ``placement``): the host runs ``node.control.run``, the
loop semantics every runtime shares, and each body is compiled once into an OpenCL
executable of its own (its own placement, a memory plan over this device's aliasing, its
kernels, a nested loop of its own), which each trip calls on host arrays.

Loop variables thus cross between host and device at every trip. Where the device shares the
host's memory (PoCL on a CPU) that costs no copy: a body's feed is a buffer over the array
(``USE_HOST_PTR``) and its result is written straight into an array the body's executable
recycles (two per result, in turn). On a device with memory of its own it is a copy each
way per trip; keeping the carried values in device buffers between trips is the next step
(docs/opencl.md)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ...graph import Node
from ...control.body import Body
from ...passes.memory import plan_memory
from ...program import Program
from ..interpreter import RunError, wanted_outputs
from .device import Device
from .placement import OpenCLAliasing, place


class CompiledBody:
    """A body as its own OpenCL executable (made once: its buffers and kernels serve every
    trip); calling it runs that executable on the trip's arguments."""

    def __init__(self, body: Body, name: str, device: Device, reuse: bool) -> None:
        from .executable import OpenCLExecutable  # (which renders CONTROL nodes with this)
        self.name = name
        placement = place(body.program, device)
        self.plan = plan_memory(body.program, OpenCLAliasing(placement), reuse=reuse)
        self.executable = OpenCLExecutable(body.program, self.plan, device, placement)
        self._order = body.feed_order(self.executable.placeholders)

    def __call__(self, args: list, timings: dict[str, float] | None) -> list:
        return self.executable.run([args[i] for i in self._order], (), timings)[0]


class HostLoop:
    """A CONTROL node's step: ``control.run`` on the host, each body call one run of that
    body's executable. ``timings`` (``profile``) gather the bodies' steps too."""

    def __init__(self, node: Node, graph: Program, device: Device, reuse: bool) -> None:
        self.node = node
        control = node.control
        self.bodies = [CompiledBody(b, f"{node.name}'s {name}", device, reuse)
                       for name, b in zip(control.body_names, control.bodies)]
        self.wanted = wanted_outputs(node, graph.nodes)

    def __call__(self, args: list, timings: dict[str, float] | None) -> list:
        bodies = self.bodies

        def call(index: int, body_args: list) -> list:
            return bodies[index](body_args, timings)

        node = self.node
        try:
            return node.control.run(args, call, self.wanted)
        except RunError:  # a body's step failed: it names its node and line already
            raise
        except Exception as exc:
            shapes = ", ".join(str(np.shape(a)) for a in args)
            raise RunError(f"{node.op} node {node.name!r} (built at {node.location}) failed at "
                           f"run time on inputs of shapes {shapes}: {type(exc).__name__}: "
                           f"{exc}") from None

    @property
    def bytes(self) -> int:
        """The bodies' device memory (kept as long as this step: every trip reuses it)."""
        return sum(b.plan.peak_bytes + b.executable.scratch_bytes for b in self.bodies)

    def sources(self) -> Iterator[tuple[str, str]]:
        """(what it computes, OpenCL C) of every body's kernels, nested ones included."""
        for body in self.bodies:
            for what, source in body.executable.sources:
                yield f"{body.name}: {what}", source

    def on_host(self) -> Iterator[str]:
        """What the bodies run on the host, and why."""
        for body in self.bodies:
            for line in body.executable.on_host:
                yield f"{body.name}: {line}"

