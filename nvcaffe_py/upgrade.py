"""Upgrade legacy Caffe net and solver definitions to the current schema.

Caffe has changed its prototxt format several times; files in every older
format are still in circulation (model zoo entries, papers' supplementary
material, old ``.caffemodel`` weights).  Caffe upgrades them silently on load,
and so do we.  The steps, applied in this order and each only when needed, are

1. **V0 -> V1**: ``layers { layer { type: "conv" kernelsize: 5 ... } }``, a
   single flat message per layer, becomes a V1 layer with typed ``*_param``
   sub-messages.  Standalone ``padding`` layers are folded into the
   convolution or pooling layer they feed.
2. **Data transformation**: ``scale``, ``mean_file``, ``crop_size`` and
   ``mirror`` inside ``data_param`` / ``image_data_param`` /
   ``window_data_param`` of V1 data layers move into ``transform_param``.
3. **V1 -> current**: ``layers { type: CONVOLUTION blobs_lr: 1 ... }`` becomes
   ``layer { type: "Convolution" param { lr_mult: 1 } ... }``.
4. **Input fields**: net-level ``input`` / ``input_shape`` / ``input_dim``
   become an ``Input`` layer placed first.
5. **BatchNorm**: old BatchNorm layers that declared three ``param`` specs
   (to freeze their statistics) get those specs' ``lr_mult`` and
   ``decay_mult`` set to zero, as the layer now does that itself.

For solvers, the legacy ``solver_type`` enum becomes the ``type`` string.

The semantics follow BVLC Caffe's ``src/caffe/util/upgrade_proto.cpp``.  Where
Caffe aborts (unknown layer type, dangling blob, conflicting fields) we raise
``CaffeError`` with a one-line message naming the source and the layer; where
Caffe only logs an error and carries on (a V0 setting that does not apply to
the layer's type) we log a warning (nvcaffe_py.log) and carry on too.
"""

from . import log
from .errors import CaffeError
from .proto import caffe_pb2

__all__ = [
    "net_needs_upgrade",
    "upgrade_net",
    "solver_needs_upgrade",
    "upgrade_solver",
    "V0_TO_V1_TYPE",
    "V1_TO_CURRENT_TYPE",
    "SOLVER_TYPE_NAMES",
]

_V1 = caffe_pb2.V1LayerParameter

# V0 type strings and the V1 enum value each one became.
V0_TO_V1_TYPE = {
    "accuracy": _V1.ACCURACY,
    "bnll": _V1.BNLL,
    "concat": _V1.CONCAT,
    "conv": _V1.CONVOLUTION,
    "data": _V1.DATA,
    "dropout": _V1.DROPOUT,
    "euclidean_loss": _V1.EUCLIDEAN_LOSS,
    "flatten": _V1.FLATTEN,
    "hdf5_data": _V1.HDF5_DATA,
    "hdf5_output": _V1.HDF5_OUTPUT,
    "im2col": _V1.IM2COL,
    "images": _V1.IMAGE_DATA,
    "infogain_loss": _V1.INFOGAIN_LOSS,
    "innerproduct": _V1.INNER_PRODUCT,
    "lrn": _V1.LRN,
    "multinomial_logistic_loss": _V1.MULTINOMIAL_LOGISTIC_LOSS,
    "pool": _V1.POOLING,
    "relu": _V1.RELU,
    "sigmoid": _V1.SIGMOID,
    "softmax": _V1.SOFTMAX,
    "softmax_loss": _V1.SOFTMAX_LOSS,
    "split": _V1.SPLIT,
    "tanh": _V1.TANH,
    "window_data": _V1.WINDOW_DATA,
}

