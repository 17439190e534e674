"""The OpenCL runtime: the compiled schedule as generated OpenCL C kernels (PoCL on the CPU,
any OpenCL GPU). ``Session(graph, backend="opencl", device="gpu" | "cpu" | index)``."""

from .device import (HOW_TO_GET_ONE, Device, DeviceArray, OpenCLUnavailable, devices,
                     get_device)
from .executable import OpenCLExecutable
from .placement import OpenCLAliasing, Placement, check_dtypes, place

__all__ = ["HOW_TO_GET_ONE", "Device", "OpenCLUnavailable", "devices", "get_device",
           "DeviceArray", "OpenCLAliasing", "OpenCLExecutable", "Placement", "check_dtypes",
           "place"]
