"""What the README promises: its test command is the one CI runs, the first steps of its "your own
images" walkthrough run as written, and models/alexnet/train_val_input.prototxt is its
train_val.prototxt with Input layers."""
import os
import re
import subprocess

import cv2
import numpy as np

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.net_surgery import data_layers_to_inputs
from nvcaffe_py.proto import caffe_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def code_blocks(section):
    """The indented code blocks of the README section headed `section`, dedented: runs of lines
    indented by 4 or more (blank lines inside included) that start with a non-blank one."""
    text = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks, current = [], []
    for line in text.splitlines() + ["end"]:
        if line.startswith("    ") or (current and not line.strip()):
            current.append(line)
        elif current:
            while not current[-1].strip():
                current.pop()
            indent = min(len(l) - len(l.lstrip()) for l in current if l.strip())
            blocks.append("\n".join(l[indent:] for l in current))
            current = []
    return blocks


def test_ci_runs_the_readme_test_command():
    command = code_blocks("The two commands")[1]
    assert command == 'python3 -m pip install -e ".[test]" && python3 -m pytest -q'
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read().splitlines()
    assert ci[-1] == command


def test_the_walkthrough_prepares_data_and_a_net_as_written(tmp_path, monkeypatch):
    """Steps 1 to 3 on three small classes: the lists, the LMDBs, the mean, the net and solver."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("ant", "bee", "cow")):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(5):
            image = rng.integers(0, 256, size=(20 + i, 24, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / "photos" / name / f"{i}.jpg"), image)
    os.symlink(os.path.join(ROOT, "models"), tmp_path / "models")
    steps = code_blocks("Your own images, step by step")
    script = "\n".join(["set -e", *steps[:3]]).replace("num_output: 10/", "num_output: 3/")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3 classes: ant, bee, cow" in result.stdout
    train = (tmp_path / "photos" / "train.txt").read_text().splitlines()
    val = (tmp_path / "photos" / "val.txt").read_text().splitlines()
    assert len(train) == 12 and len(val) == 3 and re.fullmatch(r"(ant|bee|cow)/\d\.jpg [012]", train[0])
    assert formats.read_mean_binaryproto(tmp_path / "runs/photos/mean.binaryproto").shape == (1, 3, 32, 32)
    solver = formats.read_solver_param(tmp_path / "mynet/solver.prototxt")
    assert solver.net == "mynet/train_val.prototxt" and solver.snapshot_prefix == "runs/photos/mynet"
    monkeypatch.chdir(tmp_path)
    net = caffe.Net("mynet/train_val.prototxt", caffe.TRAIN)
    assert net.blobs["data"].shape == (100, 3, 32, 32) and net.params["ip2"][0].shape == (3, 64)


def test_the_alexnet_input_variant_is_its_train_val_with_input_layers():
    models = os.path.join(ROOT, "models", "alexnet")
    train_val = formats.read_text(os.path.join(models, "train_val.prototxt"), caffe_pb2.NetParameter())
    variant = formats.read_text(os.path.join(models, "train_val_input.prototxt"), caffe_pb2.NetParameter())
    assert variant == data_layers_to_inputs(train_val, lambda layer: (3, 227, 227))
    assert [layer.type for layer in variant.layer[:2]] == ["Input", "Input"]
    assert list(variant.layer[0].input_param.shape[0].dim) == [256, 3, 227, 227]
