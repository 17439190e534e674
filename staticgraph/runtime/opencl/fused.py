"""A fused kernel as one OpenCL kernel (one elementwise op is a fused kernel of one member).
Each member is one C statement (its table entry's expression); operands are read through
broadcast index arithmetic. Two forms:

- **flat**: every member has the same shape and nothing reduces within a row (elementwise
  chains, broadcasts, reductions of everything such as a loss's mean): one work-item per
  element; a reduction of everything folds a block (CPU) or a grid stride (GPU) per
  work-item, and a second small kernel combines the partial results.
- **rows** (softmax, layer_norm, cross-entropy): a row's reductions, prologue and epilogue in
  one kernel. A GPU gives each row a work-group (strided loops, trees in local memory); a CPU
  gives each row a work-item, whose loops step over vectors where every member allows it.
  The row's scalars (a mean, a max) stay in registers; elementwise members are recomputed
  where they are read, except a costly one the last pass needs again (``stash_plan``). A
  reduction to several values per row goes through a scratch row in global memory; one over
  the rows themselves (a sink) writes a partial result per row, combined by a second kernel.
"""

from __future__ import annotations

import re

import numpy as np

from ...program import FusedKernel, Member
from .codegen import (
    Launch,
    Rendered,
    Shape,
    broadcast_strides,
    contiguous_strides,
    offset,
    pow2_at_least,
    reduction_launch,
    size,
)
from .table import (
    LANES,
    OPENCL,
    Operand,
    c_type,
    cast,
    combine_expr,
    identity,
    literal,
    member_expr,
)

ROWS_PER_GROUP = 16  # one work-item per row: rows side by side in a work-group's SIMD lanes
_LOOP_INDEX = re.compile(r"\b[eko]\b")  # the loops' variables in generated code


class _Scope:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.memo: dict[tuple, str] = {}


