"""A seeded mutation fuzzer over what nvcaffe_py reads: prototxt nets (parsed and built), solver
prototxts (parsed, validated, their nets built), .caffemodel and .caffemodel.h5 weights copied into
a net, .solverstate and .solverstate.h5 restored into a solver, Datum records decoded, and SSD's
AnnotatedDatum records decoded and augmented as AnnotatedData does.

    python tests/fuzz_inputs.py --seconds 600 --seed 7 --out DIR

Each input is a seed (built here: a net per conformance case of every layer type, the files a
small solver writes, Datums of each kind) changed by one to eight mutations (bit flips, bytes and
tokens inserted, ranges deleted, duplicated or spliced from another seed, numbers swapped for
edge values) and written to DIR/current.<ext> before it is read, so that a crash leaves it behind.
The only exception allowed out is CaffeError; any other is an escape, its input kept as
DIR/escape-N.<ext>; the slowest input of each target is kept as DIR/slowest.<ext>. DIR/report.json
gives, per target, the inputs tried, how they ended, the distinct outcomes (messages with their
numbers and quoted names blanked) and the longest time one input took. Run it under a memory
cap (tests/test_fuzz.py does): running out of it must also end in a CaffeError.

Layer types that read or write other files or import modules (Data, AnnotatedData, ImageData,
WindowData, HDF5Data, HDF5Output, Python) are not built: an input that has one counts as skipped.
"""
import argparse
import json
import os
import random
import re
import sys
import time
import traceback

import cv2
import numpy as np
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import nvcaffe_py as caffe  # noqa: E402  (after the path that finds net_helpers)
from nvcaffe_py import formats, hdf5_format, log  # noqa: E402
from nvcaffe_py.datum import array_to_datum, datum_to_array, parse_datum  # noqa: E402
from nvcaffe_py.errors import CaffeError  # noqa: E402
from nvcaffe_py.layers import batch_sampler  # noqa: E402
from nvcaffe_py.layers.annotated_data import parse_annotated_datum  # noqa: E402
from nvcaffe_py.layers.annotated_transform import Annotated, AnnotatedTransformer  # noqa: E402
from nvcaffe_py.proto import caffe_pb2  # noqa: E402
from nvcaffe_py.registry import builtin_layer_types, layer_class  # noqa: E402
from nvcaffe_py.solvers import get_solver  # noqa: E402

from net_helpers import MLP  # noqa: E402

UNBUILT_TYPES = {"Data", "AnnotatedData", "ImageData", "WindowData", "HDF5Data", "HDF5Output", "Python"}
EDGE_NUMBERS = ["0", "-1", "1", "2", "3", "7", "255", "65536", "2147483647", "2147483648", "-2147483649",
                "4294967296", "9223372036854775807", "18446744073709551616", "1e13", "1e38", "1e308", "-1e308",
                "nan", "inf", "-inf", "0.5", "-0.5", "1e-45"]
AUGMENTATION = ("mirror: true mean_value: 127 resize_param { height: 8 width: 8 } expand_param { max_expand_ratio: 2 } "
                "distort_param { brightness_prob: 1 brightness_delta: 32 hue_prob: 1 hue_delta: 18 } "
                "emit_constraint { emit_type: MIN_OVERLAP emit_overlap: 0.3 }")
# The fork's other resize and its noise, on every other input (FIT_SMALL_SIZE is left out: like
# the fork's, it may size an extreme image past any memory cap).
FITTED = ("resize_param { resize_mode: FIT_LARGE_SIZE_AND_PAD height: 8 width: 6 pad_mode: CONSTANT pad_value: 9 } "
          "noise_param { inverse: true posterize: true erode: true saltpepper: true "
          "saltpepper_param { fraction: 0.1 value: 255 } clahe: true }")
SAMPLER = "sampler { min_scale: 0.3 } sample_constraint { min_jaccard_overlap: 0.1 } max_trials: 5"
SOLVER = ('net_param {{ {net} }} base_lr: 0.01 lr_policy: "{policy}" gamma: 0.5 power: 0.75 stepsize: 3 '
          'stepvalue: 2 stepvalue: 4 max_iter: 6 momentum: 0.9 weight_decay: 0.0005 type: "{rule}" '
          'test_iter: 1 test_interval: 3 snapshot: 0 snapshot_after_train: false display: 0 delta: 1e-8 '
          'snapshot_prefix: "fuzz"')


