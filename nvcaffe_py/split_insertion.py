"""Automatic Split layers: a blob read by several layers gets a Split layer whose outputs feed one
consumer each, so that their gradients are summed (Caffe's insert_splits.cpp, same names)."""
from collections import defaultdict

from .errors import CaffeError
from .proto import caffe_pb2


def split_layer_name(layer_name, blob_name, top_index):
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(layer_name, blob_name, top_index, split_index):
    return f"{blob_name}_{layer_name}_{top_index}_split_{split_index}"


def insert_splits(net_param, source="<net>"):
    producer = {}  # blob name -> (layer index, top index) of its latest producer
    consumers = defaultdict(int)
    bottom_source = {}
    for i, layer in enumerate(net_param.layer):
        for j, name in enumerate(layer.bottom):
            if name not in producer:
                raise CaffeError(
                    f"{source}: layer '{layer.name}' ({layer.type}) reads bottom '{name}', which no earlier layer produces")
            bottom_source[(i, j)] = producer[name]
            consumers[producer[name]] += 1
        for j, name in enumerate(layer.top):
            producer[name] = (i, j)
    loss_weight = {}
    for i, layer in enumerate(net_param.layer):
        for j in range(min(len(layer.top), len(layer.loss_weight))):
            if layer.loss_weight[j] != 0:
                loss_weight[(i, j)] = layer.loss_weight[j]
                consumers[(i, j)] += 1

    result = caffe_pb2.NetParameter()
    result.CopyFrom(net_param)
    del result.layer[:]
    next_split = defaultdict(int)
    for i, layer in enumerate(net_param.layer):
        out = result.layer.add()
        out.CopyFrom(layer)
        for j, name in enumerate(layer.bottom):
            src = bottom_source[(i, j)]
            if consumers[src] > 1:
                src_layer = net_param.layer[src[0]].name
                out.bottom[j] = split_blob_name(src_layer, name, src[1], next_split[src])
                next_split[src] += 1
        for j, name in enumerate(layer.top):
            count = consumers[(i, j)]
            if count <= 1:
                continue
            split = result.layer.add()
            split.name = split_layer_name(layer.name, name, j)
            split.type = "Split"
            split.bottom.append(name)
            split.top.extend(split_blob_name(layer.name, name, j, k) for k in range(count))
            if (i, j) in loss_weight:
                # The loss is taken at the split's last output, which no layer reads, so its
                # gradient adds to the consumers' instead of being overwritten by one of them.
                split.loss_weight.extend([0.0] * (count - 1))
                split.loss_weight.append(loss_weight[(i, j)])
                out.loss_weight[j] = 0.0
    return result
