"""pycaffe's caffe.Detector: a Net (TEST phase, trained weights) that classifies windows of images,
as R-CNN does: each window (ymin, xmin, ymax, xmax) is cut out, optionally with `context_pad`
pixels of surrounding context (out-of-image parts filled with the mean), warped to the net's input
size, preprocessed and run through the net in batches.

    detector = caffe.Detector("deploy.prototxt", "weights.caffemodel", mean=mean, raw_scale=255,
                              channel_swap=(2, 1, 0), context_pad=16)
    detections = detector.detect_windows([("photo.jpg", [(0, 0, 100, 120), (40, 50, 200, 220)])])
    # [{"window": ..., "prediction": ..., "filename": ...}, ...]

`detect_selective_search` takes its windows from the selective_search_ijcv_with_python package
(and its MATLAB code), which the user installs.
"""
import os

import numpy as np

from . import io
from .classifier import make_transformer
from .net import TEST, Net


class Detector(Net):
    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None, context_pad=None):
        super().__init__(model_file, pretrained_file, TEST)
        self.transformer = make_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """[{window, prediction, filename}] for each window of each (image filename, windows)."""
        images_windows = [(filename, list(windows)) for filename, windows in images_windows]
        crops = []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            crops.extend(self.crop(image, window) for window in windows)
        name = self.inputs[0]
        batch = np.stack([self.transformer.preprocess(name, crop) for crop in crops])
        predictions = iter(self.forward_all(**{name: batch})[self.outputs[0]])
        return [{"window": window, "prediction": next(predictions), "filename": filename}
                for filename, windows in images_windows for window in windows]

    def detect_selective_search(self, image_fnames):
        """detect_windows on the Selective Search proposals for each image."""
        import selective_search_ijcv_with_python as selective_search  # the user's install, only here
        image_fnames = [os.path.abspath(f) for f in image_fnames]  # absolute, for its MATLAB process
        windows_list = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(image_fnames, windows_list))

    def crop(self, im, window):
        """The window of image `im` (HxWxK); with context_pad, the window grown so that the net
        input has a context_pad border around it, parts outside the image filled with the mean."""
        window = np.asarray(window)
        if not self.context_pad:
            return im[window[0]:window[2], window[1]:window[3]]
        crop_size = self.blobs[self.inputs[0]].width  # square inputs, as R-CNN's
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h, half_w = (window[2] - window[0] + 1) / 2.0, (window[3] - window[1] + 1) / 2.0
        centre = (window[0] + half_h, window[1] + half_w)
        box = np.round(np.tile(centre, 2) + scale * np.array((-half_h, -half_w, half_h, half_w)))
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        pad_y = round(max(0, -box[0]) * scale_h)  # how much of the box lies above / left of the image
        pad_x = round(max(0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        assert clip_h > 0 and clip_w > 0
        crop_h = min(round(clip_h * scale_h), crop_size - pad_y)
        crop_w = min(round(clip_w * scale_w), crop_size - pad_x)
        top, left, bottom, right = box.astype(int)
        context = io.resize_image(im[top:bottom, left:right], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return crop

    def configure_crop(self, context_pad):
        """Crop dimensions (the input's, as HxWxK) and context padding; with context, the mean in
        the unprocessed image space that fills what lies outside the image."""
        name = self.inputs[0]
        to_image = np.argsort(self.transformer.transpose[name])  # CxHxW -> HxWxC
        self.crop_dims = np.array(self.blobs[name].shape[1:])[to_image]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(name)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = mean.copy().transpose(to_image)
        channel_order = self.transformer.channel_swap.get(name)
        if channel_order is not None:
            crop_mean = crop_mean[:, :, np.argsort(channel_order)]
        raw_scale = self.transformer.raw_scale.get(name)
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean
