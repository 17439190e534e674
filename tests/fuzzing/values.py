"""Oracles (a), (b) and (c): one mode's results against another's, run by run, to a
tolerance for floats and exactly otherwise, raising or not alike."""

from __future__ import annotations

import numpy as np

from .failures import Failure, Raised, error_signature
from .programs import Program

TOLERANCE = {  # (rtol, atol relative to the reference's largest finite magnitude)
    "a": {"float64": (1e-10, 1e-12), "float32": (2e-4, 2e-5)},
    "b": {"float64": (1e-10, 1e-12), "float32": (2e-4, 2e-5)},
    "c": {"float64": (1e-7, 1e-9), "float32": (2e-3, 2e-4)},
}


def close(ref, got, oracle: str, low: bool, scale: float):
    """None if equal enough, else (kind, signature, detail)."""
    if ref is None and got is None:
        return None
    if ref is None or got is None:
        present = got if ref is None else ref
        if not np.any(np.asarray(present)):
            return None  # no gradient and a zero gradient are the same
        return ("value", "missing", f"{'reference' if ref is None else 'result'} is None, "
                "the other is not zero")
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return ("shape", "shape", f"shape {got.shape}, expected {ref.shape}")
    if ref.dtype != got.dtype:
        return ("dtype", f"{ref.dtype}->{got.dtype}", f"dtype {got.dtype}, expected {ref.dtype}")
    if ref.dtype.kind not in "fc":
        if np.array_equal(ref, got):
            return None
        bad = np.argwhere(ref != got)[0]
        return ("value", "exact", f"at {tuple(bad)}: {got[tuple(bad)]!r}, expected "
                f"{ref[tuple(bad)]!r}")
    rtol, atol = TOLERANCE[oracle]["float64" if ref.dtype == np.float64 and not low
                                   else "float32"]
    finite = np.isfinite(ref)
    if finite.any():  # the noise of a value near 0 is that of the run's largest values
        scale = max(scale, float(np.abs(ref[finite]).max()))
    ok = np.isclose(got, ref, rtol=rtol, atol=atol * scale, equal_nan=True)
    ok |= (ref == got)  # infinities
    if ok.all():
        return None
    bad = tuple(np.argwhere(~ok)[0])
    r, q = ref[bad], got[bad]
    sig = "nan" if np.isnan(r) != np.isnan(q) else "inf" if np.isinf(r) or np.isinf(q) \
        else "finite"
    return ("value", sig, f"at {bad}: {q!r}, expected {r!r} ({(~ok).sum()} of {ok.size} differ)")


def compare(ref_results: list, got_results: list, oracle: str, pipeline, ref_name: str,
            got_name: str, prog: Program) -> list[Failure]:
    """``got_results`` against ``ref_results`` (each run's {label: array} or Raised)."""
    failures = []
    every_grad = {(kind, i.name) for i in prog.inputs for kind in ("grad", "grad2")}
    low = {("out", n) for n in prog.outputs if prog.info[n].low}
    if any(i.low for i in prog.info.values()):
        low |= every_grad
    skip = set()
    if oracle == "c":  # see EXTREMUM_TAGS in generator.py
        skip = {("out", n) for n in prog.outputs if prog.info[n].fragile}
        if any(i.fragile for i in prog.info.values()):
            skip |= every_grad
    for r, (ref, got) in enumerate(zip(ref_results, got_results)):
        if isinstance(ref, Raised) and isinstance(got, Raised):
            continue
        if isinstance(got, Raised):
            failures.append(Failure(oracle, "raises", got.phase, f"{got_name} raised {got!r}; "
                                    f"{ref_name} did not", pipeline, r,
                                    error_signature(got)))
            continue
        if isinstance(ref, Raised):
            failures.append(Failure(oracle, "no-raise", ref.phase, f"{ref_name} raised {ref!r}; "
                                    f"{got_name} did not", pipeline, r,
                                    error_signature(ref)))
            continue
        if oracle == "c" and ref.get(("requires_grad",)) != got.get(("requires_grad",)):
            failures.append(Failure(oracle, "requires_grad", "out", f"requires_grad "
                                    f"{got.get(('requires_grad',))}, expected "
                                    f"{ref.get(('requires_grad',))}", pipeline, r, "rg"))
        labels = [k for k in {**ref, **got} if k[0] in ("out", "grad", "grad2")
                  and k not in skip]
        scale = 1.0
        for k in labels:
            v = ref.get(k)
            if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size:
                finite = v[np.isfinite(v)]
                if finite.size:
                    scale = max(scale, float(np.abs(finite).max()))
        for label in labels:
            problem = close(ref.get(label), got.get(label), oracle, label in low, scale)
            if problem is not None:
                kind, sig, detail = problem
                failures.append(Failure(oracle, kind, f"{label[0]} {label[1]}", detail,
                                        pipeline, r, sig))
                if kind != "value":
                    break
    return failures
