"""The error for what we lack: every layer type, field and enum value of a net definition that this
build does not know, each with its line and column, the Caffe fork that defines it where known, and what to do.

Protobuf's text parser stops at the first unknown field with a message that names neither the
layer nor the fork. `scan` instead walks the prototxt against the schema's descriptors (a small
tokenizer, not protobuf), skipping what it does not know, so one message lists everything:

    deploy.prototxt: 2 things in this net definition are not supported here (...):
      deploy.prototxt:12:3: layer 'rpn' (Proposal): unknown layer type 'Proposal' -- defined by ...
      deploy.prototxt:40:3: layer 'loss' (SmoothL1Loss): unknown field 'smooth_l1_loss_param' in ...

(one finding alone is one line).

formats.parse_text raises it where protobuf fails on a NetParameter; the Net raises it before
building when a layer's type is not registered (with lines where the net came from a file).
"""
import difflib
import os
import re
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor

from .errors import CaffeError
from .proto import caffe_pb2
from .registry import layer_types

_PLUGIN = "write it as a layer of your own (docs/adding-a-layer.md) or a pycaffe Python layer"

# Layer types other Caffe forks define that this build does not: the fork, and what to do.
FORK_TYPES = {
    "Proposal": ("py-faster-rcnn / R-FCN", "there it is a Python layer: use type: \"Python\" with python_param "
                 "{ module: \"rpn.proposal_layer\" layer: \"ProposalLayer\" } and the repository's lib/ on PYTHONPATH"),
    "SmoothL1Loss": ("py-faster-rcnn (caffe-fast-rcnn)", _PLUGIN),
    "VideoData": ("SSD (weiliu89/caffe)", _PLUGIN),
    "Reorg": ("YOLO ports (e.g. eric612/MobileNet-YOLO)", _PLUGIN),
    "Region": ("YOLO ports (e.g. eric612/MobileNet-YOLO)", _PLUGIN),
    "RegionLoss": ("YOLO ports (e.g. eric612/MobileNet-YOLO)", _PLUGIN),
    "Yolov3": ("YOLO ports (e.g. eric612/MobileNet-YOLO)", _PLUGIN),
    "Yolov3DetectionOutput": ("YOLO ports (e.g. eric612/MobileNet-YOLO)", _PLUGIN),
    "YoloDetectionOutput": ("YOLO ports (e.g. eric612/MobileNet-YOLO)", _PLUGIN),
    "CenterLoss": ("caffe-face (ydwen/caffe-face)", _PLUGIN),
    "DeformableConvolution": ("Deformable-ConvNets' caffe ports", _PLUGIN),
    "BoxAnnotatorOHEM": ("R-FCN (daijifeng001/caffe-rfcn)", _PLUGIN),
    "DenseImageData": ("SegNet (alexgkendall/caffe-segnet)", "feed the images with ImageData or an Input layer"),
}

# Fields other forks add: (message, field) -> (fork, what to do); message None: any message.
FORK_FIELDS = {
    ("LayerParameter", "smooth_l1_loss_param"): ("py-faster-rcnn (caffe-fast-rcnn)", _PLUGIN),
    ("LayerParameter", "video_data_param"): ("SSD (weiliu89/caffe)", _PLUGIN),
    ("LayerParameter", "reorg_param"): ("YOLO ports (e.g. eric612/MobileNet-YOLO)", _PLUGIN),
    ("LayerParameter", "region_loss_param"): ("YOLO ports (e.g. eric612/MobileNet-YOLO)", _PLUGIN),
    ("LayerParameter", "center_loss_param"): ("caffe-face (ydwen/caffe-face)", _PLUGIN),
    ("LayerParameter", "box_annotator_ohem_param"): ("R-FCN (daijifeng001/caffe-rfcn)", _PLUGIN),
    ("PoolingParameter", "ceil_mode"): ("BVLC/caffe PR #3057, used by SegNet and PSPNet ports",
                                        "write round_mode: FLOOR for ceil_mode: false (round_mode: CEIL is the default)"),
}

_TOKEN = re.compile(r"""(?P<space>\s+)|(?P<comment>\#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
                        |(?P<word>[-+]?[\w.]+)|(?P<punct>[{}<>\[\]:;,])|(?P<other>.)""", re.VERBOSE)
_CLOSE = {"{": "}", "<": ">", "[": "]"}


@dataclass
class Finding:
    where: tuple  # (line, column); (0, 0) where the net came without its text
    kind: str  # "type", "field" or "value"
    name: str
    message: str  # the message type the field was found in (or "LayerParameter" for a type)
    layer: tuple = None  # (name, type) of the enclosing layer, when inside one
    suggestion: str = ""


def _tokens(text):
    """(kind, text, (line, column)) of each token, both counted from 1."""
    line, line_start = 1, 0
    for match in _TOKEN.finditer(text):
        kind, value = match.lastgroup, match.group()
        if kind not in ("space", "comment"):
            yield kind, value, (line, match.start() - line_start + 1)
        if "\n" in value:
            line += value.count("\n")
            line_start = match.start() + value.rindex("\n") + 1


