"""What every generated OpenCL kernel shares: index arithmetic as C (a row-major index to
an offset through any strides, axes that step together merged), and a launch's description.
The kernels themselves: ``fused.py`` (fused kernels and single elementwise ops) and the
standalone reductions, strided copies, convolutions' windows (im2col, col2im) and matmul
below. Each kernel is its own program with a canonical source (it names no node), so the same
kernel in another graph is the same cached build."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...ops import Primitive
from ...ops.conv import Windows
from .table import c_type, cast, combine_expr, identity, literal

Shape = tuple[int, ...]


def size(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def broadcast_strides(to: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides, over the coordinates of ``to``, of a contiguous array of ``shape``
    broadcast to it (right-aligned; a broadcast axis has stride 0)."""
    own = contiguous_strides(shape)
    lead = len(to) - len(shape)
    return tuple(0 if d < lead or shape[d - lead] == 1 else own[d - lead] for d in range(len(to)))


def offset(index: str, sizes: Sequence[int], strides: Sequence[int]) -> str:
    """The element offset, as C, of the ``index``-th element (row-major) of a view with these
    sizes and element strides. Axes that step together are merged first."""
    if not index.isidentifier():  # (o * 4 + k) / 4, not o * 4 + k / 4
        index = f"({index})"
    dims: list[list[int]] = []
    for n, s in zip(sizes, strides):
        if n == 1:
            continue
        if dims and dims[-1][1] == s * n:  # the previous axis steps over this one exactly
            dims[-1] = [dims[-1][0] * n, s]
        elif dims and dims[-1][1] == 0 and s == 0:
            dims[-1][0] *= n
        else:
            dims.append([n, s])
    terms = []
    inner = 1
    for k, (n, s) in enumerate(reversed(dims)):
        if s:
            coord = index if inner == 1 else f"({index} / {inner})"
            if k != len(dims) - 1:
                coord = f"({coord} % {n})"
            terms.append(coord if s == 1 else f"{coord} * {s}")
        inner *= n
    return " + ".join(reversed(terms)) or "0"


def pow2_at_least(n: int, cap: int) -> int:
    p = 1
    while p < min(n, cap):
        p *= 2
    return p


@dataclass
class Launch:
    """One kernel launch: its program source, work sizes (one axis, or three for matmul)
    and arguments, in order: buffers the executable binds, "in k" and "out k" (the step's
    k-th input and output) or "scratch p3" (a buffer of ``Rendered.scratch``)."""

    source: str
    global_size: int | tuple[int, ...]
    local_size: int | tuple[int, ...]
    args: list[str]


@dataclass
class Rendered:
    """A schedule step as launches, plus the scratch buffers they need (bytes each)."""

    launches: list[Launch]
    scratch: dict[str, int] = field(default_factory=dict)


