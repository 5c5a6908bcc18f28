"""OpenCV dnn's Caffe importer as an outside reference for the fork layers and nets.

OpenCV 4.x (opencv-python-headless 4.14 is the last) reads Caffe prototxts with the SSD, ShuffleNet,
Interp, ROI and ReLU6 layers; OpenCV 5 removed the importer. The comparison is a test-time check
only (the `test` extra pins a 4.x OpenCV); where the installed OpenCV has no
cv2.dnn.readNetFromCaffe the tests that need it skip, saying so.
"""
import cv2
import numpy as np
import pytest


def require_caffe_importer():
    if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromCaffe"):
        pytest.skip(f"OpenCV {cv2.__version__} has no Caffe importer (the `test` extra pins "
                    "opencv-python-headless<5)")


def opencv_forward(tmp_path, prototxt: str, net, inputs: dict, outputs: list) -> dict:
    """OpenCV's outputs for our `net`'s definition `prototxt` and weights, on the same inputs."""
    require_caffe_importer()
    model, weights = tmp_path / "opencv.prototxt", tmp_path / "opencv.caffemodel"
    model.write_text(prototxt)
    net.save(str(weights))
    reference = cv2.dnn.readNetFromCaffe(str(model), str(weights))
    reference.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    for name, array in inputs.items():
        reference.setInput(np.ascontiguousarray(array, np.float32), name)
    return dict(zip(outputs, reference.forward(outputs)))


def sorted_detections(rows):
    """DetectionOutput rows by image, label and descending score (OpenCV orders them its own way),
    without the rows of zeros OpenCV pads its output with up to keep_top_k when its forward is
    asked for several outputs (a real detection scores above 0)."""
    rows = rows.reshape(-1, 7)
    rows = rows[np.any(rows != 0, axis=1)]
    return rows[np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))]