# -- seeds ---------------------------------------------------------------------------------------
def case_net(type_name, case) -> str:
    """A net of an Input layer giving a conformance case's bottoms and the layer under test."""
    shapes = [spec.shape for spec in case.specs()]
    bottoms = [f"b{i}" for i in range(len(shapes))]
    text = ""
    if shapes:
        text += ('layer { name: "in" type: "Input" ' + "".join(f'top: "{b}" ' for b in bottoms) + "input_param { " +
                 "".join("shape { " + " ".join(f"dim: {d}" for d in shape) + " } " for shape in shapes) + "} }\n")
    tops = bottoms[:1] if case.in_place else [f"t{i}" for i in range(case.tops)]
    text += (f'layer {{ name: "x" type: "{type_name}" ' + "".join(f'bottom: "{b}" ' for b in bottoms) +
             "".join(f'top: "{t}" ' for t in tops) + f"{case.params} }}\n")
    return text


def net_seeds():
    seeds = [MLP.encode()]
    for type_name in builtin_layer_types():
        if type_name not in UNBUILT_TYPES:
            seeds += [case_net(type_name, case).encode() for case in layer_class(type_name).cases]
    return seeds


def dictionary():
    """Tokens mutations insert: field and enum names of the schema, layer types, edge numbers."""
    words = set(EDGE_NUMBERS) | {"{", "}", ":", '"', " ", "\n", 'bottom: "b0"', 'top: "b0"', 'top: "t0"', "layer {"}
    pending = [caffe_pb2.NetParameter.DESCRIPTOR, caffe_pb2.SolverParameter.DESCRIPTOR]
    seen = set()
    while pending:
        message = pending.pop()
        if message.full_name in seen:
            continue
        seen.add(message.full_name)
        for field in message.fields:
            words.add(field.name)
            if field.message_type is not None:
                pending.append(field.message_type)
            if field.enum_type is not None:
                words.update(value.name for value in field.enum_type.values)
    words.update(f'"{t}"' for t in builtin_layer_types() if t not in UNBUILT_TYPES)
    return sorted(words)


class Target:
    """Seed inputs, the file extension they are written with, run(path) that reads one, and the
    protobuf message its files hold (None: not protobuf), as text or binary."""

    def __init__(self, seeds, extension, run, schema=None, text=False):
        self.seeds, self.extension, self.run, self.schema, self.text = seeds, extension, run, schema, text

    def mutated(self, rng, bytes_mutator, message_mutator) -> bytes:
        seed = rng.choice(self.seeds)
        if self.schema is None or rng.random() < 0.5:
            return bytes_mutator.mutate(seed, self.seeds)
        if self.text:
            message = message_mutator.mutate(text_format.Parse(seed.decode(), self.schema()))
            return text_format.MessageToString(message).encode()
        return message_mutator.mutate(self.schema.FromString(seed)).SerializePartialToString()


