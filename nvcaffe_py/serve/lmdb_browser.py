"""Browsing an LMDB of Datums (DIGITS 3's dataset explorer): a page of records as thumbnails with
their labels, optionally of one label only, and how many records each label has."""
import math
from collections import Counter

from ..datum import chw_to_image, datum_to_array, parse_datum
from ..db import open_reader
from ..errors import CaffeError
from .pictures import png_data_url, to_uint8

PER_PAGE_MAX = 200


def record_count(path) -> int:
    return open_reader(path).stat()["entries"]


def browse(path, page=0, per_page=48, label=None) -> dict:
    if page < 0 or not 1 <= per_page <= PER_PAGE_MAX:
        raise CaffeError(f"page must be 0 or more and per_page between 1 and {PER_PAGE_MAX}")
    counts, items, matching = Counter(), [], 0
    first = page * per_page
    with open_reader(path).begin(buffers=False) as txn:
        for key, value in txn.cursor():
            key = key.decode("utf-8", errors="replace")
            try:
                datum = parse_datum(value)
                counts[datum.label] += 1
                if label is not None and datum.label != label:
                    continue
                if first <= matching < first + per_page:
                    items.append(_thumbnail(key, datum))
            except CaffeError as exc:
                raise CaffeError(f"LMDB '{path}': record '{key}': {exc}") from None
            matching += 1
    return {"path": str(path), "records": sum(counts.values()), "matching": matching, "page": page,
            "per_page": per_page, "pages": math.ceil(matching / per_page),
            "label_counts": {str(k): counts[k] for k in sorted(counts)}, "items": items}


def _thumbnail(key, datum) -> dict:
    array = datum_to_array(datum)
    image = chw_to_image(array if array.dtype.kind == "u" else to_uint8(array))
    return {"key": key, "label": datum.label, "shape": list(array.shape), "image": png_data_url(image)}
