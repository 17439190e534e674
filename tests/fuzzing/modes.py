"""Running a program in each mode: as a graph through one compiler pipeline, and in eager or
torch (float64 where the program says so), each run's results as numpy arrays."""

from __future__ import annotations

import warnings

import numpy as np

import eager
import staticgraph as sg
from staticgraph.passes import DEFAULT_PASSES, PASSES

from .failures import Failure, Raised, norm
from .graph import GraphBuild, graph_feeds
from .memory import check_held, check_run
from .programs import Program, Run, cotangent, diff_inputs, grad_targets, laid_out
from .surface import EAGER_F, TORCH_F, torch

REFERENCE = ("interpreter", ())
FIXED_PIPELINES = [("numpy", ()), *[("numpy", (p,)) for p in PASSES], ("numpy", ("plan_memory",)),
                   ("numpy", ("cse", "fuse", "plan_memory")), ("numpy", tuple(DEFAULT_PASSES)),
                   ("interpreter", tuple(DEFAULT_PASSES))]
WRITE_PIPELINES = [("numpy", ("plan_memory",)), ("numpy", tuple(DEFAULT_PASSES))]


def random_orders(rng: np.random.Generator, n: int) -> list:
    """``n`` pipelines on the numpy backend: the passes and plan_memory in random orders, some
    cut short, some with a pass run twice."""
    names = [*PASSES, "plan_memory"]
    out = []
    for _ in range(n):
        order = [names[k] for k in rng.permutation(len(names))]
        if rng.random() < 0.4:
            order = order[:int(rng.integers(1, len(order)))]
        if rng.random() < 0.3:
            order = order + [str(rng.choice(names[:-1]))]
        out.append(("numpy", tuple(order)))
    return out


def _np(value):
    """A tensor's value as a numpy array of its own."""
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach()
        if value._is_zerotensor():  # torch's lazy zeros: reading their memory crashes
            return np.zeros(tuple(value.shape), str(value.dtype).removeprefix("torch."))
        return value.numpy(force=True).copy()
    if isinstance(value, eager.Tensor):
        return np.array(value.detach().numpy())
    return value


def run_tensor_mode(prog: Program, runs: list[Run], mode: str) -> list:
    """eager or torch: each run's {label: array} or Raised; Variables carried between runs."""
    if mode == "torch":
        F, grad = TORCH_F, torch.autograd.grad

        def make(a, rg):  # torch.tensor refuses negative strides: torch gets a copy
            return torch.tensor(np.array(a), requires_grad=rg)
    else:
        F, make, grad = EAGER_F, (lambda a, rg: eager.tensor(a, requires_grad=rg)), \
            eager.autograd.grad
    fn = prog.function(for_torch=mode == "torch")
    state = {i.name: i.init for i in prog.inputs if i.variable}
    assigns = {op.out: op.args[0] for op in prog.ops if op.tag == "assign"}
    results = []
    targets, diffs = grad_targets(prog), diff_inputs(prog)
    for run in runs:
        phase = "forward"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                xs = [make(laid_out(run.feeds[i.name].copy(), i.layout) if not i.variable
                           else state[i.name], i.differentiable) for i in prog.inputs]
                outs = fn(F, *xs)
                values = {("out", n): _np(o) for n, o in zip(prog.outputs, outs)}
                values[("requires_grad",)] = tuple(bool(o.requires_grad) for o in outs)
                if prog.grad and targets and diffs:
                    phase = "gradient"
                    by_name = dict(zip(prog.outputs, outs))
                    ys = [by_name[t] for t in targets if by_name[t].requires_grad]
                    cots = [make(cotangent(run, t, tuple(by_name[t].shape), prog.info[t].dtype),
                                 False) for t in targets if by_name[t].requires_grad]
                    dx = {i.name: xs[prog.inputs.index(i)] for i in diffs}
                    gs = [None] * len(diffs)
                    if ys:
                        gs = list(grad(ys, list(dx.values()), grad_outputs=cots,
                                       create_graph=prog.grad2, allow_unused=True))
                    for i, gv in zip(diffs, gs):
                        values[("grad", i.name)] = None if gv is None else _np(gv)
                    if prog.grad2:
                        phase = "second-order gradient"
                        s = None
                        for i, gv in zip(diffs, gs):
                            if gv is not None:
                                v = make(cotangent(run, "dir/" + i.name, tuple(gv.shape),
                                                   i.dtype), False)
                                term = (gv * v).sum()
                                s = term if s is None else s + term
                        hs = [None] * len(diffs)
                        if s is not None and s.requires_grad:
                            hs = list(grad([s], list(dx.values()), allow_unused=True))
                        for i, h in zip(diffs, hs):
                            values[("grad2", i.name)] = None if h is None else _np(h)
            if mode == "eager":
                numpy_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
                if numpy_warnings:
                    values[("warning",)] = str(numpy_warnings[0].message)
        except Exception as error:  # noqa: BLE001 - any error is an outcome
            results.append(Raised(error, phase))
            continue
        for out, var in assigns.items():
            if ("out", out) in values:
                state[var] = np.asarray(values[("out", out)])
        results.append(values)
    return results


def run_graph_pipeline(prog: Program, build: GraphBuild, runs: list[Run], pipeline: tuple,
                       failures: list) -> list:
    """Each run's {label: array} or Raised, on one Session; oracles (w), (d) and (e) checked on
    the way, into ``failures``."""
    if build.error is not None:
        return [build.error] * len(runs)
    backend, passes = pipeline
    try:
        sess = sg.Session(build.graph, backend=backend, passes=passes, debug=True)
    except Exception as error:  # noqa: BLE001
        return [Raised(error, "Session")] * len(runs)
    results, held = [], []
    for r, run in enumerate(runs):
        feeds = graph_feeds(prog, build, run)
        feed_copies = {n: np.array(a, copy=True) for n, a in feeds.items()}
        old_vars = dict(getattr(sess, "_values", {}))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                values = sess.run(build.fetches, feeds)
        except Exception as error:  # noqa: BLE001
            results.append(Raised(error, "run"))
            continue
        out = dict(zip(build.labels, values))
        runtime_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        if runtime_warnings:
            failures.append(Failure("w", "warning", "run", str(runtime_warnings[0].message),
                                    pipeline, r, norm(str(runtime_warnings[0].message))))
        results.append({k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                        for k, v in out.items()})
        held.append((r, out, {k: np.array(v, copy=True) for k, v in out.items()}))
        failures.extend(check_run(prog, build, pipeline, r, feeds, feed_copies, out, old_vars,
                                  getattr(sess, "_values", {})))
    failures.extend(check_held(held, pipeline))
    return results