class Targets:
    """The targets by name (Target), and the net and solver that weights and states load into."""

    def __init__(self, directory):
        self.directory = directory
        self.net = caffe.Net(formats.net_param_from_text(MLP), caffe.TRAIN)
        solver_text = SOLVER.format(net=MLP.replace("\n", " "), policy="fixed", rule="SGD")
        self.solver = get_solver(formats.parse_text(solver_text, caffe_pb2.SolverParameter()))
        os.chdir(directory)
        fingerprint = self.net.save("w.caffemodel")
        h5_fingerprint = self.net.save_hdf5("w.caffemodel.h5")
        weights = open("w.caffemodel", "rb").read()
        v1 = caffe_pb2.NetParameter(name="v1")
        for layer in formats.read_caffemodel("w.caffemodel").layer:
            if layer.type == "InnerProduct":
                old = v1.layers.add(name=layer.name, type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
                old.blobs.extend(layer.blobs)
        state = caffe_pb2.SolverState(iter=3, learned_net="w.caffemodel", current_step=1,
                                      learned_net_sha256=fingerprint)
        for h in self.solver.history:
            formats.blob_to_proto(np.full(h.shape, 0.25, np.float32), proto=state.history.add())
        h5_state = caffe_pb2.SolverState()
        h5_state.CopyFrom(state)
        h5_state.learned_net, h5_state.learned_net_sha256 = "w.caffemodel.h5", h5_fingerprint
        hdf5_format.write_solver_state("seed.solverstate.h5", h5_state)
        image = np.random.default_rng(0).integers(0, 256, (3, 5, 6), dtype=np.uint8)
        encoded = [caffe_pb2.Datum(data=cv2.imencode(ext, image.transpose(1, 2, 0))[1].tobytes(), encoded=True,
                                   label=2) for ext in (".png", ".jpg")]
        NetParameter, SolverParameter, SolverState, Datum = (caffe_pb2.NetParameter, caffe_pb2.SolverParameter,
                                                             caffe_pb2.SolverState, caffe_pb2.Datum)
        self.by_name = {
            "net": Target(net_seeds(), "prototxt", self.build_net, NetParameter, text=True),
            "solver": Target([SOLVER.format(net=MLP.replace("\n", " "), policy=policy, rule=rule).encode()
                              for policy in ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
                              for rule in ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")],
                             "solver.prototxt", self.build_solver, SolverParameter, text=True),
            "caffemodel": Target([weights, v1.SerializeToString()], "caffemodel", self.net.copy_from, NetParameter),
            "weights_h5": Target([open("w.caffemodel.h5", "rb").read()], "caffemodel.h5", self.net.copy_from),
            "solverstate": Target([state.SerializeToString()], "solverstate", self.solver.restore, SolverState),
            "solverstate_h5": Target([open("seed.solverstate.h5", "rb").read()], "solverstate.h5",
                                     self.solver.restore),
            "datum": Target([array_to_datum(image, 1).SerializeToString(),
                             array_to_datum(image.astype(np.float32) / 7, 3).SerializeToString(),
                             *(d.SerializeToString() for d in encoded)], "datum", self.decode_datum, Datum),
            "annotated_datum": Target([annotated(d).SerializeToString() for d in [array_to_datum(image), *encoded]],
                                      "annotated_datum", self.augment_annotated_datum, caffe_pb2.AnnotatedDatum),
        }
        self.transformers = [AnnotatedTransformer(formats.parse_text(text, caffe_pb2.TransformationParameter()),
                                                  caffe.TRAIN) for text in (AUGMENTATION, FITTED)]
        self.augmented = 0
        self.sampler = formats.parse_text(SAMPLER, caffe_pb2.BatchSampler())

    @staticmethod
    def build_net(path):
        param = formats.read_net_param(path)
        if any(layer.type in UNBUILT_TYPES for layer in param.layer):
            return "skipped"
        for phase in (caffe.TRAIN, caffe.TEST):
            caffe.Net(param, phase=phase)
        return "built"

    @staticmethod
    def build_solver(path):
        param = formats.read_solver_param(path)
        nets = [param.net_param, param.train_net_param, *param.test_net_param]
        if any(layer.type in UNBUILT_TYPES for net in nets for layer in net.layer) or param.net or \
                param.train_net or param.test_net:  # file names: only the inline net is built
            return "skipped"
        get_solver(param)
        return "built"

    def augment_annotated_datum(self, path):
        sample = Annotated.from_record(parse_annotated_datum(open(path, "rb").read()))
        t = self.transformers[self.augmented % 2]
        self.augmented += 1
        sample = t.expand(t.distort(sample))
        for window in batch_sampler.generate_samples([self.sampler], sample.boxes, t.random)[:1]:
            sample = t.crop_to(sample, window)
        out = np.empty(t.output_shape(sample.image.shape), np.float32)
        return f"{len(t.transform(sample, out).label_rows(0))} boxes"

    @staticmethod
    def decode_datum(path):
        datum = parse_datum(open(path, "rb").read())
        for color in (None, True, False):
            datum_to_array(datum, color)
        return "decoded"


def annotated(datum):
    """An AnnotatedDatum of `datum` with three boxes in two groups."""
    record = caffe_pb2.AnnotatedDatum(datum=datum, type=caffe_pb2.AnnotatedDatum.BBOX)
    for label, boxes in ((1, [(0.1, 0.2, 0.5, 0.9), (0.0, 0.0, 1.0, 1.0)]), (3, [(0.6, 0.1, 0.9, 0.4)])):
        group = record.annotation_group.add(group_label=label)
        for k, (xmin, ymin, xmax, ymax) in enumerate(boxes):
            group.annotation.add(instance_id=k).bbox.CopyFrom(
                caffe_pb2.NormalizedBBox(xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, difficult=k == 1))
    return record


# -- mutations ------------------------------------------------------------------------------------
class Mutator:
    def __init__(self, rng, words):
        self.rng, self.words = rng, [w.encode() for w in words]

    def mutate(self, data: bytes, others) -> bytes:
        data = bytearray(data)
        for _ in range(self.rng.choice((1, 1, 1, 2, 2, 3, 5, 8))):
            getattr(self, self.rng.choice(self.OPERATIONS))(data, others)
        return bytes(data)

    def _at(self, data, end=False):
        return self.rng.randrange(len(data) + (1 if end else 0)) if data or end else 0

    def flip_bit(self, data, others):
        if data:
            data[self._at(data)] ^= 1 << self.rng.randrange(8)

    def set_byte(self, data, others):
        if data:
            data[self._at(data)] = self.rng.choice((0, 1, 0x7F, 0x80, 0xFF, self.rng.randrange(256)))

    def insert_word(self, data, others):
        at = self._at(data, end=True)
        data[at:at] = self.rng.choice(self.words)

    def insert_varint_field(self, data, others):
        """A protobuf field: a random tag, then a varint or a length and bytes."""
        field, wire = self.rng.randrange(1, 130), self.rng.choice((0, 2, 5, 1))
        at = self._at(data, end=True)
        payload = _varint(field << 3 | wire)
        if wire == 0:
            payload += _varint(self.rng.choice((0, 1, 2 ** 31, 2 ** 63, self.rng.randrange(2 ** 32))))
        elif wire == 2:
            length = self.rng.choice((0, 1, 8, 200, 2 ** 31 - 1, 2 ** 32 + 5))
            payload += _varint(length) + bytes(self.rng.randrange(256) for _ in range(min(length, 16)))
        else:
            payload += bytes(self.rng.randrange(256) for _ in range(4 if wire == 5 else 8))
        data[at:at] = payload

    def swap_number(self, data, others):
        numbers = list(re.finditer(rb"-?\d+(\.\d+)?(e-?\d+)?", data))
        if numbers:
            match = self.rng.choice(numbers)
            data[match.start():match.end()] = self.rng.choice(EDGE_NUMBERS).encode()

    def delete_range(self, data, others):
        if data:
            start = self._at(data)
            del data[start:start + self.rng.choice((1, 2, 4, 16, 64, 512))]

    def duplicate_range(self, data, others):
        if data:
            start = self._at(data)
            chunk = data[start:start + self.rng.choice((1, 4, 16, 64, 512))]
            at = self._at(data, end=True)
            data[at:at] = chunk

    def truncate(self, data, others):
        del data[self._at(data, end=True):]

    def splice(self, data, others):
        other = self.rng.choice(others)
        cut, other_cut = self._at(data, end=True), self.rng.randrange(len(other) + 1)
        data[cut:] = other[other_cut:]

    OPERATIONS = ("flip_bit", "set_byte", "insert_word", "insert_varint_field", "swap_number", "delete_range",
                  "duplicate_range", "truncate", "splice")


class MessageMutator:
    """Mutations of a parsed protobuf message: a field anywhere in it set to an edge value of its
    type, a repeated field grown, cut or cleared, a sub-message added. These keep prototxt and
    binary files well formed, so they reach the net builder and the readers' own checks."""

    EDGES = {
        "int": [0, -1, 1, 2, 3, 7, 255, 65536, 2 ** 31 - 1, -2 ** 31, 10 ** 6],
        "uint": [0, 1, 2, 3, 255, 65536, 2 ** 32 - 1],
        "int64": [0, -1, 1, 2, 10 ** 6, 10 ** 13, 2 ** 32, 2 ** 63 - 1, -2 ** 63],
        "uint64": [0, 1, 2, 10 ** 13, 2 ** 64 - 1],
        "float": [0.0, -1.0, 1.0, 0.5, 2.0, 1e-45, 1e38, -1e38, float("nan"), float("inf"), float("-inf")],
        "string": ["", "b0", "b1", "t0", "data", "label", "ip1", "loss", "x" * 300, "\u00e9t\u00e9", "a/b"],
    }
    KINDS = {FieldDescriptor.TYPE_INT32: "int", FieldDescriptor.TYPE_SINT32: "int",
             FieldDescriptor.TYPE_SFIXED32: "int", FieldDescriptor.TYPE_UINT32: "uint",
             FieldDescriptor.TYPE_FIXED32: "uint",
             FieldDescriptor.TYPE_INT64: "int64", FieldDescriptor.TYPE_SINT64: "int64",
             FieldDescriptor.TYPE_SFIXED64: "int64", FieldDescriptor.TYPE_UINT64: "uint64",
             FieldDescriptor.TYPE_FIXED64: "uint64", FieldDescriptor.TYPE_FLOAT: "float",
             FieldDescriptor.TYPE_DOUBLE: "float", FieldDescriptor.TYPE_STRING: "string"}

    def __init__(self, rng):
        self.rng = rng

    def mutate(self, message):
        for _ in range(self.rng.choice((1, 1, 2, 3, 5))):
            nodes = list(self._nodes(message))
            node = self.rng.choice(nodes)
            field = self.rng.choice(node.DESCRIPTOR.fields)
            try:
                self._change(node, field)
            except (ValueError, TypeError):  # a value the field's type refuses
                pass
        return message

    def _nodes(self, message):
        yield message
        for field, value in message.ListFields():
            if field.type == field.TYPE_MESSAGE:
                for item in ([value] if hasattr(value, "ListFields") else value):
                    yield from self._nodes(item)

    def _value(self, field):
        if field.type == field.TYPE_BOOL:
            return self.rng.random() < 0.5
        if field.type == field.TYPE_ENUM:
            return self.rng.choice(field.enum_type.values).number
        if field.type == field.TYPE_BYTES:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.choice((0, 1, 7, 64))))
        return self.rng.choice(self.EDGES[self.KINDS[field.type]])

    def _change(self, node, field):
        value = getattr(node, field.name)
        repeated = not isinstance(value, (bool, int, float, str, bytes)) and not hasattr(value, "ListFields")
        if field.type == field.TYPE_MESSAGE:
            if not repeated:
                value.SetInParent()
            elif value and self.rng.random() < 0.4:
                del value[self.rng.randrange(len(value))]
            else:
                added = value.add()
                if value and len(value) > 1 and self.rng.random() < 0.5:
                    added.CopyFrom(value[self.rng.randrange(len(value) - 1)])
            return
        if not repeated:
            setattr(node, field.name, self._value(field))
        elif value and self.rng.random() < 0.3:
            del value[self.rng.randrange(len(value)):]
        elif value and self.rng.random() < 0.5:
            value[self.rng.randrange(len(value))] = self._value(field)
        else:
            value.append(self._value(field))


