"""The nets that jobs train: the standard ones (the train/val nets under the checkout's models/)
or a custom prototxt; a net made to read a dataset (its Data layers pointed at the dataset's
LMDBs, batch sizes and mean; a standard net's classifier sized to the dataset's classes); and its
deploy version (Input instead of Data, Softmax instead of the loss, no Accuracy) for inference."""
import os

from .. import datasets as databases
from ..datum import datum_to_array, parse_datum
from ..errors import CaffeError
from ..formats import read_net_param
from ..net_state import filter_net, make_state
from ..proto import caffe_pb2

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models")
PROBABILITIES = "prob"


def standard_networks(models_dir=MODELS_DIR) -> dict:
    """{name: prototxt}: every net under models/ that reads a dataset (has Data layers), named by
    its folder (and its file, where a folder holds several)."""
    found = {}
    for folder in sorted(os.listdir(models_dir)) if os.path.isdir(models_dir) else []:
        paths = sorted(os.path.join(models_dir, folder, name) for name in os.listdir(os.path.join(models_dir, folder))
                       if name.endswith(".prototxt"))
        nets = [path for path in paths if _reads_a_dataset(path)]
        for path in nets:
            found[folder if len(nets) == 1 else f"{folder}/{os.path.basename(path)[:-9]}"] = path
    return found


def _reads_a_dataset(path) -> bool:
    try:
        return any(layer.type == "Data" for layer in read_net_param(path).layer)
    except CaffeError:
        return False  # a solver, or not a net


def data_layers(net_param) -> dict:
    """{caffe_pb2.TRAIN or TEST: the Data layer of that phase}."""
    found = {}
    for layer in net_param.layer:
        if layer.type != "Data":
            continue
        phases = {rule.phase for rule in layer.include if rule.HasField("phase")} or {caffe_pb2.TRAIN, caffe_pb2.TEST}
        for phase in phases:
            if phase in found:
                raise CaffeError(f"the net has two Data layers for the {caffe_pb2.Phase.Name(phase)} phase "
                                 f"('{found[phase].name}' and '{layer.name}'); give one per phase")
            found[phase] = layer
    if set(found) != {caffe_pb2.TRAIN, caffe_pb2.TEST}:
        raise CaffeError("the net needs a Data layer for the TRAIN phase and one for the TEST phase "
                         "(include { phase: TRAIN } / { phase: TEST }) to read the dataset's LMDBs")
    return found


def classifier(net_param):
    """The layer whose output the loss scores: its num_output is the number of classes."""
    losses = [layer for layer in net_param.layer if layer.type.endswith("Loss") and layer.bottom]
    if not losses:
        raise CaffeError("the net has no loss layer (SoftmaxWithLoss) to train a classifier with")
    scores = losses[0].bottom[0]
    producers = [layer for layer in net_param.layer if scores in layer.top]
    if not producers or producers[-1].type not in ("InnerProduct", "Convolution"):
        raise CaffeError(f"the blob '{scores}' that the loss reads does not come from an InnerProduct layer")
    return producers[-1]


def for_dataset(net_param, folders, image_size, train_batch, val_count, classes=None):
    """(a copy of `net_param` reading the dataset, its TEST batch size). folders: {"train":,
    "val": LMDB path, "mean": mean file}; image_size: (height, width); classes: the number of
    classes to give the classifier, None to leave it as written."""
    net = caffe_pb2.NetParameter()
    net.CopyFrom(net_param)
    layers = data_layers(net)
    test_batch = min(layers[caffe_pb2.TEST].data_param.batch_size or train_batch, val_count)
    for phase, split, batch in ((caffe_pb2.TRAIN, "train", train_batch), (caffe_pb2.TEST, "val", test_batch)):
        layer = layers[phase]
        layer.data_param.source, layer.data_param.backend, layer.data_param.batch_size = folders[split], caffe_pb2.DataParameter.LMDB, batch
        if layer.transform_param.HasField("mean_file"):
            layer.transform_param.mean_file = folders["mean"]
        crop = layer.transform_param.crop_size
        if crop > min(image_size):
            raise CaffeError(f"layer '{layer.name}' crops {crop}x{crop} but the dataset's images are "
                             f"{image_size[0]}x{image_size[1]}; make a dataset of {crop}x{crop} or larger")
    if classes is not None:
        layer = classifier(net)
        (layer.inner_product_param if layer.type == "InnerProduct" else layer.convolution_param).num_output = classes
    return net, test_batch


def record_shape(net_param, workdir) -> tuple:
    """(channels, height, width) of the first record of the TEST Data layer's LMDB (relative
    sources are read from `workdir`)."""
    source = os.path.join(workdir, data_layers(net_param)[caffe_pb2.TEST].data_param.source)
    key, value = databases.open_cursor(source).peek()
    try:
        return datum_to_array(parse_datum(value)).shape
    except CaffeError as exc:
        raise CaffeError(f"{source}: record '{key.decode(errors='replace')}': {exc}") from None


def input_shape(net_param, workdir) -> tuple:
    """(channels, height, width) that the TEST Data layer gives the net: its records, cropped as
    its transform_param says."""
    channels, height, width = record_shape(net_param, workdir)
    crop = data_layers(net_param)[caffe_pb2.TEST].transform_param.crop_size
    return (channels, crop, crop) if crop else (channels, height, width)


def with_absolute_paths(net_param, workdir):
    """A copy of `net_param` whose Data layers' sources and mean files are read from `workdir`
    wherever they are relative (the server's own folder is another)."""
    net = caffe_pb2.NetParameter()
    net.CopyFrom(net_param)
    for layer in data_layers(net).values():
        layer.data_param.source = os.path.join(workdir, layer.data_param.source)
        if layer.transform_param.HasField("mean_file"):
            layer.transform_param.mean_file = os.path.join(workdir, layer.transform_param.mean_file)
    return net


def deploy(net_param, shape):
    """The deploy net of a train/val net: its TEST layers, the Data layer an Input of one image of
    `shape` (C, H, W), layers that read the labels gone, and the loss a Softmax ('prob')."""
    test = filter_net(net_param, make_state(net_param, caffe_pb2.TEST))
    data = data_layers(net_param)[caffe_pb2.TEST]
    labels = set(data.top[1:])
    out = caffe_pb2.NetParameter(name=net_param.name)
    for layer in test.layer:
        if layer.type == "Data":
            inputs = out.layer.add(name=layer.name, type="Input", top=[layer.top[0]])
            inputs.input_param.shape.add().dim.extend((1,) + tuple(shape))
        elif not labels.intersection(layer.bottom):
            copy = out.layer.add()
            copy.CopyFrom(layer)
            del copy.include[:], copy.exclude[:]
        elif layer.type == "SoftmaxWithLoss":
            out.layer.add(name=PROBABILITIES, type="Softmax", bottom=[layer.bottom[0]], top=[PROBABILITIES])
    return out