def reduction_launch(shape: Shape, axes: Sequence[int], prim: Primitive, in_dtype: np.dtype,
                     out_dtype: np.dtype, compute_units: int,
                     mean_count: int | None = None) -> Launch:
    """A reduction of a contiguous array over ``axes``, one work-item per result (many
    results) or one work-group per result (few results, many elements each). The result is
    laid out as the kept axes in order (keepdims or not: the same bytes). A mean divides by
    ``mean_count`` (default: the reduced elements)."""
    axes = sorted(a % len(shape) if shape else a for a in axes)
    strides = contiguous_strides(shape)
    kept_dims = [d for d in range(len(shape)) if d not in axes]
    kept = size([shape[d] for d in kept_dims])
    reduced = size([shape[d] for d in axes])
    combine = prim.reduction.combine
    t, tin = c_type(out_dtype), c_type(in_dtype)
    base = offset("o", [shape[d] for d in kept_dims], [strides[d] for d in kept_dims])
    step = offset("k", [shape[d] for d in axes], [strides[d] for d in axes])
    at = " + ".join(p for p in (base, step) if p != "0") or "0"
    value = cast("x[" + at + "]", in_dtype, out_dtype)
    count = reduced if mean_count is None else mean_count
    finish = (lambda a: f"{a} / {literal(count, out_dtype)}") if prim.reduction.mean else \
        (lambda a: a)
    head = f"__kernel void k(__global const {tin}* restrict x, __global {t}* restrict y) {{"
    if kept >= 64 * compute_units or reduced <= 64:
        group = 64
        lines = [head,
                 f"    for (long o = get_global_id(0); o < {kept}; o += get_global_size(0)) {{",
                 f"        {t} a = {identity(combine, out_dtype)};",
                 f"        for (long k = 0; k < {reduced}; k++) a = "
                 f"{combine_expr(combine, 'a', value, out_dtype)};",
                 f"        y[o] = {finish('a')};", "    }", "}"]
        return Launch("\n".join(lines), -(-kept // group) * group, group, ["in 0", "out 0"])
    group = pow2_at_least(reduced, 256)
    lines = [head, f"    __local {t} red[{group}];", "    const long o = get_group_id(0);",
             "    const int lid = get_local_id(0);",
             f"    {t} a = {identity(combine, out_dtype)};",
             f"    for (long k = lid; k < {reduced}; k += {group}) a = "
             f"{combine_expr(combine, 'a', value, out_dtype)};",
             "    red[lid] = a;", "    barrier(CLK_LOCAL_MEM_FENCE);"]
    s = group // 2
    while s:
        lines += [f"    if (lid < {s}) red[lid] = "
                  f"{combine_expr(combine, 'red[lid]', f'red[lid + {s}]', out_dtype)};",
                  "    barrier(CLK_LOCAL_MEM_FENCE);"]
        s //= 2
    lines += [f"    if (lid == 0) y[o] = {finish('red[0]')};", "}"]
    return Launch("\n".join(lines), kept * group, group, ["in 0", "out 0"])


def strided_copy_launch(count_shape: Shape, dtype: np.dtype, src_offset: int,
                        src_strides: Sequence[int], dst_offset: int,
                        dst_strides: Sequence[int], out_dtype: np.dtype | None = None) -> Launch:
    """y[dst(i)] = x[src(i)] for each element i of ``count_shape`` (an index map: transpose,
    broadcast, slicing, a part of a concat)."""
    out_dtype = dtype if out_dtype is None else out_dtype
    total = size(count_shape)
    src = offset("e", count_shape, src_strides)
    dst = offset("e", count_shape, dst_strides)
    src = src if not src_offset else f"{src_offset} + {src}"
    dst = dst if not dst_offset else f"{dst_offset} + {dst}"
    group = pow2_at_least(total, 64)
    lines = [f"__kernel void k(__global const {c_type(dtype)}* restrict x, "
             f"__global {c_type(out_dtype)}* restrict y) {{",
             f"    for (long e = get_global_id(0); e < {total}; e += get_global_size(0))",
             f"        y[{dst}] = {cast(f'x[{src}]', dtype, out_dtype)};", "}"]
    return Launch("\n".join(lines), max(1, -(-total // group)) * group, group, ["in 0", "out 0"])


def _index_type(*extents: int) -> str:
    """The C type of indices below every extent: ``int`` where they fit, as PoCL vectorizes
    32-bit index arithmetic across work-items and not 64-bit (im2col's divisions by
    constants ran 4x faster in int)."""
    return "int" if max(extents) < 2**31 else "long"


def _per_element(t: str, index: str, total: int, body: Sequence[str]) -> Launch:
    """A kernel from x to y (both of C type ``t``) with one work-item per element ``e`` of
    ``total``, which ``body`` computes (PoCL ran im2col in work-groups of 256 2x faster
    than of 64, and vectorizes an ``if`` but not a grid-stride loop)."""
    lines = [f"__kernel void k(__global const {t}* restrict x, __global {t}* restrict y) {{",
             f"    const {index} e = get_global_id(0);", f"    if (e >= {total}) return;",
             *(f"    {line}" for line in body), "}"]
    group = pow2_at_least(total, 256)
    return Launch("\n".join(lines), -(-total // group) * group, group, ["in 0", "out 0"])


def _coordinates(index: str, of: str, names: Sequence[str], sizes: Sequence[int]) -> str:
    """A C declaration of the coordinates of the ``of``-th element (row-major) of an array
    of ``sizes``: ``_coordinates("int", "e", "ij", (2, 3))`` is
    ``const int i = e / 3, j = e % 3;``."""
    parts = []
    for k, name in enumerate(names):
        inner = size(sizes[k + 1:])
        coord = of if inner == 1 else f"{of} / {inner}"
        parts.append(f"{name} = {coord}" if k == 0 else f"{name} = {coord} % {sizes[k]}")
    return f"const {index} " + ", ".join(parts) + ";"


def im2col_launch(x_shape: Shape, windows: Windows, pad_value: float,
                  dtype: np.dtype) -> Launch:
    """im2col: x (N, C, H, W)'s sliding windows side by side, (N, C, kh, kw, Ho, Wo), one
    work-item per element, each a gather from x, or ``pad_value`` where its window lies in
    the padding. A side without padding needs no check: no window crosses it."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (dh, dw) = windows.kernel, windows.stride, windows.dilation
    (top, bottom), (left, right) = windows.padding
    ho, wo = windows.out_size((h, w))
    total = n * c * kh * kw * ho * wo
    index = _index_type(total, n * c * h * w)
    inside = [check for check, padded in (("r >= 0", top), (f"r < {h}", bottom),
                                          ("s >= 0", left), (f"s < {w}", right)) if padded]
    value = f"x[image * {h * w} + r * {w} + s]"
    if inside:
        value = f"({' && '.join(inside)}) ? {value} : {literal(pad_value, dtype)}"
    return _per_element(c_type(dtype), index, total, [
        _coordinates(index, "e", ["image", "p", "q", "i", "j"], (n * c, kh, kw, ho, wo)),
        f"const {index} r = i * {sh} + p * {dh} - {top}, s = j * {sw} + q * {dw} - {left};",
        f"y[e] = {value};"])


def col2im_launch(cols_shape: Shape, windows: Windows, image_size: tuple[int, int],
                  dtype: np.dtype) -> Launch:
    """col2im, im2col's adjoint: one work-item per pixel of the (N, C, H, W) image, summing
    the elements of cols (N, C, kh, kw, Ho, Wo) whose windows cover it: a gather, so no two
    work-items write one pixel. Kernel row p covers padded row r + top from window row
    i = (r + top - p * dh) / sh where that divides and 0 <= i < Ho (columns the same way);
    the sum runs over (p, q) in order, as the host's scatter adds them."""
    n, c, kh, kw, ho, wo = cols_shape
    h, w = image_size
    (sh, sw), (dh, dw) = windows.stride, windows.dilation
    (top, _), (left, _) = windows.padding
    total = n * c * h * w
    index, t = _index_type(total, n * c * kh * kw * ho * wo), c_type(dtype)
    return _per_element(t, index, total, [
        _coordinates(index, "e", ["image", "r", "s"], (n * c, h, w)),
        f"{t} a = {literal(0, dtype)};",
        f"for (int p = 0; p < {kh}; p++) {{",
        f"    const {index} ti = r + {top} - p * {dh};  /* i * sh */",
        f"    if (ti < 0 || ti % {sh} != 0 || ti / {sh} >= {ho}) continue;",
        f"    for (int q = 0; q < {kw}; q++) {{",
        f"        const {index} tj = s + {left} - q * {dw};  /* j * sw */",
        f"        if (tj < 0 || tj % {sw} != 0 || tj / {sw} >= {wo}) continue;",
        f"        a += x[((image * {kh} + p) * {kw} + q) * {ho * wo} + ti / {sh} * {wo} + "
        f"tj / {sw}];",
        "    }", "}", "y[e] = a;"])


MATMUL_TILE = 16


def matmul_launch(a_shape: Shape, b_shape: Shape, out_shape: Shape, a_dtype: np.dtype,
                  b_dtype: np.dtype, out_dtype: np.dtype, a_swapped: bool = False,
                  b_swapped: bool = False) -> Launch:
    """numpy's matmul (batched, batch axes broadcast, 1-D operands as a row or a column),
    tiled: a work-group computes a TILE x TILE block of the result, staging TILE x TILE
    blocks of both operands in local memory. A ``swapped`` operand is stored with its last
    two axes swapped (a transpose folded into the indexing: ``x @ w.T`` reads w itself)."""
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    m, k, n = a2[-2], a2[-1], b2[-1]
    batch = tuple(out_shape[:len(out_shape) - (len(a_shape) > 1) - (len(b_shape) > 1)])
    a_batch = offset("z", batch, [s * m * k for s in broadcast_strides(batch, a2[:-2])])
    b_batch = offset("z", batch, [s * k * n for s in broadcast_strides(batch, b2[:-2])])
    t, ta, tb = c_type(out_dtype), c_type(a_dtype), c_type(b_dtype)
    a_at = f"(t0 + tx) * {m} + row" if a_swapped else f"row * {k} + t0 + tx"
    b_at = f"col * {k} + t0 + ty" if b_swapped else f"(t0 + ty) * {n} + col"
    tile = MATMUL_TILE
    lines = [
        f"__kernel void k(__global const {ta}* restrict a, __global const {tb}* restrict b, "
        f"__global {t}* restrict y) {{",
        f"    __local {t} as[{tile}][{tile}];", f"    __local {t} bs[{tile}][{tile}];",
        "    const int tx = get_local_id(0), ty = get_local_id(1);",
        "    const long col = get_global_id(0), row = get_global_id(1), z = get_global_id(2);",
        f"    const long ab = {a_batch}, bb = {b_batch};",
        f"    {t} acc = {literal(0, out_dtype)};",
        f"    for (long t0 = 0; t0 < {k}; t0 += {tile}) {{",
        f"        as[ty][tx] = (row < {m} && t0 + tx < {k}) ? "
        f"{cast(f'a[ab + {a_at}]', a_dtype, out_dtype)} : {literal(0, out_dtype)};",
        f"        bs[ty][tx] = (col < {n} && t0 + ty < {k}) ? "
        f"{cast(f'b[bb + {b_at}]', b_dtype, out_dtype)} : {literal(0, out_dtype)};",
        "        barrier(CLK_LOCAL_MEM_FENCE);",
        f"        for (int i = 0; i < {tile}; i++) acc += as[ty][i] * bs[i][tx];",
        "        barrier(CLK_LOCAL_MEM_FENCE);",
        "    }",
        f"    if (row < {m} && col < {n}) y[z * {m * n} + row * {n} + col] = acc;",
        "}"]
    rows, cols = -(-m // tile) * tile, -(-n // tile) * tile
    return Launch("\n".join(lines), (cols, rows, max(size(batch), 1)), (tile, tile, 1),
                  ["in 0", "in 1", "out 0"])