# V1 enum value -> current layer type string.
V1_TO_CURRENT_TYPE = {
    _V1.NONE: "",
    _V1.ABSVAL: "AbsVal",
    _V1.ACCURACY: "Accuracy",
    _V1.ARGMAX: "ArgMax",
    _V1.BNLL: "BNLL",
    _V1.CONCAT: "Concat",
    _V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    _V1.CONVOLUTION: "Convolution",
    _V1.DECONVOLUTION: "Deconvolution",
    _V1.DATA: "Data",
    _V1.DROPOUT: "Dropout",
    _V1.DUMMY_DATA: "DummyData",
    _V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    _V1.ELTWISE: "Eltwise",
    _V1.EXP: "Exp",
    _V1.FLATTEN: "Flatten",
    _V1.HDF5_DATA: "HDF5Data",
    _V1.HDF5_OUTPUT: "HDF5Output",
    _V1.HINGE_LOSS: "HingeLoss",
    _V1.IM2COL: "Im2col",
    _V1.IMAGE_DATA: "ImageData",
    _V1.INFOGAIN_LOSS: "InfogainLoss",
    _V1.INNER_PRODUCT: "InnerProduct",
    _V1.LRN: "LRN",
    _V1.MEMORY_DATA: "MemoryData",
    _V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    _V1.MVN: "MVN",
    _V1.POOLING: "Pooling",
    _V1.POWER: "Power",
    _V1.RELU: "ReLU",
    _V1.SIGMOID: "Sigmoid",
    _V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    _V1.SILENCE: "Silence",
    _V1.SOFTMAX: "Softmax",
    _V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    _V1.SPLIT: "Split",
    _V1.SLICE: "Slice",
    _V1.TANH: "TanH",
    _V1.WINDOW_DATA: "WindowData",
    _V1.THRESHOLD: "Threshold",
}

_SP = caffe_pb2.SolverParameter

# Legacy solver_type enum value -> solver type string.
SOLVER_TYPE_NAMES = {
    _SP.SGD: "SGD",
    _SP.NESTEROV: "Nesterov",
    _SP.ADAGRAD: "AdaGrad",
    _SP.RMSPROP: "RMSProp",
    _SP.ADADELTA: "AdaDelta",
    _SP.ADAM: "Adam",
}

# V1 data layer types whose own parameter message still carries the
# transformation fields, and the name of that message field.
_DATA_LAYER_PARAM = {
    _V1.DATA: "data_param",
    _V1.IMAGE_DATA: "image_data_param",
    _V1.WINDOW_DATA: "window_data_param",
}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def _fail(source, layer, what):
    """Raise the one-line CaffeError used for every fatal upgrade problem."""
    where = f"{source}: layer '{layer}'" if layer is not None else f"{source}"
    raise CaffeError(f"{where}: {what}")


def _layer_label(name, index):
    """A layer's name, or its position when it has none."""
    return name if name else f"#{index}"


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def _needs_v0_upgrade(net):
    return any(l.HasField("layer") for l in net.layers)


def _needs_v1_upgrade(net):
    return len(net.layers) > 0


def _needs_data_upgrade(net):
    for l in net.layers:
        field = _DATA_LAYER_PARAM.get(l.type)
        if field is None:
            continue
        sub = getattr(l, field)
        if any(sub.HasField(f) for f in _TRANSFORM_FIELDS):
            return True
    return False


def _needs_input_upgrade(net):
    return len(net.input) > 0


def _needs_batch_norm_upgrade(net):
    # Caffe tests only for three specs, so it reports an already-upgraded net
    # as needing the (idempotent) step again; we also look at the values.
    return any(l.type == "BatchNorm" and len(l.param) == 3
               and any(s.lr_mult != 0 or s.decay_mult != 0 for s in l.param)
               for l in net.layer)


def net_needs_upgrade(net_param):
    """True if any upgrade step would change ``net_param``."""
    return (_needs_v0_upgrade(net_param) or _needs_v1_upgrade(net_param)
            or _needs_data_upgrade(net_param)
            or _needs_input_upgrade(net_param)
            or _needs_batch_norm_upgrade(net_param))


# ---------------------------------------------------------------------------
# Step 1: V0 -> V1
# ---------------------------------------------------------------------------

