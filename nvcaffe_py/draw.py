"""pycaffe's caffe.draw: a NetParameter as a Graphviz graph (layers as boxes, blobs as octagons),
drawn by Graphviz's `dot` through pydot — the optional extra `pip install nvcaffe_py[draw]`, plus
Graphviz itself (`apt install graphviz`).

    caffe.draw.draw_net_to_file(net_param, "net.png", rankdir="LR", phase=caffe.TRAIN)

`nvcaffe draw_net net.prototxt net.png` is the same from the command line (Caffe's draw_net.py).
"""
from .errors import CaffeError
from .formats import write_atomic
from .proto import caffe_pb2

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}
_LAYER_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
                 "InnerProduct": "#CC33FF"}
_LEARNING_TYPES = ("Convolution", "Deconvolution", "InnerProduct")


def _pydot():
    try:
        import pydot
    except ImportError:
        raise CaffeError("drawing a net needs pydot: pip install 'nvcaffe_py[draw]' "
                         "(and Graphviz's dot: apt install graphviz)") from None
    return pydot


def get_pooling_types_dict():
    """Pooling method number -> name (0 -> 'MAX')."""
    return {v.number: name for name, v in caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name.items()}


def get_edge_label(layer):
    """The label of a layer's edges to its tops: batch size of Data, outputs of learning layers."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weights, bias) learning-rate multipliers of a Convolution, Deconvolution or InnerProduct."""
    if layer.type not in _LEARNING_TYPES:
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    if len(layer.param) > 2:
        raise ValueError("Could not parse the learning rate multiplier")
    given = [p.lr_mult for p in layer.param]
    return tuple(given + [1.0] * (2 - len(given)))


def get_layer_label(layer, rankdir, display_lrm=False):
    """A layer's node label: name, type (and pooling method), kernel/stride/pad of spatial layers,
    optionally its lr multipliers; lines break where the layout has room for them."""
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    if layer.type == "Pooling":
        kind = f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})"
    else:
        kind = f"({layer.type})"
    parts = [layer.name, kind]
    spatial = _spatial_params(layer)
    if spatial:
        kernel, stride, pad = spatial
        parts.append(separator.join([f"kernel size: {kernel}", f"stride: {stride}", f"pad: {pad}"]))
    if display_lrm and layer.type in _LEARNING_TYPES:
        weights_mult, bias_mult = get_layer_lr_mult(layer)
        if weights_mult or bias_mult:
            parts.append(f"lr mult: {weights_mult:.1f}, {bias_mult:.1f}")
    return f'"{separator.join(parts)}"'  # quoted, or dot misreads the colons


def _spatial_params(layer):
    """(kernel size, stride, pad) of a Pooling or (first axis of a) Convolution/Deconvolution."""
    if layer.type == "Pooling":
        p = layer.pooling_param
        return p.kernel_size, p.stride, p.pad
    if layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        return (p.kernel_size[0] if len(p.kernel_size) else 1, p.stride[0] if len(p.stride) else 1,
                p.pad[0] if len(p.pad) else 0)
    return None


def choose_color_by_layertype(layertype):
    return _LAYER_COLORS.get(layertype, LAYER_STYLE_DEFAULT["fillcolor"])


def _in_phase(layer, phase):
    """pycaffe's phase filter: a layer without include rules is in every phase unless excluded."""
    if phase is None:
        return True
    if layer.include and layer.exclude:
        raise ValueError(f"layer {layer.name} has both include and exclude specified.")
    included = not layer.include or any(rule.phase == phase for rule in layer.include)
    return included and not any(rule.phase == phase for rule in layer.exclude)


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """The net as a pydot graph; `phase` (caffe.TRAIN/TEST) keeps that phase's layers only."""
    pydot = _pydot()
    graph = pydot.Dot(caffe_net.name or "Net", graph_type="digraph", rankdir=rankdir)
    nodes, edges = {}, []
    for layer in caffe_net.layer:
        if not _in_phase(layer, phase):
            continue
        layer_node = f"{layer.name}_{layer.type}"
        in_place = len(layer.bottom) == 1 and list(layer.bottom) == list(layer.top)
        style = NEURON_LAYER_STYLE if in_place else dict(LAYER_STYLE_DEFAULT,
                                                         fillcolor=choose_color_by_layertype(layer.type))
        nodes[layer_node] = pydot.Node(get_layer_label(layer, rankdir, display_lrm), **style)
        for bottom in layer.bottom:
            nodes[bottom + "_blob"] = pydot.Node(bottom, **BLOB_STYLE)
            edges.append((bottom + "_blob", layer_node, '""'))
        for top in layer.top:
            nodes[top + "_blob"] = pydot.Node(top)
            edges.append((layer_node, top + "_blob", get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for source, target, label in edges:
        graph.add_edge(pydot.Edge(nodes[source], nodes[target], label=label))
    return graph


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The drawing as bytes in format `ext` (png, svg, pdf, ... or 'raw' for the dot source)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    try:
        return graph.create(format=ext)
    except FileNotFoundError:
        raise CaffeError("drawing a net needs Graphviz's dot on PATH (apt install graphviz)") from None


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Draw into `filename`, in the format its extension names ('.raw': the dot source)."""
    write_atomic(filename, draw_net(caffe_net, rankdir, filename.rpartition(".")[2], phase, display_lrm))
