"""A failure as a standalone Python script that reproduces it: the program, its feeds and
Variables, and the runs of the modes that disagree, printing where they differ."""

from __future__ import annotations

import inspect

import numpy as np

from .failures import ORACLES, Failure
from .programs import Program, Run, diff_inputs, dims_at, grad_targets
from .surface import DTYPES, FUNCS, python_control, torch_side


def _literal(array: np.ndarray) -> str:
    array = np.asarray(array)
    if array.size == 0:  # (before bool: an empty list loses the shape)
        return f"np.zeros({array.shape}, {str(array.dtype)!r})"
    if array.dtype == np.bool_:
        return f"np.array({array.tolist()!r}, bool)"
    return f"np.array({array.tolist()!r}, {str(array.dtype)!r})"


def _torch_source(prog: Program) -> str:
    return torch_side(prog.source("torch_program"))


HEADER = """\
import numpy as np
from types import SimpleNamespace
import staticgraph as sg
import eager
from staticgraph.ops import functional as shared
nan, inf = float("nan"), float("inf")
FUNCS = {funcs!r}
DTYPES = {dtypes!r}
CONTROL = dict(cond=sg.cond, while_loop=sg.while_loop, scan=sg.scan)
G = SimpleNamespace(**{{n: getattr(shared, n) for n in FUNCS}}, tensor=sg.constant,
                    assign=sg.assign, **CONTROL, **{{d: np.dtype(d) for d in DTYPES}})
E = SimpleNamespace(**{{n: getattr(shared, n) for n in FUNCS}}, tensor=eager.tensor,
                    assign=lambda v, x: x.to(v.dtype), **CONTROL,
                    **{{d: np.dtype(d) for d in DTYPES}})
"""
TORCH_HEADER = """\
import torch
import torch.nn.functional as tf
""" + inspect.getsource(python_control) + """\
T = SimpleNamespace(gelu=tf.gelu, layer_norm=tf.layer_norm, cross_entropy=tf.cross_entropy,
                    mse_loss=tf.mse_loss, linear=tf.linear, cat=torch.cat, stack=torch.stack,
                    where=torch.where, softmax=torch.softmax, log_softmax=torch.log_softmax,
                    softplus=tf.softplus, relu=torch.relu, tensor=torch.tensor,
                    assign=lambda v, x: x.to(v.dtype), **vars(python_control(torch.stack)),
                    **{d: getattr(torch, d) for d in DTYPES})
def torch_tensor(a, requires_grad=False):  # torch.tensor refuses negative strides: a copy
    return torch.tensor(np.array(a), requires_grad=requires_grad)
"""
LAYOUT = """\
def fed(run, name):  # a fresh copy of a feed, in the fuzzer's layout (some not contiguous)
    a, layout = run["feeds"][name].copy(), LAYOUT.get(name, "c")
    if a.ndim == 0 or layout == "c":
        return a
    return {"f": np.asfortranarray, "T": lambda a: np.ascontiguousarray(a.T).T,
            "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
            "reversed": lambda a: np.flip(np.flip(a, 0).copy(), 0)}[layout](a)
"""
DIFFERENCES = """\
def differences(x, y, path=""):  # print where two results differ
    if isinstance(x, (str, Exception)) or isinstance(y, (str, Exception)):
        print("  ", path or "run", ":", x if isinstance(x, (str, Exception)) else "values", "|",
              y if isinstance(y, (str, Exception)) else "values")
    elif isinstance(x, dict):
        for k in x:
            differences(x[k], y.get(k), f"{path}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        for i, (a, b) in enumerate(zip(x, y)):
            differences(a, b, f"{path}[{i}]")
    elif x is None or y is None:
        if x is not None or y is not None:
            print("  ", path, ":", x, "|", y)
    else:
        a, b = np.asarray(x), np.asarray(y)
        if a.shape != b.shape or a.dtype != b.dtype or not np.allclose(
                a, b, rtol=1e-7, atol=1e-9, equal_nan=True):
            print("  ", path, ":", a.dtype, a.shape, a.ravel()[:6], "|", b.dtype, b.shape,
                  b.ravel()[:6])
"""
COT = """\
def cot(run, name, dtype):  # the fuzzer's cotangents and second-order directions
    shape = run["shapes"][name]
    return np.random.default_rng([run["seed"], *name.encode()]).standard_normal(shape).astype(dtype)
"""


