"""Arrays as pictures for the pages: PNG data URLs; a stack of 2-D maps (filters, activations)
tiled into one grid, scaled to 0..255 over the whole stack so that the maps compare."""
import base64
import math

import cv2
import numpy as np

from ..errors import CaffeError


def png_data_url(image) -> str:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise CaffeError(f"cannot draw an array of shape {image.shape} as a PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.tobytes()).decode("ascii")


def to_uint8(array) -> np.ndarray:
    """`array` stretched from its minimum to its maximum over 0..255 (a constant one is grey)."""
    array = np.asarray(array, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    if not math.isfinite(low) or not math.isfinite(high):
        array, low, high = np.nan_to_num(array), 0.0, 0.0
    if high == low:
        return np.full(array.shape, 128, np.uint8)
    return np.round((array - low) * (255.0 / (high - low))).astype(np.uint8)


def tile(maps, pad=1) -> np.ndarray:
    """(n, h, w) or (n, h, w, 3) maps in a near-square grid, `pad` pixels of the darkest value
    between them; the result is uint8."""
    maps = to_uint8(maps)
    count, height, width = maps.shape[:3]
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * (height + pad) - pad, columns * (width + pad) - pad) + maps.shape[3:], np.uint8)
    for index in range(count):
        top, left = (index // columns) * (height + pad), (index % columns) * (width + pad)
        grid[top:top + height, left:left + width] = maps[index]
    return grid
