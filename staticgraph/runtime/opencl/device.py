"""Finding an OpenCL device, and the per-device things every compiled plan shares: one
context and queue, the C names of dtypes, and built programs (cached in memory here; pyopencl
keeps built binaries on disk, keyed by source and device, so a second process does not
rebuild)."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

import numpy as np

# Reductions may be summed in any order (numpy's pairwise sum is another order again): this
# lets the compiler vectorize a row's loop. NaN and inf are still honoured (no finite-math).
BUILD_OPTIONS = ["-cl-unsafe-math-optimizations"]

HOW_TO_GET_ONE = (
    "The OpenCL backend needs pyopencl and an OpenCL platform. On Debian or Ubuntu the "
    "system's PoCL runs OpenCL on the CPU: `sudo apt-get install pocl-opencl-icd` and "
    "`pip install -e '.[opencl]'`; or pip's own PoCL: `pip install 'pyopencl[pocl]'`. "
    "A GPU driver (NVIDIA, AMD, Intel) brings its own platform.")


class OpenCLUnavailable(RuntimeError):
    """No pyopencl, no OpenCL platform, or no device of the kind asked for."""


def _cl():
    try:
        import pyopencl
    except ImportError:
        raise OpenCLUnavailable("pyopencl is not installed. " + HOW_TO_GET_ONE) from None
    return pyopencl


# OpenCL C's name for each dtype a kernel can compute in (bool is a byte of 0 or 1, as numpy's)
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
           np.dtype(np.int8): "char", np.dtype(np.uint8): "uchar",
           np.dtype(np.int16): "short", np.dtype(np.uint16): "ushort",
           np.dtype(np.int32): "int", np.dtype(np.uint32): "uint",
           np.dtype(np.int64): "long", np.dtype(np.uint64): "ulong",
           np.dtype(np.bool_): "uchar"}


_lock = threading.Lock()


@dataclass(eq=False)
class Device:
    """One OpenCL device with its context, its queue and the programs built for it (each
    source once per process)."""

    cl_device: object
    context: object
    queue: object
    programs: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        d = self.cl_device
        return f"{d.name.strip()} ({d.platform.name.strip()}, {self.kind})"

    @property
    def kind(self) -> str:
        return "gpu" if self.cl_device.type & _cl().device_type.GPU else "cpu"

    @property
    def has_fp64(self) -> bool:
        return "cl_khr_fp64" in self.cl_device.extensions

    @property
    def shares_host_memory(self) -> bool:
        """A CPU device: a buffer over the caller's array is that array (no copy in or out)."""
        return bool(self.cl_device.host_unified_memory)

    @property
    def compute_units(self) -> int:
        return int(self.cl_device.max_compute_units)

    @property
    def max_group(self) -> int:
        return int(self.cl_device.max_work_group_size)

    def c_type(self, dtype: np.dtype) -> str | None:
        """The kernel type for ``dtype``, or None where kernels cannot compute in it."""
        dtype = np.dtype(dtype)
        if dtype == np.float64 and not self.has_fp64:
            return None
        return C_TYPES.get(dtype)

    def build(self, source: str):
        """The built program (one build per source in a process; pyopencl's cache on disk
        spares a second process the compiler too)."""
        program = self.programs.get(source)
        if program is None:
            cl = _cl()
            try:
                program = cl.Program(self.context, source).build(options=BUILD_OPTIONS)
            except cl.RuntimeError as exc:  # a bug of the code generator, never the user's
                raise RuntimeError(f"OpenCL build failed on {self.name}:\n{exc}\n"
                                   f"source:\n{source}") from None
            with _lock:
                self.programs[source] = program
        return program


class DeviceArray:
    """A Variable's value living in a device buffer. ``np.asarray`` reads it back."""

    def __init__(self, buffer, shape: tuple[int, ...], dtype: np.dtype, device: Device) -> None:
        self.buffer, self.shape, self.dtype, self.device = buffer, shape, np.dtype(dtype), device
        self._host: np.ndarray | None = None

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self._host is None:
            host = np.empty(self.shape, self.dtype)
            if host.size:
                _cl().enqueue_copy(self.device.queue, host, self.buffer)
            host.flags.writeable = False
            self._host = host
        if dtype is not None and np.dtype(dtype) != self.dtype:
            return self._host.astype(dtype)
        return self._host.copy() if copy else self._host

    def detach(self) -> None:
        """Keep the value on the host: its buffer is about to be written again."""
        np.asarray(self)
        self.buffer = None

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype.name}, {self.device.name})"


def devices() -> list:
    """Every OpenCL device of every platform, GPUs first."""
    cl = _cl()
    try:
        platforms = cl.get_platforms()
    except cl.Error:  # the ICD loader finds no platform at all
        platforms = []
    found = [d for p in platforms for d in p.get_devices()]
    return sorted(found, key=lambda d: not d.type & cl.device_type.GPU)


@functools.cache
def _device_at(cl_device) -> Device:
    cl = _cl()
    context = cl.Context([cl_device])
    return Device(cl_device, context, cl.CommandQueue(context))


def get_device(which: str | int | None = None) -> Device:
    """``"gpu"``, ``"cpu"``, an index into ``devices()``, or None: the first GPU, else the
    first device."""
    found = devices()
    if not found:
        raise OpenCLUnavailable("pyopencl finds no OpenCL platform. " + HOW_TO_GET_ONE)
    cl = _cl()
    if which is None:
        chosen = found[0]
    elif isinstance(which, int) and not isinstance(which, bool):
        if not 0 <= which < len(found):
            raise OpenCLUnavailable(f"OpenCL device index {which} is out of range: there are "
                                    f"{len(found)} ({_listing(found)})")
        chosen = found[which]
    elif which in ("gpu", "cpu"):
        kind = cl.device_type.GPU if which == "gpu" else cl.device_type.CPU
        matching = [d for d in found if d.type & kind]
        if not matching:
            raise OpenCLUnavailable(f"no OpenCL {which} device; there are: {_listing(found)}")
        chosen = matching[0]
    else:
        raise ValueError(f"device must be 'cpu', 'gpu', an index or None, got {which!r}")
    with _lock:
        return _device_at(chosen)


def _listing(found) -> str:
    return "; ".join(f"{k}: {d.name.strip()}" for k, d in enumerate(found))
