"""What the compiler's passes work on: a Program (a graph that declares the values its run
must produce, as a jaxpr declares its outvars) and the fused kernels that fusion puts in it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .graph import Graph, Node
from .ops import Primitive
from .ops.shapes import Shape


def origin_of(node: Node) -> Node:
    """The user's node that ``node`` stands for (compiled graphs are copies)."""
    return node.origin if node.origin is not None else node


class Program(Graph):
    """A graph specialised to one run: ``outputs`` are the values the run returns (fetches,
    in order); passes build new Programs with ``add`` / ``unique_name``."""

    def __init__(self, outputs: Sequence[Node] = ()) -> None:
        super().__init__()
        self.outputs: list[Node] = list(outputs)


@dataclass(frozen=True)
class Member:
    """One op of a fused kernel. ``args`` are ("in", k) for the kernel's k-th input or
    ("m", j) for the j-th member's value."""

    prim: Primitive
    args: tuple[tuple[str, int], ...]
    params: dict
    shape: Shape
    dtype: np.dtype
    name: str

    @property
    def reduces_rows(self) -> bool:
        """A sink: it reduces over the rows, so it is complete only after the last chunk."""
        return self.prim.reduction is not None and 0 in self.params["axes"]

    def reads_rows(self, shape: Shape, rows: int) -> bool:
        """Does an operand of ``shape`` line up with this member's rows (a chunk of rows reads
        the same rows of it), or is it read whole (it has no rows of its own)?"""
        if self.prim.reduction is not None:
            return len(shape) >= 1 and shape[0] == rows
        return len(shape) == len(self.shape) and shape[0] == rows


@dataclass(eq=False)
class FusedKernel:
    """A fused group: its members in order, the shapes and dtypes of its inputs, which
    members leave the kernel (the FUSED node's OUTPUT nodes, in order), and N, the rows every
    member shares. A runtime renders it from its members' primitives."""

    members: list[Member]
    input_shapes: list[Shape]
    input_dtypes: list[np.dtype]
    outputs: list[int]
    rows: int
    name: str = "fused"

    @property
    def reduces(self) -> bool:
        return any(m.prim.reduction is not None for m in self.members)

    def kernel(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """The reference meaning: each member's own numpy kernel on whole arrays."""
        values: list[np.ndarray] = []
        for m in self.members:
            args = [arrays[i] if tag == "in" else values[i] for tag, i in m.args]
            values.append(np.asarray(m.prim.kernel(*args, **m.params)).astype(m.dtype,
                                                                               copy=False))
        return tuple(values[j] for j in self.outputs)

    def arg_dtypes(self, member: Member) -> list[np.dtype]:
        return [self.input_dtypes[i] if tag == "in" else self.members[i].dtype
                for tag, i in member.args]

    def reads_by_rows(self, k: int) -> bool:
        """Every member that reads input ``k`` reads it a chunk of rows at a time."""
        return all(m.reads_rows(self.input_shapes[k], self.rows)
                   for m in self.members for tag, i in m.args if tag == "in" and i == k)

    @property
    def writes_last_only(self) -> bool:
        """Its one output is the last member's value (written after every other read)."""
        return self.outputs == [len(self.members) - 1]

    def describe(self) -> str:
        return " -> ".join(m.prim.name for m in self.members)

    def output_names(self) -> list[str]:
        return [self.members[j].name for j in self.outputs]

    # -- drawing (Graph.to_dot) --------------------------------------------------------------
    def dot_member(self, node_name: str, output: int) -> str:
        """The drawn vertex of the member that makes output ``output``."""
        return f"{node_name}/{self.outputs[output]}"

    def dot_cluster(self, node_name: str, input_names: Sequence[str]) -> list[str]:
        """Graphviz lines: the members as a cluster, with edges from the inputs."""
        lines = [f'  subgraph "cluster_{node_name}" {{',
                 f'    label="{node_name}: {self.rows} rows"; style=rounded; color=blue;']
        lines += [f'    "{node_name}/{j}" [label="{m.name}\\n{m.prim.name}", shape=box];'
                  for j, m in enumerate(self.members)]
        lines.append("  }")
        for j, m in enumerate(self.members):
            for tag, i in m.args:
                source = f"{node_name}/{i}" if tag == "m" else input_names[i]
                lines.append(f'  "{source}" -> "{node_name}/{j}";')
        return lines
