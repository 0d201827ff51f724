"""Read an ONNX file's interface (inputs, outputs, op domains) without loading its weights.

A published graph set is ~2.4 GB (HuBERT alone 1.46 GB); parsing it just to compare names and
shapes would cost seconds and gigabytes per check. An ONNX file is a protobuf ``ModelProto``, so
this walks the wire format over a memory map: it decodes the model's opset imports, the graph's
``input``/``output`` value infos and each node's ``op_type``/``domain``, and skips everything else
(initializers, i.e. the weights) by their length prefix. Small messages are decoded with the
``onnx`` package's own protobuf classes. ``session_io`` gives the same ``GraphIO`` from a loaded
ONNX Runtime session.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ONNX TensorProto.DataType values → numpy-style names.
ELEM_TYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "tensor(bfloat16)": "bfloat16",
}
_MODEL_GRAPH, _MODEL_OPSET = 7, 8
_GRAPH_NODE, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_INITIALIZER = 1, 11, 12, 5
_NODE_OP_TYPE, _NODE_DOMAIN = 4, 7

Shape = tuple[int | str | None, ...]


class OnnxReadError(ValueError):
    """The file is not a readable ONNX model."""


@dataclass(frozen=True, slots=True)
class TensorIO:
    name: str
    dtype: str
    shape: Shape | None  # None when the file declares no shape (rank unknown)


@dataclass(frozen=True, slots=True)
class GraphIO:
    inputs: tuple[TensorIO, ...]
    outputs: tuple[TensorIO, ...]
    ops: frozenset[tuple[str, str]]  # (domain, op_type) of every node
    opsets: dict[str, int]

    def input(self, name: str) -> TensorIO | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorIO | None:
        return next((t for t in self.outputs if t.name == name), None)


def _varint(buf: Any, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxReadError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxReadError("varint too long")


def _fields(buf: Any, start: int, end: int) -> Any:
    """Yield (field number, wire type, value start, value end) of each field in ``buf[start:end]``."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, after = _varint(buf, pos)
        elif wire == 1:
            after = pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            after = pos + length
        elif wire == 5:
            after = pos + 4
        else:
            raise OnnxReadError(f"unsupported protobuf wire type {wire}")
        if after > end:
            raise OnnxReadError("field runs past the end of its message (truncated file?)")
        yield number, wire, pos, after
        pos = after


def _tensor_io(raw: bytes) -> TensorIO:
    from onnx import ValueInfoProto

    info = ValueInfoProto.FromString(raw)
    tensor = info.type.tensor_type
    dtype = ELEM_TYPES.get(tensor.elem_type, f"elem_type {tensor.elem_type}")
    if not tensor.HasField("shape"):
        return TensorIO(info.name, dtype, None)
    dims: list[int | str | None] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(str(dim.dim_param))
        else:
            dims.append(None)
    return TensorIO(info.name, dtype, tuple(dims))


def _node_op(buf: Any, start: int, end: int) -> tuple[str, str]:
    op_type = domain = ""
    for number, wire, a, b in _fields(buf, start, end):
        if wire == 2 and number == _NODE_OP_TYPE:
            op_type = bytes(buf[a:b]).decode()
        elif wire == 2 and number == _NODE_DOMAIN:
            domain = bytes(buf[a:b]).decode()
    return domain, op_type


def _read(buf: Any) -> GraphIO:
    from onnx import OperatorSetIdProto

    inputs: list[TensorIO] = []
    outputs: list[TensorIO] = []
    initializers: set[str] = set()
    ops: set[tuple[str, str]] = set()
    opsets: dict[str, int] = {}
    found_graph = False
    for number, wire, a, b in _fields(buf, 0, len(buf)):
        if wire == 2 and number == _MODEL_OPSET:
            opset = OperatorSetIdProto.FromString(bytes(buf[a:b]))
            opsets[opset.domain] = int(opset.version)
        elif wire == 2 and number == _MODEL_GRAPH:
            found_graph = True
            for g_number, g_wire, ga, gb in _fields(buf, a, b):
                if g_wire != 2:
                    continue
                if g_number == _GRAPH_NODE:
                    ops.add(_node_op(buf, ga, gb))
                elif g_number == _GRAPH_INPUT:
                    inputs.append(_tensor_io(bytes(buf[ga:gb])))
                elif g_number == _GRAPH_OUTPUT:
                    outputs.append(_tensor_io(bytes(buf[ga:gb])))
                elif g_number == _GRAPH_INITIALIZER:
                    initializers.add(_initializer_name(buf, ga, gb))
    if not found_graph:
        raise OnnxReadError("no graph in the file")
    # Old exporters list weights among the inputs too; they are not inputs the farm must feed.
    real_inputs = tuple(t for t in inputs if t.name not in initializers)
    return GraphIO(real_inputs, tuple(outputs), frozenset(ops), opsets)


def _initializer_name(buf: Any, start: int, end: int) -> str:
    for number, wire, a, b in _fields(buf, start, end):
        if number == 8 and wire == 2:  # TensorProto.name
            return bytes(buf[a:b]).decode()
    return ""


def read_graph_io(path: Path) -> GraphIO:
    """The interface of the ONNX model at ``path``; raises OnnxReadError when it cannot be parsed."""
    try:
        with path.open("rb") as handle:
            if path.stat().st_size == 0:
                raise OnnxReadError("the file is empty")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _read(buf)
    except OnnxReadError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise OnnxReadError(f"not a readable ONNX file: {exc}") from exc
    except Exception as exc:  # protobuf's DecodeError is not a ValueError
        raise OnnxReadError(f"not a readable ONNX file: {type(exc).__name__}: {exc}") from exc


def session_io(session: Any) -> GraphIO:
    """The interface of a loaded ``onnxruntime.InferenceSession`` (ops unknown: empty)."""

    def convert(arg: Any) -> TensorIO:
        dims = tuple(d if isinstance(d, int | str) else None for d in arg.shape)
        return TensorIO(arg.name, ORT_TYPES.get(arg.type, arg.type), dims)

    return GraphIO(
        tuple(convert(a) for a in session.get_inputs()),
        tuple(convert(a) for a in session.get_outputs()),
        frozenset(),
        {},
    )
