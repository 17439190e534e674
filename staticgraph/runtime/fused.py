"""Rendering one fused kernel as Python source, OpenCL-style: the rows are cut into chunks
(work-groups) small enough for a chunk's intermediates to stay in cache, and each member is
one numpy call writing (``out=``) into a scratch array sized for a chunk, or straight into
its output's rows. Scratch arrays are reused once their value is dead. Large kernels split
their chunks among threads (numpy releases the GIL inside ufunc loops), each thread with its
own scratch; a reduction over the rows (a sink) accumulates per thread and is combined after.
A kernel that fits in one chunk is straight-line code on whole arrays.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..program import FusedKernel, Member
from .numpy_table import NUMPY, combine_partials, reduce_partial

CHUNK_ELEMENTS = 1 << 17  # a chunk's widest member: 512 KB of float32 (an L2 here; L3 at worst)
PARALLEL_ELEMENTS = 1 << 20  # below this a kernel runs on the calling thread


_threads = os.cpu_count() or 1


def set_num_threads(threads: int) -> None:
    """How many threads a large fused kernel splits its rows over (torch.set_num_threads's
    counterpart; default: every core). Kernels compiled from then on use it."""
    global _threads
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {threads!r}")
    _threads = threads


def get_num_threads() -> int:
    return _threads


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


def row_ranges(rows: int, chunk: int, workers: int) -> list[tuple[int, int]]:
    """Whole chunks shared among at most ``workers`` threads, none of them empty."""
    chunks = np.array_split(np.arange(-(-rows // chunk)), min(workers, -(-rows // chunk)))
    return [(int(c[0]) * chunk, min((int(c[-1]) + 1) * chunk, rows)) for c in chunks]


class _Body:
    """The members' calls, with scratch slots handed out and taken back as values die."""

    def __init__(self, kernel: FusedKernel, chunked: bool) -> None:
        self.kernel, self.chunked = kernel, chunked
        self.lines: list[str] = []
        self.slots: list[tuple[tuple, np.dtype]] = []   # slot -> (row shape, dtype)
        self.sliced: set[int] = set()                    # inputs read a chunk of rows at a time
        self.namespace: dict[str, Any] = {"np": np}
        outputs = {j: f"o{k}" for k, j in enumerate(kernel.outputs)}
        last_use = {j: j for j in range(len(kernel.members))}
        for j, m in enumerate(kernel.members):
            for tag, i in m.args:
                if tag == "m":
                    last_use[i] = j
        free: dict[tuple, list[int]] = {}
        slot_of: dict[int, int] = {}
        value: dict[int, str] = {}
        for j, m in enumerate(kernel.members):
            call = ", ".join(value[i] if tag == "m" else self._input(m, i) for tag, i in m.args)
            into = NUMPY[m.prim].into_for(kernel.arg_dtypes(m), m.dtype)
            self.namespace[f"u{j}"] = functools.partial(into, **m.params) if m.params else into
            if m.reduces_rows and chunked:
                value[j] = self._sink(j, m, call)
                continue
            if j in outputs:
                target = f"{outputs[j]}[r:e]" if chunked else outputs[j]
            else:
                key = (tuple(m.shape[1:]), m.dtype.str)
                slot = free[key].pop() if free.get(key) else None
                if slot is None:
                    slot = len(self.slots)
                    self.slots.append(key[0:1] + (m.dtype,))
                slot_of[j] = slot
                target = f"s{slot}[:n]" if chunked else f"s{slot}"
            self.lines += [f"t{j} = {target}", f"u{j}({call}, out=t{j})  # {m.name}"]
            value[j] = f"t{j}"
            for i in {i for tag, i in m.args if tag == "m"}:
                if last_use[i] == j and i in slot_of:
                    m_i = kernel.members[i]
                    free.setdefault((tuple(m_i.shape[1:]), m_i.dtype.str), []).append(
                        slot_of.pop(i))

    def _input(self, member: Member, i: int) -> str:
        if self.chunked and member.reads_rows(self.kernel.input_shapes[i], self.kernel.rows):
            self.sliced.add(i)
            return f"a{i}"
        return f"i{i}"

    def _sink(self, j: int, m: Member, call: str) -> str:
        q = f"q{[k for k in self.kernel.outputs if self.kernel.members[k].reduces_rows].index(j)}"
        self.namespace[f"r{j}"] = functools.partial(
            reduce_partial(m.prim), axis=m.params["axes"], keepdims=m.params["keepdims"])
        self.namespace[f"c{j}"] = combine_partials(m.prim)
        self.lines += [f"p = r{j}({call})  # {m.name}",
                       f"np.copyto({q}, p) if r == lo else c{j}({q}, p, out={q})"]
        return q

    def scratch(self, rows: int) -> tuple[np.ndarray, ...]:
        return tuple(np.empty((rows,) + shape, dtype) for shape, dtype in self.slots)


