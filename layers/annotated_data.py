"""AnnotatedData (SSD, weiliu89/caffe): batches of AnnotatedDatum records (an image and its
boxes, as `nvcaffe convert_annoset --anno_type=detection` writes them) from an LMDB or LevelDB
(`data_param { source batch_size backend rand_skip prefetch }`), with SSD's data augmentation,
prefetched by the background thread of layers/base_data.py.

Each record goes through layers/annotated_transform.py: `transform_param`'s distort_param,
expand_param, then one window of `annotated_data_param.batch_sampler` (layers/batch_sampler.py)
chosen at random among those found (the whole image when none is), then resize_param,
noise_param, crop, mirror, mean_value or mean_file and scale. Every image of a batch must come out
the same size (give a WARP or FIT_LARGE_SIZE_AND_PAD resize_param, or a crop, when the records'
images differ).

The label top (the second) in SSD's layout: (1, 1, K, 8), one row per box of the batch, item_id,
group_label, instance_id, xmin, ymin, xmax, ymax, difficult (normalized to the output image); a
batch without any box gives one row of -1. Records without an annotation type (and no
`anno_type` given) are plain classification records: the label top is then (N,) of their
datum's labels. With `label_map_file`, a group label the map does not hold is an error naming the
record. Random choices come from a stream seeded from nvcaffe_py.rng, so a seeded run repeats.
"""
import numpy as np

from nvcaffe_py.conformance import Exempt
from nvcaffe_py.datum import parse_record
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.label_map import read_label_map
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer
from nvcaffe_py.scaleout import dealing

from . import batch_sampler
from .annotated_transform import Annotated, AnnotatedTransformer
from .base_data import PrefetchingDataLayer
from .data import DatabaseSource

BBOX = caffe_pb2.AnnotatedDatum.BBOX


def parse_annotated_datum(payload: bytes) -> "caffe_pb2.AnnotatedDatum":
    record = parse_record(payload, caffe_pb2.AnnotatedDatum())
    if not record.HasField("datum"):
        raise CaffeError("not an AnnotatedDatum (it holds no datum; a database of plain Datums is read by a "
                         "Data layer)")
    return record


class AnnotatedBatchLoader:
    """Reads, augments and transforms one batch in the prefetch thread; holds no reference to the layer."""

    def __init__(self, source, transformer, samplers, batch_size, annotated, labels_known, dtype, where):
        self.source, self.transformer, self.samplers = source, transformer, samplers
        self.batch_size, self.annotated, self.labels_known = batch_size, annotated, labels_known
        self.dtype, self.where = dtype, where

    def load(self, key, payload):
        """One record, augmented: an Annotated and the record's datum label."""
        record = parse_annotated_datum(payload)
        if self.annotated and record.type != BBOX:
            raise CaffeError(f"annotation type {record.type} is not BBOX")
        sample = Annotated.from_record(record, self.transformer.color)
        if self.labels_known is not None:
            unknown = sorted(set(sample.labels.tolist()) - self.labels_known)
            if unknown:
                raise CaffeError(f"group label {unknown[0]} is not in the label map")
        t = self.transformer
        sample = t.expand(t.distort(sample))
        if self.samplers:
            windows = batch_sampler.generate_samples(self.samplers, sample.boxes, t.random)
            if windows:
                sample = t.crop_to(sample, windows[int(t.random.integers(len(windows)))])
        return sample, record.datum.label

    def __call__(self):
        data, rows, labels = None, [], np.empty(self.batch_size, self.dtype)
        for item in range(self.batch_size):
            key, payload = self.source.next()
            try:
                sample, labels[item] = self.load(key, payload)
                shape = self.transformer.output_shape(sample.image.shape)
                if data is None:
                    data = np.empty((self.batch_size,) + shape, self.dtype)
                elif shape != data.shape[1:]:
                    raise CaffeError(f"the transformed image is {shape}, but the batch's first is {data.shape[1:]} "
                                     f"(give transform_param a resize_param of one size, WARP or "
                                     f"FIT_LARGE_SIZE_AND_PAD, or a crop)")
                rows.append(self.transformer.transform(sample, data[item]).label_rows(item))
            except CaffeError as exc:
                raise CaffeError(f"{self.where}: record '{key}' of {self.source.description}: {exc}") from None
        if not self.annotated:
            return data, labels
        rows = np.concatenate(rows)
        if not len(rows):
            rows = np.full((1, 8), -1.0)
        return data, rows.reshape(1, 1, -1, 8).astype(self.dtype)


@register_layer("AnnotatedData")
class AnnotatedDataLayer(PrefetchingDataLayer):
    cases = Exempt("reads an LMDB of AnnotatedDatums: tests/test_annotated_data.py, tests/test_ssd_synthetic.py")

    def batch_size(self) -> int:
        return self.layer_param.data_param.batch_size

    def prefetch_depth(self) -> int:
        return self.layer_param.data_param.prefetch

    def setup(self, bottom, top):
        where = f"layer '{self.name}' ({self.type})"
        p, data = self.layer_param.annotated_data_param, self.layer_param.data_param
        if data.batch_size <= 0:
            raise self.error("data_param.batch_size must be positive")
        if not data.source:
            raise self.error("data_param.source is not set")
        try:
            for k, sampler in enumerate(p.batch_sampler):
                batch_sampler.check(sampler, f"batch_sampler #{k + 1}")
            transformer = AnnotatedTransformer(self.layer_param.transform_param, self.phase, self.dtype)
            labels_known = None
            if p.label_map_file:
                labels_known = {item.label for item in read_label_map(p.label_map_file).item}
            source = DatabaseSource(data.source, data.rand_skip)
            if dealing.applies(self.phase):
                source = dealing.DealtSource(source, source.size())
        except CaffeError as exc:
            raise self.error(str(exc)) from None
        key, payload = source.peek()
        try:
            record = parse_annotated_datum(payload)
            annotated = record.HasField("type") or p.HasField("anno_type")
            if p.HasField("anno_type") and p.anno_type != BBOX or annotated and record.type != BBOX:
                raise CaffeError("only BBOX annotations are supported")
            image_shape = Annotated.from_record(record, transformer.color).image.shape
            shape = transformer.output_shape(image_shape)
        except CaffeError as exc:
            raise CaffeError(f"{where}: record '{key}' of {source.description}: {exc}") from None
        top[0].reshape((data.batch_size,) + shape)
        if len(top) > 1:
            boxes = sum(len(g.annotation) for g in record.annotation_group)
            top[1].reshape((1, 1, max(boxes, 1), 8) if annotated else (data.batch_size,))
        self.source = source
        loader = AnnotatedBatchLoader(source, transformer, list(p.batch_sampler), data.batch_size, annotated,
                                      labels_known, self.dtype, where)
        self.start_prefetching(loader, where)
