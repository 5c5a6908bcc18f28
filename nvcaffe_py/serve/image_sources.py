"""Where a dataset's images come from: a folder with a sub-folder per class (DIGITS' layout; the
labels are the sub-folders' names in sorted order), or a Caffe list file of `path label` lines
(paths from the list's folder). Both give [(absolute path, label)] and the label names; the split
into training and validation images is made here too, class by class."""
import os
import random

from ..datum import read_image_list
from ..errors import CaffeError
from .storage import under_root

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def class_folders(folder) -> tuple[list, list]:
    """(label names, [(path, label)]) of a folder of class sub-folders (searched to any depth)."""
    if not os.path.isdir(folder):
        raise CaffeError(f"'{folder}' is not a folder")
    names, items = [], []
    for name in sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)) and d[0] != "."):
        images = [os.path.join(where, f) for where, dirs, files in sorted(os.walk(os.path.join(folder, name)))
                  for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS) and f[0] != "." and "\n" not in f]
        if images:
            items += [(path, len(names)) for path in images]
            names.append(name)
    if not items:
        raise CaffeError(f"no images found in '{folder}': expected a sub-folder per class holding JPEG or PNG "
                         f"files ({', '.join(IMAGE_EXTENSIONS)})")
    return names, items


def list_file(path, root) -> tuple[list, list]:
    """(label names '0'..'K-1', [(path, label)]) of a list file; each image must be under `root`."""
    base = os.path.dirname(path)
    items = []
    for number, name, label in read_image_list(path):
        image = under_root(root, os.path.join(base, name), f"image '{name}' ({os.path.basename(path)}:{number})")
        if not os.path.isfile(image):
            raise CaffeError(f"{path}:{number}: no image '{image}'")
        if label < 0:
            raise CaffeError(f"{path}:{number}: labels are 0 or more (got {label})")
        items.append((image, label))
    if not items:
        raise CaffeError(f"{path} lists no images")
    return [str(label) for label in range(max(label for _, label in items) + 1)], items


def split(items, val_percent, seed=0) -> tuple[list, list]:
    """(training, validation) items: `val_percent` of each class's images, chosen at random (a
    fixed seed: the same folder gives the same split), go to validation."""
    generator = random.Random(seed)
    train, val = [], []
    for label in sorted({label for _, label in items}):
        members = [item for item in items if item[1] == label]
        generator.shuffle(members)
        held_out = round(len(members) * val_percent / 100)
        val += members[:held_out]
        train += members[held_out:]
    if not train or not val:
        raise CaffeError(f"{len(items)} images split {100 - val_percent}/{val_percent} leave "
                         f"{len(train)} for training and {len(val)} for validation; each needs at least one")
    return train, val
