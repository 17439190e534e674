"""``eager.save`` / ``eager.load``, with ``torch.save`` / ``torch.load``'s call shapes, in a
format that holds only data, so loading never runs code (torch's pickles can).

A file is a zip archive: ``data.json`` describes the object (dicts, OrderedDicts, lists,
tuples, numbers, strings, None, and tensors by number) and ``tensors/<n>.npy`` holds tensor n,
read back with ``allow_pickle=False``. A tensor that appears twice in the object is stored
once and loads as one tensor; tensors that only share memory (views) load as copies.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections import OrderedDict
from typing import IO, Any

import numpy as np

from staticgraph.files import atomic_write
from staticgraph.ops import dtypes

from .nn.modules import Module, Parameter, _typename
from .tensor import Tensor, _check_device

__all__ = ["save", "load"]

FORMAT, VERSION = "eager.save", 1
_DESCRIPTION = "data.json"
_SUPPORTED = ("tensors, numbers, strings, None, and dicts (OrderedDicts), lists and tuples of "
              "them")
_SCALARS = {bool: "bool", int: "int", float: "float", str: "str", type(None): "none"}
_SEQUENCES = {list: "list", tuple: "tuple"}

File = str | os.PathLike | IO[bytes]


# -- saving ------------------------------------------------------------------------------------
class _Encoder:
    """Turns an object into its JSON description, collecting its tensors' arrays."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self._numbers: dict[int, int] = {}  # id(tensor) -> its number, to store it once

    def encode(self, obj: Any, path: str) -> dict[str, Any]:
        kind = type(obj)
        if kind in _SCALARS:
            # floats as their repr: exact, and strict JSON has no nan or inf
            return {"kind": _SCALARS[kind], "value": repr(obj) if kind is float else obj}
        if kind in _SEQUENCES:
            return {"kind": _SEQUENCES[kind],
                    "items": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
        if kind in (dict, OrderedDict):
            return {"kind": "dict", "ordered": kind is OrderedDict,
                    "items": [[self._key(k, path), self.encode(v, f"{path}[{k!r}]")]
                              for k, v in obj.items()]}
        if kind in (Tensor, Parameter):
            return self._tensor(obj)
        hint = ": save its state_dict() instead" if isinstance(obj, Module) else ""
        raise TypeError(f"eager.save cannot store {path} (of type {_typename(obj)}); it "
                        f"stores {_SUPPORTED}{hint}")

    def _key(self, key: Any, path: str) -> dict[str, Any]:
        if type(key) not in _SCALARS:
            raise TypeError(f"eager.save cannot store a key of {path} of type "
                            f"{_typename(key)}; keys must be strings, numbers or None")
        return self.encode(key, path)

    def _tensor(self, t: Tensor) -> dict[str, Any]:
        number = self._numbers.get(id(t))
        if number is None:
            number = self._numbers[id(t)] = len(self.arrays)
            self.arrays.append(t._data)
        return {"kind": "tensor", "index": number, "requires_grad": t.requires_grad,
                "parameter": isinstance(t, Parameter)}


def _archive(obj: Any) -> bytes:
    encoder = _Encoder()
    description = {"format": FORMAT, "version": VERSION, "object": encoder.encode(obj, "obj")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(_DESCRIPTION, json.dumps(description, allow_nan=False))
        for number, array in enumerate(encoder.arrays):
            with archive.open(f"tensors/{number}.npy", "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def save(obj: Any, f: File) -> None:
    """Write ``obj`` to ``f``, a path or a binary file object. The object is encoded
    before anything is written, and a path is replaced whole (written beside it, then
    renamed), so a failure never leaves a partial file."""
    data = _archive(obj)
    if not isinstance(f, (str, os.PathLike)):
        f.write(data)
        return
    with atomic_write(f) as out:
        out.write(data)


# -- loading -----------------------------------------------------------------------------------
class _Unreadable(Exception):
    """What is wrong with the file; ``load`` says which file."""


def load(f: File, map_location: Any = None, *, weights_only: bool | None = None) -> Any:
    """Read what ``save`` wrote to ``f`` (a path or a binary file object). Only data is
    read, never code, so ``weights_only`` changes nothing; ``map_location`` may only name
    the CPU."""
    if map_location is not None:
        _check_device(map_location)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as stream:
            return _load(stream, os.fspath(f))
    return _load(f if f.seekable() else io.BytesIO(f.read()), getattr(f, "name", repr(f)))


def _load(stream: IO[bytes], name: str) -> Any:
    try:
        start = stream.tell()
        head = stream.read(4)
        stream.seek(start)
        if not head:
            raise _Unreadable("the file is empty")
        if head[:1] == b"\x80":
            raise _Unreadable("it is a Python pickle (an old torch.save file?), which "
                              "eager.load does not read: pickles can run code when loaded")
        if head != b"PK\x03\x04":
            raise _Unreadable("it is not a file written by eager.save (not a zip archive)")
        with zipfile.ZipFile(stream) as archive:
            return _Decoder(archive).decode_file()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, TypeError,
            _Unreadable) as exc:
        what = str(exc) if isinstance(exc, _Unreadable) else \
            f"the file is damaged or truncated ({type(exc).__name__}: {exc})"
        raise ValueError(f"cannot load {name}: {what}") from None


class _Decoder:
    """Rebuilds the object from ``data.json``, reading each tensor once."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self._tensors: dict[int, Tensor] = {}

    def decode_file(self) -> Any:
        names = self.archive.namelist()
        if _DESCRIPTION not in names:
            if any(n.endswith("data.pkl") for n in names):
                raise _Unreadable("it is a PyTorch checkpoint (torch.save's pickle archive); "
                                  "eager.load reads only files written by eager.save, which "
                                  "never run code when loaded. Load it with torch.load and "
                                  "save its tensors with eager.save, e.g. via "
                                  "eager.from_numpy(t.numpy())")
            raise _Unreadable(f"it is a zip archive but not one written by eager.save (it "
                              f"has no {_DESCRIPTION})")
        description = json.loads(self.archive.read(_DESCRIPTION))
        if not isinstance(description, dict) or description.get("format") != FORMAT:
            raise _Unreadable(f"its {_DESCRIPTION} does not describe an eager.save file")
        if description.get("version") != VERSION:
            raise _Unreadable(f"it has format version {description.get('version')!r}; this "
                              f"eager reads version {VERSION}")
        return self.decode(description["object"])

    def decode(self, node: dict[str, Any]) -> Any:
        kind = node["kind"]
        if kind in ("bool", "int", "str", "none"):
            value = node["value"]
            if type(value) is not {"bool": bool, "int": int, "str": str,
                                   "none": type(None)}[kind]:
                raise _Unreadable(f"a {kind} holds {value!r}: the file is damaged")
            return value
        if kind == "float":
            return float(node["value"])
        if kind in ("list", "tuple"):
            items = [self.decode(item) for item in node["items"]]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            pairs = ((self.decode(k), self.decode(v)) for k, v in node["items"])
            return OrderedDict(pairs) if node["ordered"] else dict(pairs)
        if kind == "tensor":
            return self._tensor(node)
        raise _Unreadable(f"it describes an object of unknown kind {kind!r}: the file is "
                          "damaged or from a newer eager")

    def _tensor(self, node: dict[str, Any]) -> Tensor:
        number = node["index"]
        t = self._tensors.get(number)
        if t is not None:
            return t
        with self.archive.open(f"tensors/{number}.npy") as member:
            array = np.lib.format.read_array(member, allow_pickle=False)
        if array.dtype not in dtypes.SUPPORTED:
            raise _Unreadable(f"tensor {number} has dtype {array.dtype}, which eager does "
                              "not have")
        t = Parameter(Tensor._make(array), node["requires_grad"]) if node["parameter"] \
            else Tensor._make(array).requires_grad_(node["requires_grad"])
        self._tensors[number] = t
        return t
