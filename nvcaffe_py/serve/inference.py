"""Testing a job's model in the server, on the CPU, with caffe.Net: its deploy net and a
snapshot's weights classify uploaded images (top 5 with probabilities); its TEST net scores the
whole validation set into a confusion matrix. An image goes through what the training images went
through: decoded in colour or gray as the dataset stores them, resized to the dataset's size in
its resize mode, then the TEST Data layer's transform (crop, mean, scale). Nets run one at a
time (the CPU backend's threads serve one net pass at once)."""
import contextlib
import os
import threading

import numpy as np

from ..data_transformer import DataTransformer
from ..datum import decode_image, image_to_chw
from ..errors import CaffeError
from ..net import Net
from ..proto import caffe_pb2
from . import datasets, jobs, networks
from .lmdb_browser import record_count
from .resize import resize
from .storage import read_json

TOP = 5
_one_net_at_a_time = threading.Lock()


@contextlib.contextmanager
def running_nets():
    with _one_net_at_a_time:
        yield


class Model:
    """A job's trained model at one snapshot (the newest by default)."""

    def __init__(self, jobs_dir, job_id, snapshot=None):
        self.folder = jobs_dir.folder(jobs.KIND, job_id)
        self.job = read_json(os.path.join(self.folder, jobs.JOB_FILE))
        self.iteration, self.weights = jobs.chosen_snapshot(self.folder, snapshot)
        self.deploy_path = os.path.join(self.folder, jobs.DEPLOY)
        if not os.path.exists(self.deploy_path):
            raise CaffeError("this job's net has no Data layers for TRAIN and TEST to read images through, so it "
                             "has no deploy version to test")
        self.train_val = networks.with_absolute_paths(jobs.train_val(self.folder), self.job["workdir"])
        with running_nets():
            self.net = Net(self.deploy_path, self.weights, caffe_pb2.TEST)
        self.input = self.net.inputs[0]
        test_layer = networks.data_layers(self.train_val)[caffe_pb2.TEST]
        self.transformer = DataTransformer(test_layer.transform_param, caffe_pb2.TEST)
        channels, height, width = networks.record_shape(self.train_val, self.job["workdir"])
        self.color, self.size, self.resize_mode = channels == 3, (height, width), "squash"
        self.labels = [str(k) for k in range(self.net.blobs[self.net.outputs[0]].shape[1])]
        if self.job["dataset"]:
            dataset = datasets.spec(jobs_dir.folder(datasets.KIND, self.job["dataset"]))
            self.resize_mode = dataset["resize_mode"]
            self.labels[:len(dataset["labels"])] = dataset["labels"]

    def preprocess(self, payload: bytes) -> np.ndarray:
        """An uploaded image's bytes as the net's input (C, H, W)."""
        try:
            image = decode_image(payload, self.color)
        except CaffeError:
            raise CaffeError("the upload is not an image that OpenCV can read (JPEG, PNG, BMP, ...)") from None
        image = image_to_chw(resize(image, *self.size, self.resize_mode))
        out = np.empty(self.transformer.output_shape(image.shape), np.float32)
        self.transformer.transform(image, out)
        return out

    def forward(self, payloads) -> dict:
        """The deploy net's blobs (name -> array of N items) for the images, run one by one."""
        batch = np.stack([self.preprocess(payload) for payload in payloads])
        with running_nets():
            out = self.net.forward_all(blobs=list(self.net.blobs), **{self.input: batch})
        return {name: out[name] for name in self.net.blobs}  # in the net's order

    def classify(self, payloads) -> list:
        """For each image, its top classes: [{"label", "index", "probability"}], best first."""
        scores = self.forward(payloads)[self.net.outputs[0]].reshape(len(payloads), -1)
        return [[{"index": int(k), "label": self.labels[k], "probability": float(row[k])}
                 for k in np.argsort(-row)[:TOP]] for row in scores]

    def evaluate(self) -> dict:
        """The validation set through the TEST net: accuracy, the confusion matrix (rows: true
        label, columns: predicted) and each class's accuracy."""
        data = networks.data_layers(self.train_val)[caffe_pb2.TEST]
        scores_blob, labels_blob = networks.classifier(self.train_val).top[0], data.top[1]
        count, batch = record_count(data.data_param.source), data.data_param.batch_size
        classes = len(self.labels)
        matrix = np.zeros((classes, classes), np.int64)
        with running_nets():
            net = Net(self.train_val, weights=self.weights, phase=caffe_pb2.TEST, source="the job's net")
            for start in range(0, count, batch):
                net.forward_from_to()
                take = min(batch, count - start)
                predicted = net.blobs[scores_blob].data_readonly().reshape(batch, -1)[:take].argmax(axis=1)
                truth = net.blobs[labels_blob].data_readonly().reshape(-1)[:take].astype(np.int64)
                if truth.min() < 0 or truth.max() >= classes:
                    raise CaffeError(f"the validation set has label {int(truth.max())} but the net has {classes} classes")
                np.add.at(matrix, (truth, predicted), 1)
        per_class = [float(matrix[k, k] / matrix[k].sum()) if matrix[k].sum() else None for k in range(classes)]
        return {"snapshot": self.iteration, "count": count, "labels": self.labels, "matrix": matrix.tolist(),
                "accuracy": float(np.trace(matrix) / max(count, 1)), "per_class": per_class}

