"""pycaffe's caffe.Classifier: a Net (TEST phase, trained weights) that classifies images.

Each image (HxWxK, as caffe.io.load_image gives it) is resized to `image_dims` (default: the
net's input size), then either cut into ten crops of the input size (corners and centre, and
their mirrors; the predictions are averaged) or only the centre crop is taken, preprocessed by a
caffe.io.Transformer (mean, input_scale, raw_scale, channel_swap), and run through the net in
batches; `predict` returns the first output's rows, one per image.

    net = caffe.Classifier("deploy.prototxt", "weights.caffemodel", mean=mean, raw_scale=255,
                           channel_swap=(2, 1, 0))
    probabilities = net.predict([caffe.io.load_image("cat.jpg")], oversample=False)
"""
import numpy as np

from . import io
from .net import TEST, Net

CROPS_PER_IMAGE = 10  # io.oversample's: four corners and the centre, each also mirrored


def make_transformer(net, mean=None, input_scale=None, raw_scale=None, channel_swap=None):
    """The Transformer of the net's first input for HxWxK images, with what the caller gave."""
    name = net.inputs[0]
    transformer = io.Transformer({name: net.blobs[name].shape})
    transformer.set_transpose(name, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(name, mean)
    if input_scale is not None:
        transformer.set_input_scale(name, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(name, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(name, channel_swap)
    return transformer


class Classifier(Net):
    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None):
        super().__init__(model_file, pretrained_file, TEST)
        self.transformer = make_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[self.inputs[0]].shape[2:])
        self.image_dims = self.crop_dims if image_dims is None or not len(image_dims) else image_dims

    def predict(self, inputs, oversample=True):
        """(N, classes) predictions of N images: averaged over ten crops, or of the centre crop."""
        images = np.zeros((len(inputs), self.image_dims[0], self.image_dims[1], inputs[0].shape[2]), np.float32)
        for i, image in enumerate(inputs):
            images[i] = io.resize_image(image, self.image_dims)
        if oversample:
            crops = io.oversample(images, self.crop_dims)
        else:
            top, left = (np.array(self.image_dims) / 2.0 - self.crop_dims / 2.0).astype(int)
            crops = images[:, top:top + self.crop_dims[0], left:left + self.crop_dims[1], :]
        name = self.inputs[0]
        batch = np.stack([self.transformer.preprocess(name, crop) for crop in crops])
        predictions = self.forward_all(**{name: batch})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // CROPS_PER_IMAGE, CROPS_PER_IMAGE, -1)).mean(1)
        return predictions
