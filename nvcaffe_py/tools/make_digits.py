"""make_digits: a synthetic, MNIST-like digit dataset, so that a first run needs no download.

    nvcaffe make_digits [--output runs/digits] [--num_train 10000] [--num_test 2000] [--seed 1]

Each 28x28 gray image is one digit 0-9 drawn with one of OpenCV's Hershey fonts (upright or
italic, random stroke thickness and size), sometimes with a stray stroke, then randomly rotated,
sheared, scaled and shifted, with random brightness, background level, blur and Gaussian noise:
white on black, like MNIST. Writes
OUTPUT/train_lmdb and OUTPUT/test_lmdb (raw Datums, keys `%08d`, labels balanced and shuffled)
and OUTPUT/preview.png (the first 100 training images). The same seed gives the same dataset;
existing outputs are replaced, atomically.
"""
import os

import cv2
import numpy as np

from ..datum import array_to_datum
from ..db import LMDBWriter
from . import Progress, add_synthetic_flags, run_tool, say
from .gflags import GflagsParser

SIZE = 28
CANVAS = 4 * SIZE  # drawn large, then shrunk: anti-aliased strokes of fractional width
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
         cv2.FONT_HERSHEY_SCRIPT_COMPLEX)


def render_digit(digit: int, random: np.random.Generator) -> np.ndarray:
    """One SIZE x SIZE uint8 image of `digit`."""
    font = FONTS[random.integers(len(FONTS))] | (cv2.FONT_ITALIC if random.random() < 0.3 else 0)
    thickness = int(random.integers(4, 19))
    text = str(digit)
    (width, height), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = random.uniform(0.55, 0.8) * CANVAS / height
    (width, height), _ = cv2.getTextSize(text, font, scale, thickness)
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    origin = ((CANVAS - width) // 2, (CANVAS + height) // 2)
    cv2.putText(canvas, text, origin, font, scale, 255, thickness, cv2.LINE_AA)
    if random.random() < 0.3:  # a stray stroke, as on scanned forms
        ends = random.integers(0, CANVAS, size=4)
        cv2.line(canvas, tuple(map(int, ends[:2])), tuple(map(int, ends[2:])), int(random.integers(60, 200)),
                 int(random.integers(3, 9)), cv2.LINE_AA)
    # Random affine about the centre: rotation, shear, scale, shift.
    angle = np.deg2rad(random.uniform(-20, 20))
    shear = random.uniform(-0.35, 0.35)
    zoom = random.uniform(0.8, 1.2)
    linear = zoom * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ [[1, shear], [0, 1]]
    centre = np.array([CANVAS / 2, CANVAS / 2])
    shift = random.uniform(-0.1, 0.1, size=2) * CANVAS
    affine = np.hstack([linear, (centre - linear @ centre + shift)[:, np.newaxis]])
    canvas = cv2.warpAffine(canvas, affine, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR)
    if random.random() < 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), random.uniform(1, 4))
    image = cv2.resize(canvas, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    image *= random.uniform(0.5, 1.0) * 255 / max(float(image.max()), 1.0)
    image += random.uniform(0, 40) + random.normal(0, random.uniform(0, 30), size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_digits(count: int, random: np.random.Generator):
    """(images count x SIZE x SIZE uint8, labels): each digit equally often, in random order."""
    labels = random.permutation(np.arange(count) % 10)
    return np.stack([render_digit(int(d), random) for d in labels]), labels


def write_lmdb(path, images, labels):
    progress = Progress("images", len(images), every=5000)
    with LMDBWriter(path, replace=True) as db:
        for index, (image, label) in enumerate(zip(images, labels)):
            db.put(f"{index:08d}", array_to_datum(image[np.newaxis], label).SerializeToString())
            progress.step()
    progress.done()
    say(f"Wrote {db.count} records to {path}")


def build_parser():
    p = GflagsParser("make_digits", "Render a synthetic MNIST-like digit dataset into train and test LMDBs.")
    return add_synthetic_flags(p, "digits", 10000, 2000)


def make(args) -> int:
    random = np.random.default_rng(args.seed)
    for name, count in (("train_lmdb", args.num_train), ("test_lmdb", args.num_test)):
        images, labels = render_digits(count, random)
        write_lmdb(os.path.join(args.output, name), images, labels)
        if name == "train_lmdb" and count >= 100:
            grid = images[:100].reshape(10, 10, SIZE, SIZE).transpose(0, 2, 1, 3).reshape(10 * SIZE, 10 * SIZE)
            cv2.imwrite(os.path.join(args.output, "preview.png"), grid)
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), make, argv)
