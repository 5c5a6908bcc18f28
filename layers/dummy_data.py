"""DummyData: tops of fixed shapes (`shape`, or legacy num/channels/height/width), filled by
`data_filler` (none: zeros; one for all tops; or one per top). As Caffe, a top with a constant
filler is filled once, when the layer first shapes it; the others are refilled on every forward."""
from nvcaffe_py.conformance import Case
from nvcaffe_py.filler import fill
from nvcaffe_py.layer import Layer
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.registry import register_layer

LEGACY_FIELDS = ("num", "channels", "height", "width")


@register_layer("DummyData")
class DummyDataLayer(Layer):
    exact_num_bottom = 0
    min_top = 1
    cases = [
        Case('dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "gaussian" std: 2 } }', []),
        Case('dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 4 } shape { dim: 1 dim: 1 dim: 2 } '
             'data_filler { type: "constant" value: 1.5 } data_filler { type: "uniform" min: 2 max: 3 } '
             'data_filler { } }', [], tops=3),
        Case('dummy_data_param { num: 2 channels: 3 channels: 1 height: 4 width: 5 data_filler { type: "xavier" } }',
             [], tops=2),
        Case('dummy_data_param { shape { dim: 5 } }', [], tops=2),
    ]

    def setup(self, bottom, top):
        p = self.layer_param.dummy_data_param
        n = len(top)
        fillers = list(p.data_filler) or [caffe_pb2.FillerParameter(type="constant", value=0)]
        if len(fillers) not in (1, n):
            raise self.error(f"{len(fillers)} data_filler(s) for {n} tops; give 0, 1 or one per top")
        self.fillers = [fillers[0 if len(fillers) == 1 else i] for i in range(n)]
        if any(len(getattr(p, f)) for f in LEGACY_FIELDS):
            if len(p.shape):
                raise self.error("give either shape or num/channels/height/width, not both")
            fields = []
            for f in LEGACY_FIELDS:
                values = list(getattr(p, f))
                if len(values) not in (1, n):
                    raise self.error(f"give '{f}' once, or once per top ({n} tops); got {len(values)}")
                fields.append(values)
            self.shapes = [tuple(v[0 if len(v) == 1 else i] for v in fields) for i in range(n)]
        else:
            if len(p.shape) not in (1, n):
                raise self.error(f"give 'shape' once, or once per top ({n} tops); got {len(p.shape)}")
            self.shapes = [tuple(p.shape[0 if len(p.shape) == 1 else i].dim) for i in range(n)]
        self.refill = [f.type != "constant" for f in self.fillers]
        self._filled_once = [None] * n  # the blob each constant top was filled in

    def reshape(self, bottom, top):
        for i, (blob, shape, filler, refill) in enumerate(zip(top, self.shapes, self.fillers, self.refill)):
            blob.reshape(shape)
            # Once per blob: set-up's tops, or tops handed to the layer later.
            if not refill and blob is not self._filled_once[i]:
                fill(blob, filler)
                self._filled_once[i] = blob

    def forward_cpu(self, bottom, top):
        for blob, filler, refill in zip(top, self.fillers, self.refill):
            if refill:
                fill(blob, filler)