def reproducer(prog: Program, runs: list[Run], failure: Failure, pipeline) -> str:
    oracle = failure.oracle
    tensor_side = oracle in ("b", "c") or (oracle == "w" and failure.pipeline is None)
    lines = [f"# fuzz failure ({oracle}) {ORACLES[oracle]}: {failure.kind} at {failure.label}",
             f"#   {failure.detail[:300]}",
             HEADER.format(funcs=FUNCS, dtypes=DTYPES)]
    if oracle == "c":
        lines.append(TORCH_HEADER)
    lines.append(DIFFERENCES)
    lines.append(prog.source())
    if oracle == "c" and _torch_source(prog) != prog.source("torch_program"):
        lines.append("# KNOWN_DIFFERENCES['max_dim_ties']: torch runs amax/amin for max/min(dim)")
        lines.append(_torch_source(prog))
    layouts = {i.name: i.layout for i in prog.inputs if i.layout != "c" and not i.variable}
    lines.append(f"LAYOUT = {layouts!r}")
    lines.append(LAYOUT)
    targets, diffs = grad_targets(prog), diff_inputs(prog)
    grads = bool(prog.grad and targets and diffs)
    if grads:
        lines.append(COT)
    lines.append("runs = [")
    for run in runs:
        items = []
        for i in prog.inputs:
            if i.variable:
                continue
            lit = _literal(run.feeds[i.name])
            items.append(f"{i.name!r}: {lit}")
        entry = f"    dict(seed={run.seed}, feeds={{" + ",\n                 ".join(items) + "}"
        if grads:
            shapes = {t: dims_at(prog.info[t].shape, run.batch) for t in targets}
            shapes.update({"dir/" + i.name: i.dims(run.batch) for i in diffs})
            entry += f",\n         shapes={shapes!r}"
        lines.append(entry + "),")
    lines.append("]")
    states = ", ".join(f"{i.name!r}: {_literal(i.init)}" for i in prog.inputs if i.variable)
    lines.append(f"INITIAL = {{{states}}}  # Variables' initial values")
    if tensor_side:
        lines += _tensor_mode_source(prog, grads, targets, diffs, oracle)
    if oracle != "c" and not (oracle == "w" and failure.pipeline is None):
        lines += _graph_source(prog, grads, targets, diffs, oracle, pipeline or failure.pipeline)
    return "\n".join(lines) + "\n"


def _tensor_mode_source(prog, grads, targets, diffs, oracle):
    out = ["def run_tensors(F, tensor, grad, program, run, state):"]
    args = []
    for i in prog.inputs:
        src = f"state[{i.name!r}]" if i.variable else f"fed(run, {i.name!r})"
        args.append(f"tensor({src}, requires_grad={i.differentiable})")
    out.append(f"    xs = [{', '.join(args)}]")
    out.append("    outs = program(F, *xs)")
    out.append("    result = {'out': [o.detach().numpy() for o in outs],")
    out.append("              'requires_grad': [o.requires_grad for o in outs]}")
    for op in prog.ops:
        if op.tag == "assign" and op.out in prog.outputs:
            out.append(f"    state[{op.args[0]!r}] = "
                       f"outs[{prog.outputs.index(op.out)}].detach().numpy()")
    if grads:
        ti = [prog.outputs.index(t) for t in targets]
        out.append(f"    ys = [(outs[k], name) for k, name in zip({ti}, {targets!r}) "
                   "if outs[k].requires_grad]")
        out.append("    cots = [tensor(cot(run, name, str(y.dtype).replace('torch.', ''))) "
                   "for y, name in ys]")
        out.append(f"    diffs = [xs[k] for k in {[prog.inputs.index(i) for i in diffs]}]")
        out.append(f"    gs = grad([y for y, _ in ys], diffs, grad_outputs=cots, "
                   f"create_graph={prog.grad2}, allow_unused=True) if ys else [None] * "
                   "len(diffs)")
        out.append("    result['grad'] = [None if g is None else g.detach().numpy() for g in gs]")
        if prog.grad2:
            names = [i.name for i in diffs]
            out.append(f"    terms = [(g * tensor(cot(run, 'dir/' + n, str(g.dtype).replace("
                       f"'torch.', '')))).sum() for g, n in zip(gs, {names!r}) if g is not None]")
            out.append("    s = sum(terms[1:], terms[0]) if terms else None")
            out.append("    hs = grad([s], diffs, allow_unused=True) if s is not None and "
                       "s.requires_grad else [None] * len(diffs)")
            out.append("    result['grad2'] = [None if h is None else h.detach().numpy() "
                       "for h in hs]")
    out.append("    return result")
    out.append("")
    modes = [("eager", "E", "eager.tensor", "eager.autograd.grad", "program")]
    if oracle == "c":
        fn = "torch_program" if _torch_source(prog) != prog.source("torch_program") \
            else "program"
        modes.append(("torch", "T", "torch_tensor", "torch.autograd.grad", fn))
    for mode, var, tensor, grad, fn in modes:
        out += [f"state, {mode}_results = dict(INITIAL), []",
                "for run in runs:",
                "    try:",
                f"        {mode}_results.append(run_tensors({var}, {tensor}, {grad}, {fn}, run, "
                "state))",
                "    except Exception as error:",
                f"        {mode}_results.append(f'{{type(error).__name__}}: {{error}}')"]
    if oracle == "c":
        out += ["for r, (e, t) in enumerate(zip(eager_results, torch_results)):",
                "    print(f'run {r}: eager | torch differ at')",
                "    differences(e, t)"]
    return out