def _fold_padding_layers(net, source):
    """Return a copy of a V0 net with its ``padding`` layers removed and their
    ``pad`` moved onto the conv/pool layer each one fed."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    # blob name -> index (in `net.layers`) of the layer that last wrote it;
    # -1 for net inputs.
    producer = {name: -1 for name in net.input}
    for i, conn in enumerate(net.layers):
        v0 = conn.layer
        label = _layer_label(v0.name, i)
        if v0.type != "padding":
            out.layers.add().CopyFrom(conn)
        for j, blob in enumerate(conn.bottom):
            if blob not in producer:
                _fail(source, label, f"unknown bottom blob '{blob}'")
            src_index = producer[blob]
            if src_index < 0:
                continue
            src = net.layers[src_index]
            if src.layer.type != "padding":
                continue
            if v0.type not in ("conv", "pool"):
                _fail(source, label,
                      f"a padding layer feeds a layer of type '{v0.type}' "
                      "(only conv and pool may follow padding)")
            if len(conn.bottom) != 1:
                _fail(source, label,
                      "a layer fed by a padding layer must have exactly one bottom")
            if len(src.bottom) != 1 or len(src.top) != 1:
                _fail(source, _layer_label(src.layer.name, src_index),
                      "a padding layer must have exactly one bottom and one top")
            target = out.layers[len(out.layers) - 1]
            target.layer.pad = src.layer.pad
            target.bottom[j] = src.bottom[0]
        for blob in conn.top:
            producer[blob] = i
    return out


# V0 settings that belong to one parameter message depending on layer type:
# v0 field -> {v0 type: (param message field, target field, how)}, where how
# is "set" (scalar), "add" (append to a repeated field) or "copy" (message).
_V0_ROUTES = {
    "num_output": {"conv": ("convolution_param", "num_output", "set"),
                   "innerproduct": ("inner_product_param", "num_output", "set")},
    "biasterm": {"conv": ("convolution_param", "bias_term", "set"),
                 "innerproduct": ("inner_product_param", "bias_term", "set")},
    "weight_filler": {"conv": ("convolution_param", "weight_filler", "copy"),
                      "innerproduct": ("inner_product_param", "weight_filler", "copy")},
    "bias_filler": {"conv": ("convolution_param", "bias_filler", "copy"),
                    "innerproduct": ("inner_product_param", "bias_filler", "copy")},
    "pad": {"conv": ("convolution_param", "pad", "add"),
            "pool": ("pooling_param", "pad", "set")},
    "kernelsize": {"conv": ("convolution_param", "kernel_size", "add"),
                   "pool": ("pooling_param", "kernel_size", "set")},
    "group": {"conv": ("convolution_param", "group", "set")},
    "stride": {"conv": ("convolution_param", "stride", "add"),
               "pool": ("pooling_param", "stride", "set")},
    "pool": {"pool": ("pooling_param", "pool", "enum")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio", "set")},
    "local_size": {"lrn": ("lrn_param", "local_size", "set")},
    "alpha": {"lrn": ("lrn_param", "alpha", "set")},
    "beta": {"lrn": ("lrn_param", "beta", "set")},
    "k": {"lrn": ("lrn_param", "k", "set")},
    "source": {"data": ("data_param", "source", "set"),
               "hdf5_data": ("hdf5_data_param", "source", "set"),
               "images": ("image_data_param", "source", "set"),
               "window_data": ("window_data_param", "source", "set"),
               "infogain_loss": ("infogain_loss_param", "source", "set")},
    "batchsize": {"data": ("data_param", "batch_size", "set"),
                  "hdf5_data": ("hdf5_data_param", "batch_size", "set"),
                  "images": ("image_data_param", "batch_size", "set"),
                  "window_data": ("window_data_param", "batch_size", "set")},
    "rand_skip": {"data": ("data_param", "rand_skip", "set"),
                  "images": ("image_data_param", "rand_skip", "set")},
    "shuffle_images": {"images": ("image_data_param", "shuffle", "set")},
    "new_height": {"images": ("image_data_param", "new_height", "set")},
    "new_width": {"images": ("image_data_param", "new_width", "set")},
    "concat_dim": {"concat": ("concat_param", "concat_dim", "set")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold", "set")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold", "set")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction", "set")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad", "set")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode", "set")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", None, "copy")},
}

# V0 settings that go to transform_param whatever the layer type.
_V0_TRANSFORM = {"scale": "scale", "meanfile": "mean_file",
                 "cropsize": "crop_size", "mirror": "mirror"}


def _upgrade_v0_layer(conn, source, index):
    """Convert one V0 layer connection into a V1 layer."""
    out = caffe_pb2.V1LayerParameter()
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return out
    v0 = conn.layer
    label = _layer_label(v0.name, index)
    if v0.HasField("name"):
        out.name = v0.name
    kind = v0.type
    if v0.HasField("type"):
        if kind not in V0_TO_V1_TYPE:
            _fail(source, label, f"unknown V0 layer type '{kind}'")
        out.type = V0_TO_V1_TYPE[kind]
    for blob in v0.blobs:
        out.blobs.add().CopyFrom(blob)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)

    for v0_field, routes in _V0_ROUTES.items():
        if not v0.HasField(v0_field):
            continue
        route = routes.get(kind)
        if route is None:
            log.warning(f"{source}: layer '{label}': V0 setting '{v0_field}' does not "
                        f"apply to layer type '{kind}'; ignored")
            continue
        param_field, target, how = route
        sub = getattr(out, param_field)
        value = getattr(v0, v0_field)
        if how == "set":
            setattr(sub, target, value)
        elif how == "add":
            getattr(sub, target).append(value)
        elif how == "enum":
            name = caffe_pb2.V0LayerParameter.PoolMethod.Name(value)
            sub.pool = caffe_pb2.PoolingParameter.PoolMethod.Value(name)
        elif target is None:
            sub.CopyFrom(value)
        else:
            getattr(sub, target).CopyFrom(value)

    for v0_field, target in _V0_TRANSFORM.items():
        if v0.HasField(v0_field):
            setattr(out.transform_param, target, getattr(v0, v0_field))
    return out


def _upgrade_v0_net(net, source):
    padded = _fold_padding_layers(net, source)
    out = caffe_pb2.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for i, conn in enumerate(padded.layers):
        out.layers.add().CopyFrom(_upgrade_v0_layer(conn, source, i))
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out


# ---------------------------------------------------------------------------
# Step 2: data transformation fields
# ---------------------------------------------------------------------------

def _upgrade_data_transformation(net):
    for l in net.layers:
        field = _DATA_LAYER_PARAM.get(l.type)
        if field is None:
            continue
        sub = getattr(l, field)
        l.transform_param.SetInParent()
        for f in _TRANSFORM_FIELDS:
            if sub.HasField(f):
                setattr(l.transform_param, f, getattr(sub, f))
                sub.ClearField(f)


# ---------------------------------------------------------------------------
# Step 3: V1 -> current
# ---------------------------------------------------------------------------

# Every *_param message field of V1LayerParameter; each has a same-named,
# same-typed field in LayerParameter and is copied across verbatim.
_V1_PARAM_FIELDS = tuple(
    f.name for f in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields
    if f.name.endswith("_param") and f.message_type is not None)


def _ensure_params(layer, count):
    while len(layer.param) < count:
        layer.param.add()


def _upgrade_v1_layer(v1, source, index):
    label = _layer_label(v1.name, index)
    out = caffe_pb2.LayerParameter()
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    for rule in v1.include:
        out.include.add().CopyFrom(rule)
    for rule in v1.exclude:
        out.exclude.add().CopyFrom(rule)
    if v1.HasField("type"):
        if v1.type not in V1_TO_CURRENT_TYPE:
            _fail(source, label, f"unknown V1 layer type {v1.type}")
        out.type = V1_TO_CURRENT_TYPE[v1.type]
    for blob in v1.blobs:
        out.blobs.add().CopyFrom(blob)
    for i, name in enumerate(v1.param):
        _ensure_params(out, i + 1)
        out.param[i].name = name
    for i, mode in enumerate(v1.blob_share_mode):
        _ensure_params(out, i + 1)
        name = caffe_pb2.V1LayerParameter.DimCheckMode.Name(mode)
        out.param[i].share_mode = caffe_pb2.ParamSpec.DimCheckMode.Value(name)
    for i, lr in enumerate(v1.blobs_lr):
        _ensure_params(out, i + 1)
        out.param[i].lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        _ensure_params(out, i + 1)
        out.param[i].decay_mult = decay
    out.loss_weight.extend(v1.loss_weight)
    for field in _V1_PARAM_FIELDS:
        if v1.HasField(field):
            getattr(out, field).CopyFrom(getattr(v1, field))
    if v1.HasField("layer"):
        log.warning(f"{source}: layer '{label}': leftover V0 layer definition ignored")
    return out


def _upgrade_v1_net(net, source):
    if len(net.layer) > 0:
        log.warning(f"{source}: net mixes 'layers' (V1) and 'layer' entries; the "
                    "'layer' entries are dropped by the upgrade")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    del out.layer[:]
    for i, v1 in enumerate(net.layers):
        out.layer.add().CopyFrom(_upgrade_v1_layer(v1, source, i))
    return out


# ---------------------------------------------------------------------------
# Step 4: net-level inputs -> Input layer
# ---------------------------------------------------------------------------

def _upgrade_input(net, source):
    has_shape = len(net.input_shape) > 0
    has_dim = len(net.input_dim) > 0
    # An `input` without shapes (old caffemodels) is simply dropped.
    if has_shape or has_dim:
        n = len(net.input)
        if has_shape and len(net.input_shape) != n:
            _fail(source, "input",
                  f"{n} net inputs but {len(net.input_shape)} input_shape entries")
        if not has_shape and len(net.input_dim) != 4 * n:
            _fail(source, "input",
                  f"{n} net inputs need {4 * n} input_dim values, "
                  f"got {len(net.input_dim)}")
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(net.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        rest = list(net.layer)
        del net.layer[:]
        net.layer.add().CopyFrom(layer)
        for l in rest:
            net.layer.add().CopyFrom(l)
    del net.input[:]
    del net.input_shape[:]
    del net.input_dim[:]


# ---------------------------------------------------------------------------
# Step 5: BatchNorm parameter specs
# ---------------------------------------------------------------------------

def _upgrade_batch_norm(net):
    # Old nets froze BatchNorm's three statistics blobs with three
    # `param { lr_mult: 0 }` specs; the layer now freezes them itself and
    # insists on lr_mult 0.  Zero both multipliers, keep names (sharing).
    for l in net.layer:
        if l.type == "BatchNorm" and len(l.param) == 3:
            for spec in l.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------

def upgrade_net(net_param, source_name="<net>"):
    """Return an upgraded copy of ``net_param`` (the argument is untouched).

    ``source_name`` (usually the file name) is used in messages.  Raises
    ``CaffeError`` on definitions Caffe itself would refuse.
    """
    net = caffe_pb2.NetParameter()
    net.CopyFrom(net_param)
    if _needs_v0_upgrade(net):
        log.info(f"{source_name}: upgrading V0 layer definitions")
        net = _upgrade_v0_net(net, source_name)
    if _needs_data_upgrade(net):
        log.info(f"{source_name}: moving data transformation fields into transform_param")
        _upgrade_data_transformation(net)
    if _needs_v1_upgrade(net):
        log.info(f"{source_name}: upgrading V1 layer definitions")
        net = _upgrade_v1_net(net, source_name)
    if _needs_input_upgrade(net):
        log.info(f"{source_name}: turning net inputs into an Input layer")
        _upgrade_input(net, source_name)
    if _needs_batch_norm_upgrade(net):
        log.info(f"{source_name}: zeroing BatchNorm parameter multipliers")
        _upgrade_batch_norm(net)
    return net


def solver_needs_upgrade(solver_param):
    """True if the solver uses the legacy ``solver_type`` enum."""
    return solver_param.HasField("solver_type")


def upgrade_solver(solver_param, source_name="<solver>"):
    """Return an upgraded copy of ``solver_param`` (the argument is untouched).

    The legacy ``solver_type`` enum becomes the ``type`` string; giving both
    is an error, as in Caffe.
    """
    solver = caffe_pb2.SolverParameter()
    solver.CopyFrom(solver_param)
    if not solver.HasField("solver_type"):
        return solver
    if solver.HasField("type"):
        _fail(source_name, None,
              "both the legacy 'solver_type' and 'type' are given; keep only 'type'")
    kind = solver.solver_type
    if kind not in SOLVER_TYPE_NAMES:
        _fail(source_name, None, f"unknown solver_type {kind}")
    solver.type = SOLVER_TYPE_NAMES[kind]
    solver.ClearField("solver_type")
    return solver
