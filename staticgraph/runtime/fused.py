"""Rendering one fused kernel as Python source: a loop over chunks of rows; in each chunk
every member is one numpy call writing (``out=``) into a scratch array sized for the chunk,
or straight into its output's rows. Scratch arrays are reused once their value is dead."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..passes.fusion import FusedKernel, Member

CHUNK_ELEMENTS = 16384  # a chunk's widest member: 64 KB of float32, which stays in L2
_COMBINE = {"sum": np.add, "mean": np.add, "max": np.maximum, "min": np.minimum}
_PARTIAL = {"sum": np.sum, "mean": np.sum, "max": np.max, "min": np.min}


def chunk_rows(kernel: FusedKernel) -> int:
    widest = max((int(np.prod(m.shape[1:], dtype=np.int64)) for m in kernel.members
                  if not m.reduces_rows), default=1)
    return min(kernel.rows, max(1, CHUNK_ELEMENTS // max(widest, 1)))


def _sliced(member: Member, shape: tuple, rows: int) -> bool:
    """Does this input line up with the member's rows (else it is read whole)?"""
    if member.prim.name in _PARTIAL:
        return len(shape) >= 1 and shape[0] == rows
    return len(shape) == len(member.shape) and shape[0] == rows


def render_fused(kernel: FusedKernel, name: str) -> tuple[str, dict[str, Any], int]:
    """Source of ``def name(inputs..., outputs...)``, the namespace it needs (its member
    kernels and scratch arrays) and the scratch arrays' bytes."""
    n_rows, chunk = kernel.rows, chunk_rows(kernel)
    looped = chunk < n_rows
    namespace: dict[str, Any] = {"np": np}
    inputs = [f"i{k}" for k in range(len(kernel.input_shapes))]
    outputs = {j: f"o{k}" for k, j in enumerate(kernel.outputs)}
    head = [f"def {name}({', '.join(inputs + list(outputs.values()))}):",
            f'    """{kernel.describe()}"""']
    body: list[str] = []
    after: list[str] = []
    last_use = {j: j for j in range(len(kernel.members))}
    for j, m in enumerate(kernel.members):
        for tag, i in m.args:
            if tag == "m":
                last_use[i] = j
    free_slots: dict[tuple, list[str]] = {}
    scratch_bytes = 0
    slot_of: dict[int, str] = {}
    value: dict[int, str] = {}
    sliced_inputs: set[int] = set()
    for j, m in enumerate(kernel.members):
        args = []
        for tag, i in m.args:
            if tag == "m":
                args.append(value[i])
            elif looped and _sliced(m, kernel.input_shapes[i], n_rows):
                sliced_inputs.add(i)
                args.append(f"a{i}")
            else:
                args.append(inputs[i])
        call = ", ".join(args)
        into = f"u{j}"
        namespace[into] = functools.partial(m.prim.into, **m.params) if m.params else m.prim.into
        if m.reduces_rows:
            out = outputs[j]
            if not looped:
                body.append(f"{into}({call}, out={out})")
            else:
                partial = f"r{j}"
                namespace[partial] = functools.partial(_PARTIAL[m.prim.name], **_axes(m))
                namespace[f"c{j}"] = _COMBINE[m.prim.name]
                body.append(f"p = {partial}({call})")
                body.append(f"np.copyto({out}, p) if r == 0 else c{j}({out}, p, out={out})")
                if m.prim.name == "mean":
                    count = _reduced_count(kernel, m)
                    after.append(f"np.true_divide({out}, {count}, out={out})")
            value[j] = out
            continue
        if j in outputs:
            target = f"{outputs[j]}[r:e]" if looped else outputs[j]
        else:
            key = (m.shape[1:], m.dtype.str)
            pool = free_slots.get(key)
            slot = pool.pop() if pool else None
            if slot is None:
                slot = f"s{j}"
                namespace[slot] = np.empty((chunk,) + tuple(m.shape[1:]), m.dtype)
                scratch_bytes += namespace[slot].nbytes
            slot_of[j] = slot
            target = f"{slot}[:n]" if looped else slot
        body.append(f"t{j} = {target}")
        body.append(f"{into}({call}, out=t{j})  # {m.name}")
        value[j] = f"t{j}"
        for i in {i for tag, i in m.args if tag == "m"} | {j}:
            if last_use[i] == j and i in slot_of:
                key = (kernel.members[i].shape[1:], kernel.members[i].dtype.str)
                free_slots.setdefault(key, []).append(slot_of.pop(i))
    if looped:
        loop = [f"    for r in range(0, {n_rows}, {chunk}):",
                f"        e = min(r + {chunk}, {n_rows})", "        n = e - r"]
        loop += [f"        a{i} = {inputs[i]}[r:e]" for i in sorted(sliced_inputs)]
        lines = head + loop + [f"        {line}" for line in body]
    else:
        lines = head + [f"    {line}" for line in body]
    lines += [f"    {line}" for line in after]
    return "\n".join(lines) + "\n", namespace, scratch_bytes


def _axes(m: Member) -> dict:
    return {"axis": m.params["axes"], "keepdims": m.params["keepdims"]}


def _reduced_count(kernel: FusedKernel, m: Member) -> int:
    tag, i = m.args[0]
    shape = kernel.input_shapes[i] if tag == "in" else kernel.members[i].shape
    return int(np.prod([shape[a] for a in m.params["axes"]], dtype=np.int64))