def render_fused(kernel: FusedKernel, name: str) -> tuple[str, dict[str, Any], int]:
    """Source of ``def name(inputs..., outputs...)``, the namespace it needs (member kernels,
    scratch arrays) and the bytes of scratch it holds."""
    rows, widest = kernel.rows, _widest(kernel)
    chunk = min(rows, max(1, CHUNK_ELEMENTS // max(widest, 1)))
    inputs = [f"i{k}" for k in range(len(kernel.input_shapes))]
    outputs = [f"o{k}" for k in range(len(kernel.outputs))]
    params = ", ".join(inputs + outputs)
    header = [f"def {name}({params}):", f'    """{kernel.describe()}"""']
    body = _Body(kernel, chunked=chunk < rows)
    if chunk == rows:
        scratch = body.scratch(rows)
        body.namespace.update({f"s{k}": a for k, a in enumerate(scratch)})
        lines = header + [f"    {line}" for line in body.lines]
        return "\n".join(lines) + "\n", body.namespace, sum(a.nbytes for a in scratch)
    workers = _threads if rows * widest >= PARALLEL_ELEMENTS else 1
    ranges = row_ranges(rows, chunk, workers)
    sinks = [j for j in kernel.outputs if kernel.members[j].reduces_rows]
    part = [f"def {name}_part(lo, hi, S, Q, {params}):"]
    part += [f"    ({''.join(f's{k}, ' for k in range(len(body.slots)))}) = S"] if body.slots \
        else []
    part += [f"    ({''.join(f'q{k}, ' for k in range(len(sinks)))}) = Q"] if sinks else []
    part += ["    with np.errstate(all='ignore'):  # a worker thread has its own error state",
             f"        for r in range(lo, hi, {chunk}):",
             f"            e = min(r + {chunk}, hi)",
             "            n = e - r"]
    part += [f"            a{i} = i{i}[r:e]" for i in sorted(body.sliced)]
    part += [f"            {line}" for line in body.lines]
    scratch = [body.scratch(chunk) for _ in ranges]
    ns = body.namespace | {"_run_parallel": run_parallel, "RANGES": ranges, "SCRATCH": scratch}
    sink_outs = [f"o{kernel.outputs.index(j)}" for j in sinks]
    wrapper = header[:]
    if len(ranges) == 1:  # one worker accumulates straight into the outputs
        wrapper.append(f"    {name}_part(0, {rows}, SCRATCH[0], "
                       f"({''.join(o + ', ' for o in sink_outs)}), {params})")
    else:
        ns["PARTIALS"] = [tuple(np.empty(kernel.members[j].shape, kernel.members[j].dtype)
                                for j in sinks) for _ in ranges]
        wrapper.append(f"    _run_parallel({name}_part, RANGES, SCRATCH, PARTIALS, ({params},))")
        for k, (j, out) in enumerate(zip(sinks, sink_outs)):
            wrapper.append(f"    np.copyto({out}, PARTIALS[0][{k}])")
            wrapper += [f"    c{j}({out}, PARTIALS[{w}][{k}], out={out})"
                        for w in range(1, len(ranges))]
    for j, out in zip(sinks, sink_outs):
        m = kernel.members[j]
        if m.prim.reduction.mean:
            wrapper.append(f"    np.true_divide({out}, {_reduced_count(kernel, m)}, out={out})")
    scratch_bytes = sum(a.nbytes for s in scratch for a in s)
    return "\n".join(part + [""] + wrapper) + "\n", ns, scratch_bytes


def _reduced_count(kernel: FusedKernel, m: Member) -> int:
    tag, i = m.args[0]
    shape = kernel.input_shapes[i] if tag == "in" else kernel.members[i].shape
    return int(np.prod([shape[a] for a in m.params["axes"]], dtype=np.int64))