def _varint(value) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# -- the loop -------------------------------------------------------------------------------------
def outcome_of(exc) -> str:
    """An error message with what varies from input to input blanked: quoted names, numbers."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", f"{type(exc).__name__}: {exc}")
    return re.sub(r"\d+(\.\d+)?", "#", text)[:200]


def run(seconds, seed, out):
    os.makedirs(out, exist_ok=True)
    out = os.path.abspath(out)
    log.logger.setLevel("ERROR")  # the targets' info and warning lines are not the point here
    targets = Targets(out)
    rng = random.Random(seed)
    mutator, message_mutator = Mutator(rng, dictionary()), MessageMutator(rng)
    report = {name: {"tried": 0, "ends": {}, "outcomes": {}, "escapes": [], "slowest_s": 0.0}
              for name in targets.by_name}
    names = list(targets.by_name)
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        for name in names:
            target = targets.by_name[name]
            data = target.mutated(rng, mutator, message_mutator)
            path = os.path.join(out, f"current.{target.extension}")
            with open(path, "wb") as f:
                f.write(data)
            with open(os.path.join(out, "current_target"), "w") as f:
                f.write(name)
            entry = report[name]
            entry["tried"] += 1
            started = time.monotonic()
            try:
                end = outcome = target.run(path) or "read"
            except CaffeError as exc:
                end, outcome = "CaffeError", outcome_of(exc)
            except BaseException as exc:  # noqa: BLE001  (an escape is what this looks for)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                end, outcome = "escape", outcome_of(exc)
                escaped = sum(len(e["escapes"]) for e in report.values())
                kept = os.path.join(out, f"escape-{escaped}.{target.extension}")
                os.replace(path, kept)
                entry["escapes"].append({"input": kept, "error": outcome,
                                         "traceback": traceback.format_exc(limit=-6)})
            took = round(time.monotonic() - started, 3)
            if took > entry["slowest_s"] and os.path.exists(path):
                entry["slowest_s"] = took
                os.replace(path, os.path.join(out, f"slowest.{target.extension}"))
            entry["ends"][end] = entry["ends"].get(end, 0) + 1
            entry["outcomes"][outcome] = entry["outcomes"].get(outcome, 0) + 1
    summary = {"seconds": seconds, "seed": seed, "tried": sum(e["tried"] for e in report.values()),
               "distinct_outcomes": sum(len(e["outcomes"]) for e in report.values()),
               "escapes": sum(len(e["escapes"]) for e in report.values()), "targets": report}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    summary = run(args.seconds, args.seed, args.out)
    print(f"{summary['tried']} inputs, {summary['distinct_outcomes']} distinct outcomes, {summary['escapes']} escapes")


if __name__ == "__main__":
    main()