class _Scanner:
    def __init__(self, text):
        self.tokens = list(_tokens(text))
        self.pos = 0
        self.findings = []
        self.layers = []  # [name, type, where the type is] per layer

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None, None)

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def skip_separators(self):
        while self.peek()[1] in (";", ","):
            self.pos += 1

    def skip_value(self):
        """A field's value after its name: a block, a list, or one scalar (adjacent strings join)."""
        if self.peek()[1] == ":":
            self.pos += 1
        kind, value, _ = self.peek()
        if value in _CLOSE:
            depth = 0
            while self.pos < len(self.tokens):
                _, v, _ = self.take()
                depth += v in _CLOSE
                depth -= v in _CLOSE.values()
                if depth == 0:
                    break
        elif kind == "string":
            while self.peek()[0] == "string":
                self.pos += 1
        else:
            self.pos += 1

    def scalar(self):
        """The value of a scalar field (a list's values too), as (token kind, text) pairs."""
        if self.peek()[1] == ":":
            self.pos += 1
        values = []
        if self.peek()[1] == "[":
            self.pos += 1
            while self.peek()[1] not in ("]", None):
                kind, value, _ = self.take()
                if value != ",":
                    values.append((kind, value))
            self.pos += 1
        elif self.peek()[0] == "string":
            text = ""
            while self.peek()[0] == "string":
                text += self.take()[1][1:-1]
            values.append(("string", text))
        else:
            kind, value, _ = self.take()
            values.append((kind, value))
        return values

    def body(self, descriptor, layer=None, closing=None):
        while True:
            kind, name, where = self.peek()
            if name is None or name == closing:
                self.pos += name is not None
                return
            self.pos += 1
            if kind != "word":
                continue  # stray punctuation: protobuf's own error will say
            field = descriptor.fields_by_name.get(name)
            if field is None:
                self.note(Finding(where, "field", name, descriptor.name, suggestion=_close_match(
                    name, descriptor.fields_by_name)), layer)
                self.skip_value()
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                if self.peek()[1] == ":":
                    self.pos += 1
                opening = self.take()[1]
                child = layer
                if descriptor.name == "NetParameter" and name in ("layer", "layers"):
                    child = [None, None, where]  # name, type, where the type is
                    if name == "layer":  # V1 `layers` name their type by an enum, checked as a value
                        self.layers.append(child)
                self.body(field.message_type, child, _CLOSE.get(opening))
            else:
                for value_kind, value in self.scalar():
                    self.check_scalar(field, value_kind, value, where, descriptor, layer, name)
            self.skip_separators()

    def check_scalar(self, field, kind, value, where, descriptor, layer, name):
        if field.type == FieldDescriptor.TYPE_ENUM and kind == "word" and not value.lstrip("-").isdigit():
            if value not in field.enum_type.values_by_name:
                self.note(Finding(where, "value", value, f"{descriptor.name}.{name}", suggestion=_close_match(
                    value, field.enum_type.values_by_name)), layer)
        elif layer is not None and descriptor.name in ("LayerParameter", "V1LayerParameter"):
            if name == "name":
                layer[0] = value
            elif name == "type":
                layer[1], layer[2] = value, where

    def note(self, finding, layer):
        finding.layer = layer
        self.findings.append(finding)


def _close_match(name, known):
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    close = close or [k for k in known if k.lower() == name.lower()]
    return close[0] if close else ""


def scan(text: str, message=caffe_pb2.NetParameter):
    """Every unknown field, enum value and (for a net) registered-nowhere layer type of a
    prototxt, in file order."""
    scanner = _Scanner(text)
    scanner.body(message.DESCRIPTOR)
    known_types = set(layer_types())
    for layer in scanner.layers:
        if layer[1] is not None and layer[1] not in known_types:
            scanner.findings.append(Finding(layer[2], "type", layer[1], "LayerParameter", layer,
                                            _close_match(layer[1], known_types)))
    for finding in scanner.findings:
        if finding.layer is not None:
            finding.layer = tuple(finding.layer[:2])  # (name, type), complete now that the layer is read
    return sorted(scanner.findings, key=lambda f: f.where)


def describe(finding: Finding, source: str) -> str:
    where = f"{source}:{finding.where[0]}:{finding.where[1]}: " if finding.where[0] else f"{source}: "
    if finding.layer is not None:
        name, type_name = finding.layer
        where += f"layer '{name}'" + (f" ({type_name}): " if type_name else ": ")
    if finding.kind == "type":
        what, fork = f"unknown layer type '{finding.name}'", FORK_TYPES.get(finding.name)
    elif finding.kind == "field":
        what = f"unknown field '{finding.name}' in {finding.message}"
        fork = FORK_FIELDS.get((finding.message, finding.name))
    else:
        what, fork = f"unknown value '{finding.name}' for {finding.message}", None
    if fork is not None:
        return f"{where}{what} -- defined by {fork[0]}; {fork[1]}"
    if finding.suggestion:
        return f"{where}{what} -- did you mean '{finding.suggestion}'?"
    if finding.kind == "type":
        return f"{where}{what} -- not a BVLC Caffe type nor a known fork's; {_PLUGIN}"
    return f"{where}{what} -- not in BVLC Caffe's schema nor a known fork's; remove it"


def report(findings, source: str) -> CaffeError:
    """One line for one finding; for several, a first line saying how many, then one line each."""
    if len(findings) == 1:
        return CaffeError(describe(findings[0], source))
    lines = [f"{source}: {len(findings)} things in this net definition are not supported here "
             "(layer types, fields or values from Caffe forks, or typos):"]
    lines += ["  " + describe(f, source) for f in findings]
    return CaffeError("\n".join(lines))


def check_layer_types(net_param, source: str):
    """Raise the report when a layer of `net_param` has a type nothing registered; the findings,
    with their lines, come from the prototxt when `source` is one, else from the layers."""
    known = set(layer_types())
    if all(layer.type in known for layer in net_param.layer):
        return
    findings = []
    if os.path.isfile(source):
        with open(source, encoding="utf-8", errors="replace") as f:
            findings = scan(f.read())
    if not any(f.kind == "type" for f in findings):
        findings = [Finding((0, 0), "type", layer.type, "LayerParameter", (layer.name, layer.type),
                            _close_match(layer.type, known))
                    for layer in net_param.layer if layer.type not in known]
    raise report(findings, source)
