"""The ONNX graph under construction (`OnnxGraph`) and the view of it that one layer's translation
writes through (`LayerGraph`).

Nodes are kept as plain records until `to_model`, so that the exporter can rename values once
the whole net is translated (a blob's last value takes the blob's name). Every shape is static:
the net's own blob shapes. Only `to_model` imports onnx (the optional `[onnx]` extra).
"""
from dataclasses import dataclass

import numpy as np

from .onnx_translation import refusal

FLOAT = np.float32
# onnx.TensorProto's element types, for Cast (Caffe's blobs are float; indices are int64 in ONNX).
TENSOR_FLOAT, TENSOR_INT64 = 1, 7


@dataclass
class Node:
    op_type: str
    inputs: list
    outputs: list
    name: str
    attributes: dict


class OnnxGraph:
    """Nodes, initializers and graph inputs, with value names unique across the graph."""

    def __init__(self, opset: int, reserved=()):
        self.opset = opset
        self.nodes = []
        self.initializers = {}  # name -> ndarray
        self.inputs = []  # (name, shape)
        self.shapes = {}  # value name -> static shape, for value_info
        self._reserved = set(reserved)  # Caffe blob names: given out only by claim()
        self._taken = set()

    def unique(self, hint: str) -> str:
        name, k = hint, 1
        while name in self._taken or name in self._reserved:
            name, k = f"{hint}_{k}", k + 1
        self._taken.add(name)
        return name

    def claim(self, blob_name: str) -> str:
        """The blob's own (reserved) name for a value, or a variant once that is taken (an input
        blob that an in-place layer overwrites ends under a variant)."""
        if blob_name in self._taken:
            return self.unique(blob_name)
        self._taken.add(blob_name)
        return blob_name

    def add_node(self, op_type, inputs, outputs, hint, attributes) -> list:
        """A node with `outputs` new values (a count: named after `hint`; or a list of names)."""
        if isinstance(outputs, int):
            outputs = [self.unique(f"{hint}:{k}" if outputs > 1 else hint) for k in range(outputs)]
        self.nodes.append(Node(op_type, list(inputs), outputs, self.unique(f"{hint}#node"), attributes))
        return outputs

    def add_initializer(self, array: np.ndarray, hint: str) -> str:
        name = self.unique(hint)
        self.initializers[name] = array
        return name

    def add_input(self, name: str, shape) -> str:
        self.inputs.append((name, tuple(shape)))
        return name

    def produced_since(self, first_node: int, value: str) -> bool:
        return any(value in node.outputs for node in self.nodes[first_node:])

    def rename(self, mapping: dict):
        """Rename values made by nodes (old name -> new name) wherever they are read."""
        for node in self.nodes:
            node.inputs = [mapping.get(v, v) for v in node.inputs]
            node.outputs = [mapping.get(v, v) for v in node.outputs]
        self.shapes = {mapping.get(v, v): shape for v, shape in self.shapes.items()}

    def to_model(self, outputs, name: str, producer_version: str):
        """The onnx.ModelProto; `outputs` are (value name, shape) of the graph outputs."""
        import onnx
        from onnx import helper, numpy_helper

        def value_info(value, shape):
            return helper.make_tensor_value_info(value, onnx.TensorProto.FLOAT, list(shape))

        graph_io = {v for v, _ in self.inputs} | {v for v, _ in outputs}
        graph = helper.make_graph(
            [helper.make_node(n.op_type, n.inputs, n.outputs, name=n.name, **n.attributes) for n in self.nodes],
            name,
            [value_info(v, shape) for v, shape in self.inputs],
            [value_info(v, shape) for v, shape in outputs],
            initializer=[numpy_helper.from_array(array, n) for n, array in self.initializers.items()],
            value_info=[value_info(v, shape) for v, shape in self.shapes.items() if v not in graph_io])
        opset = helper.make_opsetid("", self.opset)
        model = helper.make_model(graph, opset_imports=[opset], producer_name="nvcaffe_py",
                                  producer_version=producer_version)
        # The oldest IR version that carries this opset, so that older runtimes load the model.
        model.ir_version = helper.find_min_ir_version_for([opset])
        return model


class LayerGraph:
    """What a translation sees: its layer's bottoms as ONNX values with their static shapes, the
    shapes its tops must have, and ways to add nodes and constants named after the layer."""

    def __init__(self, graph: OnnxGraph, layer, bottoms, bottom_shapes, top_shapes, top_names):
        self.graph, self.layer = graph, layer
        self.bottoms = list(bottoms)
        self.bottom_shapes = [tuple(s) for s in bottom_shapes]
        self.top_shapes = [tuple(s) for s in top_shapes]
        self.top_names = list(top_names)

    def declare_top_shape(self, j: int, shape):
        """Top j's shape as the model gives it where that differs from the net's: a dimension known
        only when the model runs is a name (DetectionOutput's count of detections)."""
        self.top_shapes[j] = tuple(shape)

    @property
    def opset(self) -> int:
        return self.graph.opset

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes):
        """Add a node; its output value (a list of them when outputs > 1)."""
        values = self.graph.add_node(op_type, inputs, outputs, f"{self.layer.name}/{op_type}", attributes)
        return values if outputs > 1 else values[0]

    def constant(self, array, what: str) -> str:
        """A float32 initializer named after the layer (weights, broadcast operands, scalars)."""
        return self.graph.add_initializer(np.asarray(array, FLOAT), f"{self.layer.name}/{what}")

    def ints(self, values, what: str) -> str:
        """An int64 initializer of values' shape (shapes, axes, pads, sizes: 1-D lists)."""
        return self.graph.add_initializer(np.asarray(values, np.int64), f"{self.layer.name}/{what}")

    def input(self, j: int) -> str:
        """Top j as a graph input of its static shape."""
        return self.graph.add_input(self.graph.claim(self.top_names[j]), self.top_shapes[j])

    def cast_float(self, value: str) -> str:
        return self.op("Cast", value, to=TENSOR_FLOAT)

    def cast_int64(self, value: str) -> str:
        """Caffe's float indices as ONNX's int64 ones (truncated, as Caffe's casts do)."""
        return self.op("Cast", value, to=TENSOR_INT64)

    def reshape(self, value: str, shape, what="shape") -> str:
        return self.op("Reshape", value, self.ints(shape, what))

    def reduce(self, op_type: str, value: str, axes, keepdims: bool) -> str:
        """ReduceSum, ReduceMean, ...: their axes are an input from opset 18 on (ReduceSum: 13)."""
        if self.opset >= 18 or op_type == "ReduceSum":
            return self.op(op_type, value, self.ints(axes, "axes"), keepdims=int(keepdims))
        return self.op(op_type, value, axes=list(axes), keepdims=int(keepdims))

    def refuse(self, why: str):
        """The error to raise for a configuration ONNX cannot express; it names the layer."""
        return refusal(self.layer, why)
