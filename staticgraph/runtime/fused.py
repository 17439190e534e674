"""Rendering one fused kernel as Python source, OpenCL-style: the rows are cut into chunks
(work-groups) small enough for a chunk's intermediates to stay in cache, and each member is
one numpy call writing (``out=``) into a scratch array sized for a chunk, or straight into
its output's rows. Scratch arrays are reused once their value is dead. Large kernels split
their rows among threads (numpy releases the GIL inside ufunc loops), each with its own
scratch; a reduction over the rows (a sink) accumulates per thread and is combined after.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..passes.fusion import FusedKernel, Member

CHUNK_ELEMENTS = 1 << 17  # a chunk's widest member: 512 KB of float32 (an L2 here; L3 at worst)
PARALLEL_ELEMENTS = 1 << 20  # below this a kernel runs on the calling thread
_COMBINE = {"sum": np.add, "mean": np.add, "max": np.maximum, "min": np.minimum}
_PARTIAL = {"sum": np.add.reduce, "mean": np.add.reduce, "max": np.maximum.reduce,
            "min": np.minimum.reduce}


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="staticgraph")


def run_parallel(part, ranges, scratch, partials, arrays) -> None:
    """Run ``part`` on each row range with that worker's scratch and partial sinks."""
    futures = [_pool().submit(part, lo, hi, s, p, *arrays)
               for (lo, hi), s, p in zip(ranges, scratch, partials)]
    for f in futures:
        f.result()


def _widest(kernel: FusedKernel) -> int:
    return max((int(np.prod(m.shape[1:], dtype=np.int64)) for m in kernel.members
                if not m.reduces_rows), default=1)


def _sliced(member: Member, shape: tuple, rows: int) -> bool:
    """Does this input line up with the member's rows (else it is read whole)?"""
    if member.prim.name in _PARTIAL:
        return len(shape) >= 1 and shape[0] == rows
    return len(shape) == len(member.shape) and shape[0] == rows


