"""Inside a model: the graph of its deploy net (caffe.draw: pydot and Graphviz), each layer's
weights and the activations of one image, each blob as a picture with simple statistics (mean,
standard deviation, extremes, a histogram). Filters show as image tiles (in colour where they
read a colour image), other blobs as tiled channels or as a strip of values."""
import os

import cv2
import numpy as np

from .. import draw
from ..formats import read_net_param
from . import jobs
from .pictures import png_data_url, tile, to_uint8

MAX_MAPS = 64  # channels or filters drawn per blob
MAX_SIDE = 512  # a matrix is shrunk to this many pixels per side
HISTOGRAM_BINS = 20


def graph_svg(jobs_dir, job_id) -> str:
    """The deploy net (the train/val net where there is none) drawn top to bottom, as SVG."""
    folder = jobs_dir.folder(jobs.KIND, job_id)
    deploy = os.path.join(folder, jobs.DEPLOY)
    net = read_net_param(deploy) if os.path.exists(deploy) else jobs.train_val(folder)
    return draw.draw_net(net, "TB", "svg").decode("utf-8")


def weights(model) -> list:
    """[{"layer", "type", "params": [{"shape", "stats", "image"}]}] for each layer with weights."""
    out = []
    for layer_name, blobs in model.net.params.items():
        layer = model.net.layer_dict[layer_name]
        out.append({"layer": layer_name, "type": layer.type,
                    "params": [describe(blob.data_readonly(), filters=(k == 0)) for k, blob in enumerate(blobs)]})
    return out


def activations(model, payload) -> list:
    """[{"blob", "shape", "stats", "image"}] of every blob of the deploy net for one image."""
    blobs = model.forward([payload])
    return [{"blob": name, **describe(values[0])} for name, values in blobs.items()]


def describe(array, filters=False) -> dict:
    array = np.asarray(array, np.float64)
    counts, edges = np.histogram(array, bins=HISTOGRAM_BINS)
    stats = {"mean": float(array.mean()), "std": float(array.std()), "min": float(array.min()),
             "max": float(array.max()), "count": int(array.size),
             "histogram": {"counts": counts.tolist(), "edges": [float(e) for e in edges]}}
    return {"shape": list(array.shape), "stats": stats, "image": png_data_url(picture(array, filters))}


def picture(array, filters=False) -> np.ndarray:
    """A uint8 image of a blob: 4-D filters (out, in, h, w) as tiles (colour when in is 3, else
    each filter's first input channel); 3-D maps (c, h, w) as tiles of their channels; a matrix as
    itself, shrunk to MAX_SIDE; a vector as a row (the page stretches flat ones)."""
    if array.ndim == 4 and filters:
        maps = array[:MAX_MAPS].transpose(0, 2, 3, 1) if array.shape[1] == 3 else array[:MAX_MAPS, 0]
        return tile(maps)
    if array.ndim >= 3 and array.shape[-1] > 1 and array.shape[-2] > 1:
        return tile(array.reshape(-1, *array.shape[-2:])[:MAX_MAPS])
    matrix = array.reshape(1, -1) if array.ndim < 2 else array.reshape(-1, array.shape[-1])
    image = to_uint8(matrix)
    height, width = image.shape
    scale = min(1.0, MAX_SIDE / max(height, width))
    if scale < 1:
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    return image
