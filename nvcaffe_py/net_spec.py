"""NetSpec: write nets in Python, as pycaffe's net_spec (`caffe.NetSpec`, `caffe.layers as L`,
`caffe.params as P`, `caffe.to_proto`).

    n = caffe.NetSpec()
    n.data, n.label = L.Data(source="train_lmdb", backend=P.Data.LMDB, batch_size=64, ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    print(n.to_proto())

Keyword arguments go to the layer's own `<type>_param` message when it has such a field, else
to LayerParameter itself (name, loss_weight, param, include, ...), as pycaffe assigns them.
"""
from collections import Counter, OrderedDict

from .proto import caffe_pb2

# Layer types whose parameter message is named after another type.
_SHARED_PARAM_FIELDS = {"Deconvolution": "convolution_param"}


def _param_fields():
    """Layer type name -> LayerParameter field holding its parameters ('Convolution' -> 'convolution_param')."""
    fields = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            type_name = field.message_type.name
            if type_name.endswith("Parameter"):
                fields[type_name[: -len("Parameter")]] = field.name
    fields.update(_SHARED_PARAM_FIELDS)
    return fields


_PARAM_FIELDS = _param_fields()


def assign_proto(proto, name, value):
    """Set `proto.name` from Python values: dicts fill sub-messages, lists fill repeated fields."""
    target = getattr(proto, name)
    repeated = hasattr(target, "extend")
    if repeated and not isinstance(value, (list, tuple)):
        value = [value]
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], dict):
            for item in value:
                message = target.add()
                for k, v in item.items():
                    assign_proto(message, k, v)
        else:
            target.extend(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            assign_proto(target, k, v)
    else:
        setattr(proto, name, value)


class Top:
    """One output of a layer function; what NetSpec attributes hold."""

    def __init__(self, fn, index):
        self.fn, self.index = fn, index

    def to_proto(self):
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer call `L.Type(*bottoms, **params)` before it is named and written out."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is {type(inp)})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        if self.in_place and len(inputs) != self.ntop:
            raise ValueError(f"{type_name}: in_place needs as many bottoms as tops")
        self.tops = tuple(Top(self, i) for i in range(self.ntop))

    def _top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = f"{top.fn.type_name}{autonames[top.fn.type_name]}"
        return names[top]

    def _layer_name(self, names, autonames):
        if self not in names and self.ntop > 0:
            names[self] = self._top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = f"{self.type_name}{autonames[self.type_name]}"
        return names[self]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottom_names.append(layers[inp.fn].top[inp.index])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(top, names, autonames) for top in self.tops)
        layer.name = self._layer_name(names, autonames)
        for key, value in self.params.items():
            field = _PARAM_FIELDS.get(self.type_name)
            if key.endswith("param") or field is None or not _has_field(getattr(layer, field), key):
                assign_proto(layer, key, value)
            else:
                assign_proto(getattr(layer, field), key, value)
        layers[self] = layer


def _has_field(message, name):
    return name in message.DESCRIPTOR.fields_by_name


class NetSpec:
    """Tops assigned as attributes are named after the attribute."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key, value):
        self.__setattr__(key, value)

    def __getitem__(self, item):
        return self.__getattr__(item)

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        names = {v: k for k, v in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


def to_proto(*tops):
    """A NetParameter holding everything needed to compute `tops`."""
    layers = OrderedDict()
    autonames = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class Layers:
    """`L.Type(*bottoms, **params)` -> a Top, a tuple of Tops (ntop > 1) or the Function (ntop 0)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops

        return layer_fn


class Parameters:
    """`P.Pooling.MAX` -> the enum value caffe_pb2.PoolingParameter.MAX."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        class EnumValues:
            def __getattr__(self, value_name):
                return getattr(getattr(caffe_pb2, name + "Parameter"), value_name)

        return EnumValues()


layers = Layers()
params = Parameters()