def render_fused(kernel: FusedKernel, name: str) -> tuple[str, dict[str, Any], int]:
    """Source of ``def name(inputs..., outputs...)``, the namespace it needs (member kernels,
    scratch arrays) and the bytes of scratch it holds."""
    rows, widest = kernel.rows, _widest(kernel)
    chunk = min(rows, max(1, CHUNK_ELEMENTS // max(widest, 1)))
    workers = 1
    if chunk < rows and rows * widest >= PARALLEL_ELEMENTS:
        workers = min(os.cpu_count() or 1, -(-rows // chunk))
    if chunk == rows:
        return _render_straight(kernel, name)
    return _render_chunked(kernel, name, chunk, workers)


def _member_kernels(kernel: FusedKernel, namespace: dict) -> list[str]:
    names = []
    for j, m in enumerate(kernel.members):
        namespace[f"u{j}"] = (functools.partial(m.prim.into, **m.params) if m.params
                              else m.prim.into)
        names.append(f"u{j}")
    return names


def _last_uses(kernel: FusedKernel) -> dict[int, int]:
    last = {j: j for j in range(len(kernel.members))}
    for j, m in enumerate(kernel.members):
        for tag, i in m.args:
            if tag == "m":
                last[i] = j
    return last


def _render_straight(kernel: FusedKernel, name: str):
    """Everything in one chunk: one call per member on whole arrays (tiny tensors)."""
    namespace: dict[str, Any] = {"np": np}
    calls = _member_kernels(kernel, namespace)
    inputs = [f"i{k}" for k in range(len(kernel.input_shapes))]
    outputs = {j: f"o{k}" for k, j in enumerate(kernel.outputs)}
    lines = [f"def {name}({', '.join(inputs + list(outputs.values()))}):"]
    scratch = 0
    value: dict[int, str] = {}
    for j, m in enumerate(kernel.members):
        args = ", ".join(value[i] if tag == "m" else inputs[i] for tag, i in m.args)
        target = outputs.get(j)
        if target is None:
            target = f"s{j}"
            namespace[target] = np.empty(m.shape, m.dtype)
            scratch += namespace[target].nbytes
        lines.append(f"    {calls[j]}({args}, out={target})  # {m.name}")
        value[j] = target
    return "\n".join(lines) + "\n", namespace, scratch


def _render_chunked(kernel: FusedKernel, name: str, chunk: int, workers: int):
    rows = kernel.rows
    namespace: dict[str, Any] = {"np": np, "_run_parallel": run_parallel}
    calls = _member_kernels(kernel, namespace)
    inputs = [f"i{k}" for k in range(len(kernel.input_shapes))]
    outputs = {j: f"o{k}" for k, j in enumerate(kernel.outputs)}
    sinks = [j for j in kernel.outputs if kernel.members[j].reduces_rows]
    last_use = _last_uses(kernel)
    slots: list[tuple[tuple, np.dtype]] = []   # scratch slot -> (row shape, dtype)
    free: dict[tuple, list[int]] = {}
    slot_of: dict[int, int] = {}
    body: list[str] = []
    value: dict[int, str] = {}
    sliced: set[int] = set()
    for j, m in enumerate(kernel.members):
        args = []
        for tag, i in m.args:
            if tag == "m":
                args.append(value[i])
            elif _sliced(m, kernel.input_shapes[i], rows):
                sliced.add(i)
                args.append(f"a{i}")
            else:
                args.append(inputs[i])
        call = ", ".join(args)
        if m.reduces_rows:  # accumulate this chunk's partial result into the worker's sink
            q = f"q{sinks.index(j)}"
            namespace[f"r{j}"] = functools.partial(_PARTIAL[m.prim.name],
                                                   axis=m.params["axes"],
                                                   keepdims=m.params["keepdims"])
            namespace[f"c{j}"] = _COMBINE[m.prim.name]
            body += [f"p = r{j}({call})  # {m.name}",
                     f"np.copyto({q}, p) if r == lo else c{j}({q}, p, out={q})"]
            value[j] = q
            continue
        if j in outputs:
            target = f"{outputs[j]}[r:e]"
        else:
            key = (tuple(m.shape[1:]), m.dtype.str)
            slot = free[key].pop() if free.get(key) else None
            if slot is None:
                slot = len(slots)
                slots.append((tuple(m.shape[1:]), m.dtype))
            slot_of[j] = slot
            target = f"s{slot}[:n]"
        body += [f"t{j} = {target}", f"{calls[j]}({call}, out=t{j})  # {m.name}"]
        value[j] = f"t{j}"
        for i in {i for tag, i in m.args if tag == "m"}:
            if last_use[i] == j and i in slot_of:
                key = (tuple(kernel.members[i].shape[1:]), kernel.members[i].dtype.str)
                free.setdefault(key, []).append(slot_of.pop(i))
    params = ", ".join(inputs + list(outputs.values()))
    scratch_sets = [tuple(np.empty((chunk,) + shape, dtype) for shape, dtype in slots)
                    for _ in range(workers)]
    slot_names = "".join(f"s{k}, " for k in range(len(slots)))
    sink_names = "".join(f"q{k}, " for k in range(len(sinks)))
    part = [f"def {name}_part(lo, hi, S, Q, {params}):"]
    part += [f"    ({slot_names}) = S"] if slots else []
    part += [f"    ({sink_names}) = Q"] if sinks else []
    part += ["    with np.errstate(all='ignore'):  # a worker thread has its own error state",
            f"        for r in range(lo, hi, {chunk}):",
            f"            e = min(r + {chunk}, hi)",
            "            n = e - r"]
    part += [f"            a{i} = {inputs[i]}[r:e]" for i in sorted(sliced)]
    part += [f"            {line}" for line in body]
    bounds = [rows * w // workers // chunk * chunk for w in range(workers)] + [rows]
    namespace["RANGES"] = list(zip(bounds[:-1], bounds[1:]))
    namespace["SCRATCH"] = scratch_sets
    wrapper = [f"def {name}({params}):", f'    """{kernel.describe()}"""']
    sink_outs = [outputs[j] for j in sinks]
    if workers == 1:
        sinks_tuple = "".join(o + ", " for o in sink_outs)
        wrapper.append(f"    {name}_part(0, {rows}, SCRATCH[0], ({sinks_tuple}), {params})")
    else:
        namespace["PARTIALS"] = [tuple(np.empty(kernel.members[j].shape, kernel.members[j].dtype)
                                       for j in sinks) for _ in range(workers)]
        wrapper.append(f"    _run_parallel({name}_part, RANGES, SCRATCH, PARTIALS, ({params},))")
        for k, j in enumerate(sinks):
            combine = f"c{j}"
            wrapper.append(f"    np.copyto({outputs[j]}, PARTIALS[0][{k}])")
            wrapper += [f"    {combine}({outputs[j]}, PARTIALS[{w}][{k}], out={outputs[j]})"
                        for w in range(1, workers)]
    for j in sinks:
        m = kernel.members[j]
        if m.prim.name == "mean":
            wrapper.append(f"    np.true_divide({outputs[j]}, {_reduced_count(kernel, m)}, "
                           f"out={outputs[j]})")
    scratch_bytes = sum(a.nbytes for s in scratch_sets for a in s)
    return "\n".join(part + [""] + wrapper) + "\n", namespace, scratch_bytes


def _reduced_count(kernel: FusedKernel, m: Member) -> int:
    tag, i = m.args[0]
    shape = kernel.input_shapes[i] if tag == "in" else kernel.members[i].shape
    return int(np.prod([shape[a] for a in m.params["axes"]], dtype=np.int64))
