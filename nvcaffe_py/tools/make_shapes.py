"""make_shapes: a synthetic VOC-style detection dataset (shapes on noisy backgrounds), so that SSD
training can be tried end to end from the files a user would have.

    nvcaffe make_shapes [--output runs/shapes] [--num_train 400] [--num_test 100] [--size 96] [--seed 1]

Each SIZE x SIZE colour image has one to three filled shapes of three classes (circle, square,
triangle), each 22-45% of the image wide, in a colour far from a smooth, noisy background,
overlapping another by at most a third. Writes, as the VOC devkit lays them out:

    OUTPUT/JPEGImages/<name>.jpg        the images
    OUTPUT/Annotations/<name>.xml       VOC XML: size, and per object name, difficult 0, bndbox (pixels)
    OUTPUT/labelmap.prototxt            background 0, circle 1, square 2, triangle 3 (SSD's LabelMap)
    OUTPUT/trainval.txt, OUTPUT/test.txt   `JPEGImages/<name>.jpg Annotations/<name>.xml` lines

which `nvcaffe convert_annoset --anno_type=detection --label_map_file=OUTPUT/labelmap.prototxt
OUTPUT/ OUTPUT/trainval.txt DB` turns into an AnnotatedData LMDB. The same seed gives the same
files; each file is written to a temporary and renamed.
"""
import os

import cv2
import numpy as np

from .. import files
from ..datum import encode_image
from ..errors import CaffeError
from ..layers.bbox import pairwise_overlaps
from . import Progress, add_synthetic_flags, run_tool, say
from .gflags import GflagsParser

CLASSES = ("circle", "square", "triangle")
LABEL_MAP = "".join(f'item {{\n  name: "{name}"\n  label: {label}\n  display_name: "{name}"\n}}\n'
                    for label, name in enumerate(("background",) + CLASSES))


def _background(size, random):
    """A smooth colour gradient with Gaussian noise (float, BGR)."""
    corners = random.uniform(30, 225, size=(2, 2, 3))
    smooth = cv2.resize(corners, (size, size), interpolation=cv2.INTER_LINEAR)
    return smooth + random.normal(0, random.uniform(5, 20), size=(size, size, 3))


def _draw(image, shape, box, color):
    x0, y0, x1, y1 = (int(v) for v in box)
    if shape == "circle":
        cv2.ellipse(image, (((x0 + x1) / 2, (y0 + y1) / 2), (x1 - x0, y1 - y0), 0), color, -1, cv2.LINE_AA)
    elif shape == "square":
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), color, -1)
    else:
        points = np.array([[(x0 + x1) // 2, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], np.int32)
        cv2.fillPoly(image, [points], color, cv2.LINE_AA)


def render(size, random):
    """One image (uint8 BGR) and its objects [(class name, (xmin, ymin, xmax, ymax) pixels)]."""
    image = _background(size, random)
    objects = []
    for _ in range(int(random.integers(1, 4))):
        for _attempt in range(20):
            width = int(random.uniform(0.22, 0.45) * size)
            height = int(np.clip(width * random.uniform(0.8, 1.25), 0.2 * size, 0.5 * size))
            x, y = int(random.integers(0, size - width + 1)), int(random.integers(0, size - height + 1))
            box = np.array([x, y, x + width, y + height], np.float64)
            if not objects or pairwise_overlaps(box[None], np.array([b for _, b in objects]))[0].max() < 0.33:
                break
        else:
            continue
        name = CLASSES[int(random.integers(len(CLASSES)))]
        local = image[y:y + height, x:x + width].mean(axis=(0, 1))
        color = np.where(local > 128, random.uniform(0, 60, 3), random.uniform(195, 255, 3))
        _draw(image, name, box, tuple(float(c) for c in color))
        objects.append((name, box))
    return np.clip(image, 0, 255).astype(np.uint8), objects


def voc_xml(filename, size, objects) -> str:
    parts = [f"<annotation>\n  <folder>shapes</folder>\n  <filename>{filename}</filename>\n"
             f"  <size>\n    <width>{size}</width>\n    <height>{size}</height>\n    <depth>3</depth>\n  </size>\n"]
    for name, box in objects:
        xmin, ymin, xmax, ymax = (int(v) for v in box)
        parts.append(f"  <object>\n    <name>{name}</name>\n    <difficult>0</difficult>\n    <bndbox>\n"
                     f"      <xmin>{xmin}</xmin>\n      <ymin>{ymin}</ymin>\n      <xmax>{xmax}</xmax>\n"
                     f"      <ymax>{ymax}</ymax>\n    </bndbox>\n  </object>\n")
    parts.append("</annotation>\n")
    return "".join(parts)


def build_parser():
    p = GflagsParser("make_shapes", "Render a synthetic VOC-style detection dataset (images, XML, label map, lists).")
    p.add_flag("size", type=int, default=96, help="image width and height in pixels (default 96)")
    return add_synthetic_flags(p, "shapes", 400, 100)


def make(args) -> int:
    if args.size < 16 or args.num_train < 0 or args.num_test < 0:
        raise CaffeError("--size must be at least 16 and the image counts not negative")
    random = np.random.default_rng(args.seed)
    for folder in ("JPEGImages", "Annotations"):
        os.makedirs(os.path.join(args.output, folder), exist_ok=True)
    files.write_atomic(os.path.join(args.output, "labelmap.prototxt"), LABEL_MAP.encode())
    progress = Progress("images", args.num_train + args.num_test, every=500)
    for list_name, start, count in (("trainval.txt", 0, args.num_train), ("test.txt", args.num_train, args.num_test)):
        lines = []
        for index in range(start, start + count):
            name = f"{index:06d}"
            image, objects = render(args.size, random)
            files.write_atomic(os.path.join(args.output, "JPEGImages", name + ".jpg"), encode_image(image, "jpg"))
            files.write_atomic(os.path.join(args.output, "Annotations", name + ".xml"),
                               voc_xml(name + ".jpg", args.size, objects).encode())
            lines.append(f"JPEGImages/{name}.jpg Annotations/{name}.xml\n")
            progress.step()
        files.write_atomic(os.path.join(args.output, list_name), "".join(lines).encode())
    progress.done()
    say(f"Wrote {args.num_train} + {args.num_test} images with VOC annotations to {args.output}")
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), make, argv)