def _graph_source(prog, grads, targets, diffs, oracle, pipeline):
    names = ", ".join(i.name for i in prog.inputs)
    out = ["", "g = sg.Graph()", "with g.as_default():"]
    for i in prog.inputs:
        if i.variable:
            out.append(f"    {i.name} = sg.Variable(INITIAL[{i.name!r}], name={i.name!r})")
        else:
            out.append(f"    {i.name} = sg.placeholder({i.placeholder_shape}, {i.dtype!r}, "
                       f"name={i.name!r})")
    out.append(f"    outs = program(G, {names})")
    out.append("    fetches = list(outs)")
    if grads:
        ti = [prog.outputs.index(t) for t in targets]
        out.append(f"    cots = {{name: sg.placeholder(tuple(None for _ in outs[k].shape), "
                   f"outs[k].dtype) for k, name in zip({ti}, {targets!r})}}")
        out.append(f"    diffs = [{', '.join(i.name for i in diffs)}]")
        out.append(f"    gs = sg.gradients([outs[k] for k in {ti}], diffs, "
                   "grad_ys=list(cots.values()))")
        out.append("    fetches += [g_ for g_ in gs if g_ is not None]")
        if prog.grad2:
            out.append("    dirs = {'dir/' + x.name: sg.placeholder(tuple(None for _ in x.shape),"
                       " x.dtype) for x, g_ in zip(diffs, gs) if g_ is not None}")
            out.append("    terms = [(g_ * dirs['dir/' + x.name]).sum() for x, g_ in "
                       "zip(diffs, gs) if g_ is not None]")
            out.append("    s = sum(terms[1:], terms[0])")
            out.append("    fetches += [h for h in sg.gradients(s, diffs) if h is not None]")
    out.append("")
    out.append("def feed(run):")
    pairs = ", ".join(f"{i.name}: fed(run, {i.name!r})" for i in prog.inputs
                      if not i.variable)
    out.append(f"    d = {{{pairs}}}")
    if grads:
        out.append("    d.update({c: cot(run, name, c.dtype) for name, c in cots.items()})")
        if prog.grad2:
            out.append("    d.update({c: cot(run, name, c.dtype) for name, c in dirs.items()})")
    out.append("    return d")
    out.append("")
    if oracle == "b":
        out += ["graph = sg.Session(g, backend='interpreter', passes=())",
                "for run, e in zip(runs, eager_results):",
                "    try:",
                "        print('graph:', graph.run(fetches, feed(run)))",
                "    except Exception as error:",
                "        print('graph:', f'{type(error).__name__}: {error}')",
                "    print('eager:', e)"]
        return out
    backend, passes = pipeline
    session = f"sg.Session(g, backend={backend!r}, passes={passes!r})"
    if oracle == "a":
        out += ["reference = sg.Session(g, backend='interpreter', passes=())",
                f"sess = {session}",
                "for r, run in enumerate(runs):",
                "    got = []",
                "    for s in (reference, sess):",
                "        try:",
                "            got.append(s.run(fetches, feed(run)))",
                "        except Exception as error:",
                "            got.append(f'{type(error).__name__}: {error}')",
                "    print(f'run {r}: interpreter passes=() | {sess.backend} passes={sess.passes} "
                "differ at')",
                "    differences(*got)"]
        return out
    if oracle == "f":
        seq = "[runs[0], runs[0]]" if not prog.has_variables else "runs[:2]"
        out += [f"seq = {seq}",
                f"plain, written = {session}, {session}",
                "expect = [plain.run(fetches, feed(run)) for run in seq]",
                "for v in written.run(fetches, feed(seq[0])):  # the user writes into results",
                "    if isinstance(v, np.ndarray) and v.size and v.flags.writeable:",
                "        v[...] = 7",
                "second = written.run(fetches, feed(seq[1]))",
                "for a, b in zip(expect[1], second):",
                "    print('same' if np.array_equal(a, b, equal_nan=a.dtype.kind == 'f') else "
                "'CHANGED', b, 'expected', a)"]
        return out
    out += [f"sess = {session}",
            "held = []",
            "for run in runs:",
            "    f = feed(run)",
            "    kept = {k: np.array(v, copy=True) for k, v in f.items()}",
            "    before = {v: sess._values.get(v) for v in g.variables}",
            "    got = sess.run(fetches, f)",
            "    held.append((got, [np.array(v, copy=True) for v in got]))",
            "    for k, v in f.items():",
            "        if not np.array_equal(kept[k], v, equal_nan=v.dtype.kind == 'f'):",
            "            print('feed', k.name, 'was written')",
            "    for i, a in enumerate(got):",
            "        for j, b in enumerate(got[:i]):",
            "            if np.shares_memory(a, b):",
            "                print('results', j, 'and', i, 'share memory')",
            "        for k, v in f.items():",
            "            if i < len(outs) and np.shares_memory(a, v):",
            "                print('result', i, 'shares memory with feed', k.name)",
            "        for var in g.variables:",
            "            for value in (before[var], sess._values.get(var)):",
            "                if value is not None and np.shares_memory(a, value):",
            "                    print('result', i, 'shares memory with Variable', var.name,",
            "                          'writable:', a.flags.writeable)",
            "for r, (got, copies) in enumerate(held):",
            "    for a, b in zip(got, copies):",
            "        if not np.array_equal(a, b, equal_nan=a.dtype.kind == 'f'):",
            "            print('the result of run', r, 'changed to', a, 'from', b)"]
    return out