class FusedRenderer:
    """A fused kernel as OpenCL C (see the module's docstring)."""

    def __init__(self, kernel: FusedKernel, compute_units: int, max_group: int,
                 per_item: bool, constants: dict[int, np.ndarray], lanes: int = 1) -> None:
        self.k, self.members = kernel, kernel.members
        self.per_item, self.constants = per_item, constants
        self.lanes = lanes  # >1: a row's loops step over vectors of this many elements
        self.vectors: set[str] = set()  # variables of a vector type
        self.compute_units, self.max_group = compute_units, max_group
        self.names = 0
        self.lines: list[str] = []
        self.top = _Scope()  # kernel scope: the row's scalars
        self.sinks = [j for j in kernel.outputs if self._is_sink(j)]
        self.flat = self._flat_shape()
        self.rows = kernel.rows
        self.local_types: set[str] = set()
        # member -> output whose buffer holds it between a row's passes (see stash_plan)
        self.stash = self.stash_plan() if per_item else {}
        self.stashed: set[int] = set()   # stored: later passes read it back
        self.storing: set[int] = set()   # stored in the pass being written

    # -- shapes --------------------------------------------------------------------------
    def _is_sink(self, j: int) -> bool:
        return self.members[j].reduces_rows

    def _arg_shape(self, tag: str, i: int) -> Shape:
        return tuple(self.k.input_shapes[i] if tag == "in" else self.members[i].shape)

    def _arg_dtype(self, tag: str, i: int) -> np.dtype:
        return self.k.input_dtypes[i] if tag == "in" else self.members[i].dtype

    def _flat_shape(self) -> Shape | None:
        """The one shape of every member, if nothing reduces but to a single value."""
        shapes = set()
        for j, m in enumerate(self.members):
            if m.prim.reduction is None:
                shapes.add(tuple(m.shape))
            elif j in self.sinks and size(m.shape) == 1:
                shapes.add(self._arg_shape(*m.args[0]))
            else:
                return None
        return shapes.pop() if len(shapes) == 1 else None

    def _row_shape(self, j: int) -> Shape:
        return tuple(self.members[j].shape[1:])

    # -- values --------------------------------------------------------------------------
    def _var(self) -> str:
        self.names += 1
        return f"v{self.names}"

    def _operand(self, tag: str, i: int) -> Operand:
        return Operand(self._arg_dtype(tag, i), len(self._arg_shape(tag, i)))

    def _load(self, i: int, full: Shape, coord: str, scope: _Scope) -> str:
        """Input ``i`` at the element ``coord`` of a member of shape ``full``."""
        shape = tuple(self.k.input_shapes[i])
        if i in self.constants:  # a number the compiler sees (a load would hide it)
            return literal(self.constants[i].reshape(-1)[0], self.k.input_dtypes[i])
        if self.flat is not None:
            where = offset(coord, full, broadcast_strides(full, shape))
        elif len(shape) == len(full) and shape[0] == self.rows and self.rows != 1:
            inner = offset(coord, full[1:], broadcast_strides(full[1:], shape[1:]))
            where = f"r * {size(shape[1:])}" + ("" if inner == "0" else f" + {inner}")
        else:  # read whole: the rows axis, if it has one, is 1
            rest = shape[1:] if len(shape) == len(full) else shape
            where = offset(coord, full[1:], broadcast_strides(full[1:], rest))
        if not _LOOP_INDEX.search(where):  # the same for the whole row: load it once
            scope = self.top
        key = ("in", i, where)
        if key not in scope.memo:
            name = self._var()
            t = c_type(self.k.input_dtypes[i])
            if scope is self.top or self.lanes == 1:
                scope.lines.append(f"const {t} {name} = i{i}[{where}];")
            else:
                if not _CONTIGUOUS.fullmatch(where):
                    raise NotVectorizable(f"input {i} is read at {where}")
                scope.lines.append(f"const {t}{self.lanes} {name} = "
                                   f"vload{self.lanes}(0, i{i} + {where});")
                self.vectors.add(name)
            scope.memo[key] = name
        return scope.memo[key]

    def _vector(self, name: str, dtype: np.dtype) -> str:
        """``name`` as a vector in a vector loop (a row's scalar is the same in every lane)."""
        if self.lanes == 1 or name in self.vectors:
            return name
        return f"(({c_type(dtype)}{self.lanes})({name}))"

    def _full(self, j: int) -> Shape:
        return tuple(self.members[j].shape) if self.flat is None else self.flat

    def value(self, j: int, coord: str, scope: _Scope) -> str:
        """Member ``j`` at element ``coord`` of its row (flat: of its whole shape)."""
        m = self.members[j]
        row = self._full(j) if self.flat is not None else self._row_shape(j)
        if size(row) == 1 and self.flat is None:
            scope, coord = self.top, "0"
        key = ("m", j, coord)
        if key in scope.memo:
            return scope.memo[key]
        if j in self.stashed:
            name = self._var()
            at = f"o{self.stash[j]} + r * {size(row)} + {coord}"
            if self.lanes > 1:
                scope.lines.append(f"const {c_type(m.dtype)}{self.lanes} {name} = "
                                   f"vload{self.lanes}(0, {at});  // {m.prim.name}, stored")
                self.vectors.add(name)
            else:
                scope.lines.append(f"const {c_type(m.dtype)} {name} = *({at});  // stored")
            scope.memo[key] = name
            return name
        if m.prim.reduction is not None:  # a reduction to several values per row
            name = f"s{j}[r * {size(row)} + {coord}]"
            scope.memo[key] = name
            return name
        args = []
        for tag, i in m.args:
            if tag == "in":
                args.append(self._load(i, self._full(j), coord, scope))
            else:
                arg_row = self._full(i) if self.flat is not None else self._row_shape(i)
                sub = offset(coord, row, broadcast_strides(row, arg_row))
                args.append(self.value(i, sub, scope))
        operands = [self._operand(tag, i) for tag, i in m.args]
        vector = self.lanes > 1 and scope is not self.top
        if vector:
            args = [self._vector(a, o.dtype) for a, o in zip(args, operands)]
        expr = member_expr(m.prim, args, operands, m.dtype, m.params)
        name = self._var()
        t = c_type(m.dtype) + (str(self.lanes) if vector else "")
        scope.lines.append(f"const {t} {name} = {expr};  // {m.prim.name}")
        if vector:
            self.vectors.add(name)
        if j in self.stash and scope is not self.top and _LOOP_INDEX.fullmatch(coord):
            at = f"o{self.stash[j]} + r * {size(row)} + {coord}"
            scope.lines.append(f"vstore{self.lanes}({name}, 0, {at});" if vector else
                               f"*({at}) = {name};")
            self.storing.add(j)
        scope.memo[key] = name
        return name

    def stash_plan(self) -> dict[int, int]:
        """Costly members (an exp) that an early pass over the row computes and the last
        pass needs again: {member: the output whose buffer holds them in between}. Softmax
        computes exp(x - max) for the sum, stores it where its result goes, and the last
        pass divides what it reads back: one exp per element, not two. One work-item per
        row only: it reads back what it stored itself."""
        if self.flat is not None:
            return {}
        passes = [self._reads(m.args[0][1]) for m in self.members
                  if m.prim.reduction is not None and m.args[0][0] == "m" and
                  self._counts(m)[0] == 1 and
                  self._row_shape(m.args[0][1]) == self._arg_shape(*m.args[0])[1:]]
        plan: dict[int, int] = {}
        outputs = [o for o in self.k.outputs if o not in self.sinks and
                   size(self._row_shape(o)) > 1]
        for n, o in enumerate(self.k.outputs):
            if o not in outputs:
                continue
            # (another output's pass may run after this one's has written over the stash)
            elsewhere = set().union(*(self._reads(p) for p in outputs if p != o))
            for j in sorted(self._reads(o) - {o} - elsewhere):
                if OPENCL[self.members[j].prim].costly and j not in plan and \
                        self._row_shape(j) == self._row_shape(o) and \
                        self.members[j].dtype == self.members[o].dtype and \
                        any(j in earlier for earlier in passes):
                    plan[j] = n
                    break
        return plan

    def _reads(self, j: int) -> set[int]:
        """The elementwise members, with values across the row, that member j's value at an
        element of the row is computed from (j included)."""
        found, stack = set(), [j]
        while stack:
            i = stack.pop()
            m = self.members[i]
            if i in found or m.prim.reduction is not None or size(self._row_shape(i)) == 1:
                continue
            found.add(i)
            stack.extend(a for tag, a in m.args if tag == "m")
        return found

    def _reduced_arg(self, m: Member, kept: str, k: str, scope: _Scope) -> str:
        """The reduced operand of ``m`` at kept index ``kept`` and reduced index ``k`` of its
        row."""
        tag, i = m.args[0]
        shape = self._arg_shape(tag, i)
        dims = shape[1:]
        axes = [a - 1 for a in m.params["axes"] if a != 0]
        strides = contiguous_strides(dims)
        kept_dims = [d for d in range(len(dims)) if d not in axes]
        parts = [offset(kept, [dims[d] for d in kept_dims], [strides[d] for d in kept_dims]),
                 offset(k, [dims[d] for d in axes], [strides[d] for d in axes])]
        coord = " + ".join(p for p in parts if p != "0") or "0"
        if tag == "in":
            return self._load(i, shape, coord, scope)
        return self.value(i, coord, scope)

    # -- kernel text -----------------------------------------------------------------------
    def _reduce_in_group(self, m: Member, acc: str, group: int) -> str:
        """Tree-reduce every work-item's ``acc`` in local memory: the group's result."""
        t = c_type(m.dtype)
        self.local_types.add(t)
        combine = m.prim.reduction.combine
        self.lines += [f"red_{t}[lid] = {acc};", "barrier(CLK_LOCAL_MEM_FENCE);"]
        step = group // 2
        while step:
            both = combine_expr(combine, f"red_{t}[lid]", f"red_{t}[lid + {step}]", m.dtype)
            self.lines += [f"if (lid < {step}) red_{t}[lid] = {both};",
                           "barrier(CLK_LOCAL_MEM_FENCE);"]
            step //= 2
        result = self._var()
        self.lines += [f"const {t} {result} = red_{t}[0];", "barrier(CLK_LOCAL_MEM_FENCE);"]
        return result

    def _accumulate(self, m: Member, loop: str, kept: str, k: str) -> tuple[str, list[str]]:
        """Lines of a loop folding the member's reduced operand (within a row) into a new
        accumulator; what the loop reads that is the same for the whole row goes to the
        kernel scope, so flush it first. Vector loops fold lane by lane, then the lanes."""
        t = c_type(m.dtype)
        combine = m.prim.reduction.combine
        acc = self._var()
        body = _Scope()
        arg = self._reduced_arg(m, kept, k, body)
        tag, i = m.args[0]
        value = cast(arg, self._arg_dtype(tag, i), m.dtype)
        start = f"{t} {acc} = {identity(combine, m.dtype)};"
        if self.lanes > 1:
            value = self._vector(value, m.dtype)
            start = f"{t}{self.lanes} {acc} = ({t}{self.lanes})({identity(combine, m.dtype)});"
        lines = [start, loop + " {"]
        lines += ["    " + line for line in body.lines]
        lines += [f"    {acc} = {combine_expr(combine, acc, value, m.dtype)};", "}"]
        if self.lanes == 1:
            return acc, lines
        total = self._var()
        lines.append(f"{t} {total} = {acc}.s0;")
        lines += [f"{total} = {combine_expr(combine, total, f'{acc}.s{lane:x}', m.dtype)};"
                  for lane in range(1, self.lanes)]
        return total, lines

    def _finish(self, m: Member, acc: str, count: int) -> str:
        if m.prim.reduction.mean:
            return f"{acc} / {literal(count, m.dtype)}"
        return acc

    def _counts(self, m: Member) -> tuple[int, int]:
        """(kept, reduced) element counts of the member's reduction within a row."""
        shape = self._arg_shape(*m.args[0])
        axes = [a for a in m.params["axes"] if a != 0]
        reduced = size([shape[d] for d in axes])
        return size([shape[d] for d in range(1, len(shape)) if d not in axes]), reduced

    def render(self) -> Rendered:
        if self.flat is not None:
            return self._render_flat()
        return self._render_rows()

    def _signature(self, extra: list[str]) -> tuple[str, list[str]]:
        params, args = [], []
        for i, dtype in enumerate(self.k.input_dtypes):
            params.append(f"__global const {c_type(dtype)}* restrict i{i}")
            args.append(f"in {i}")
        for n, j in enumerate(self.k.outputs):
            params.append(f"__global {c_type(self.members[j].dtype)}* restrict o{n}")
            args.append(f"out {n}")
        for name in extra:
            params.append(f"__global {c_type(self.members[int(name[1:])].dtype)}* restrict "
                          f"{name}")
            args.append(f"scratch {name}")
        return ", ".join(params), args

    def _source(self, params: str) -> str:
        local = [f"__local {t} red_{t}[{self.group}];" for t in sorted(self.local_types)]
        body = ["    " + line for line in local + self.lines]
        return "\n".join([f"__kernel void k({params}) {{", *body, "}"])

    def _render_flat(self) -> Rendered:
        """Elementwise: one work-item per element. With reductions of everything (sinks):
        each work-item folds a stretch of elements, a contiguous block on a CPU (the loop
        vectorizes) or a grid stride on a GPU (neighbours read neighbours), then one partial
        result per work-item (CPU) or per work-group (GPU, a tree in local memory)."""
        total, sinks = size(self.flat), self.sinks
        accs = {}
        for j in sinks:
            m = self.members[j]
            accs[j] = self._var()
            self.lines.append(f"{c_type(m.dtype)} {accs[j]} = "
                              f"{identity(m.prim.reduction.combine, m.dtype)};")
        body = _Scope()
        for n, j in enumerate(self.k.outputs):
            m = self.members[j]
            if j in sinks:
                tag, i = m.args[0]
                arg = self._load(i, self.flat, "e", body) if tag == "in" else \
                    self.value(i, "e", body)
                both = combine_expr(m.prim.reduction.combine, accs[j],
                                    cast(arg, self._arg_dtype(tag, i), m.dtype), m.dtype)
                body.lines.append(f"{accs[j]} = {both};")
            else:
                body.lines.append(f"o{n}[e] = {self.value(j, 'e', body)};")
        self._flush_top()
        if not sinks:
            self.group = pow2_at_least(total, 256)
            loop, items = f"const long e = get_global_id(0);\nif (e < {total})", total
        elif self.per_item:
            self.group = 1
            items = min(total, self.compute_units * 64)
            block = -(-total // items)
            loop = (f"const long start = get_global_id(0) * {block};\n"
                    f"for (long e = start; e < min(start + {block}, (long){total}); e++)")
        else:
            self.group = 256
            items = min(-(-total // self.group), self.compute_units * 64) * self.group
            loop = f"for (long e = get_global_id(0); e < {total}; e += get_global_size(0))"
        self.lines += loop.split("\n")
        self.lines[-1] += " {"
        self.lines += ["    " + line for line in body.lines] + ["}"]
        if sinks and self.per_item:
            self.lines = [f"if (get_global_id(0) >= {items}) return;"] + self.lines
            self.lines += [f"p{j}[get_global_id(0)] = {accs[j]};" for j in sinks]
            parts, group = items, min(items, ROWS_PER_GROUP)
        elif sinks:
            self.lines.insert(0, "const int lid = get_local_id(0);")
            for j in sinks:
                result = self._reduce_in_group(self.members[j], accs[j], self.group)
                self.lines.append(f"if (lid == 0) p{j}[get_group_id(0)] = {result};")
            parts, group = items // self.group, self.group
        else:
            parts, group = 0, self.group
        params, args = self._signature([f"p{j}" for j in sinks])
        global_size = -(-items // group) * group
        rendered = Rendered([Launch(self._source(params), global_size, group, args)])
        self._combine_sinks(rendered, parts)
        return rendered

    def _combine_sinks(self, rendered: Rendered, parts: int) -> None:
        """Each sink's partial results (one per work-group or row) combined into its output."""
        for j in self.sinks:
            m = self.members[j]
            kept = self._counts(m)[0] if self.flat is None else 1
            rendered.scratch[f"p{j}"] = parts * kept * m.dtype.itemsize
            count = size([self._arg_shape(*m.args[0])[a] for a in m.params["axes"]])
            out = self.k.outputs.index(j)
            launch = reduction_launch((parts, kept), (0,), m.prim, m.dtype, m.dtype,
                                      self.compute_units, mean_count=count)
            launch.args = [f"scratch p{j}", f"out {out}"]
            rendered.launches.append(launch)

    def _render_rows(self) -> Rendered:
        """One work-group per row (a GPU: its work-items share the row, reductions are
        trees in local memory), or one work-item per row (a CPU: PoCL vectorizes across
        work-items, so neighbouring rows fill the SIMD lanes, and a barrier there costs a
        pass over the whole group)."""
        members = self.members
        widest = max([size(self._row_shape(j)) for j in range(len(members))] +
                     [size(self._arg_shape(*m.args[0])[1:]) for m in members
                      if m.prim.reduction is not None])
        if self.per_item:
            self.group = 1
            self.lines += ["const long r = get_global_id(0);", f"if (r >= {self.rows}) return;"]
        else:
            self.group = pow2_at_least(widest, min(256, self.max_group))
            self.lines += ["const long r = get_group_id(0);", "const int lid = get_local_id(0);"]
        g, first = self.group, "0" if self.per_item else "lid"
        extra: list[str] = []
        for j, m in enumerate(members):
            if m.prim.reduction is None:
                continue
            kept, reduced = self._counts(m)
            sink = j in self.sinks
            if kept == 1:  # to one value per row: strided loop, then a tree
                step = g * self.lanes
                if self.lanes > 1 and reduced % step:
                    raise NotVectorizable(f"a row of {reduced}")
                acc, lines = self._accumulate(
                    m, f"for (long k = {first}; k < {reduced}; k += {step})", "0", "k")
                self._flush_top()
                self.lines += lines
                self.stashed |= self.storing
                result = acc if self.per_item else self._reduce_in_group(m, acc, g)
                if sink:
                    self.lines.append(self._once(f"p{j}[r] = {result};"))
                else:
                    name = self._var()
                    self.lines.append(f"const {c_type(m.dtype)} {name} = "
                                      f"{self._finish(m, result, reduced)};")
                    self.top.memo[("m", j, "0")] = name
            else:  # to several values per row: one work-item each, through global scratch
                if self.lanes > 1:
                    raise NotVectorizable("a reduction to several values per row")
                target = f"p{j}" if sink else f"s{j}"
                acc, lines = self._accumulate(m, f"for (long k = 0; k < {reduced}; k++)",
                                              "o", "k")
                result = acc if sink else self._finish(m, acc, reduced)
                self._flush_top()
                self.lines.append(f"for (long o = {first}; o < {kept}; o += {g}) {{")
                self.lines += ["    " + line for line in lines]
                self.lines += [f"    {target}[r * {kept} + o] = {result};", "}"]
                if not self.per_item:
                    self.lines.append("barrier(CLK_GLOBAL_MEM_FENCE);")
            if sink or kept > 1:
                extra.append(f"p{j}" if sink else f"s{j}")
        self._write_outputs()
        params, args = self._signature(extra)
        if self.per_item:
            launch = Launch(self._source(params), -(-self.rows // ROWS_PER_GROUP) *
                            ROWS_PER_GROUP, ROWS_PER_GROUP, args)
        else:
            launch = Launch(self._source(params), self.rows * g, g, args)
        rendered = Rendered([launch])
        for j, m in enumerate(members):
            if m.prim.reduction is not None and j not in self.sinks:
                kept, _ = self._counts(m)
                if kept > 1:
                    rendered.scratch[f"s{j}"] = self.rows * kept * m.dtype.itemsize
        self._combine_sinks(rendered, self.rows)
        return rendered

    def _once(self, statement: str) -> str:
        """A statement the row's first work-item runs."""
        return statement if self.per_item else f"if (lid == 0) {statement}"

    def _store(self, n: int, j: int, width: int, body: _Scope) -> str:
        value = self.value(j, "e", body)
        if self.lanes == 1:
            return f"o{n}[r * {width} + e] = {value};"
        value = self._vector(value, self.members[j].dtype)
        return f"vstore{self.lanes}({value}, 0, o{n} + r * {width} + e);"

    def _flush_top(self) -> None:
        self.lines += self.top.lines
        self.top.lines = []

    def _write_outputs(self) -> None:
        by_row: dict[int, list[tuple[int, int]]] = {}
        for n, j in enumerate(self.k.outputs):
            if j not in self.sinks:
                by_row.setdefault(size(self._row_shape(j)), []).append((n, j))
        for width, outs in by_row.items():
            if width == 1:
                values = [(n, self.value(j, "0", self.top)) for n, j in outs]
                self._flush_top()
                self.lines += [self._once(f"o{n}[r] = {v};") for n, v in values]
                continue
            body = _Scope()
            step = self.group * self.lanes
            if self.lanes > 1 and width % step:
                raise NotVectorizable(f"a row of {width}")
            writes = [self._store(n, j, width, body) for n, j in outs]
            self._flush_top()
            first = "0" if self.per_item else "lid"
            self.lines.append(f"for (long e = {first}; e < {width}; e += {step}) {{")
            self.lines += ["    " + line for line in body.lines + writes] + ["}"]


def render_fused(kernel: FusedKernel, compute_units: int, max_group: int, per_item: bool,
                 constants: dict[int, np.ndarray]) -> Rendered:
    """``per_item``: one work-item per row (a CPU); ``constants``: inputs that are constants
    of one element, written into the source as literals.

    On a CPU a row's loops step over vectors of ``LANES`` elements where they can (every
    member a vector-safe primitive in one floating type, reads contiguous along the row):
    PoCL vectorizes across work-items but not a loop inside one, and exp, log and tanh are
    a library call per element unless their argument is a vector."""
    if per_item and FusedRenderer(kernel, 1, 1, True, constants).flat is None and \
            _vectorizable(kernel):
        try:
            return FusedRenderer(kernel, compute_units, max_group, per_item, constants,
                                 LANES).render()
        except NotVectorizable:
            pass
    return FusedRenderer(kernel, compute_units, max_group, per_item, constants).render()


def stores_in_output(kernel: FusedKernel) -> bool:
    """Whether a CPU rendering keeps a value in an output between passes over a row (then
    that output cannot take over an input's buffer: the input is read after the store)."""
    return bool(FusedRenderer(kernel, 1, 1, True, {}).stash)


class NotVectorizable(Exception):
    """A row loop the vector form cannot express; the kernel is rendered scalar."""


_CONTIGUOUS = re.compile(r"(?:[^ek]* \+ )?[ek]")  # (a row's start +) the loop's index


def _vectorizable(kernel: FusedKernel) -> bool:
    """One floating dtype throughout (no casts), and every member vector-safe (its table
    entry says so)."""
    dtypes = {np.dtype(d) for d in kernel.input_dtypes} | {m.dtype for m in kernel.members}
    return len(dtypes) == 1 and dtypes.pop().kind == "f" and \
        all(OPENCL[m.prim].vectors for m in kernel.members)


