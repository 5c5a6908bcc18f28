"""Input: tops of fixed shapes that the caller fills (`net.blobs['data'].data[...] = x`)."""
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Input")
class InputLayer(Layer):
    exact_num_bottom = 0
    min_top = 1
    cases = [Case("input_param { shape { dim: 2 dim: 3 } }", []),
             Case("input_param { shape { dim: 2 dim: 1 dim: 4 } shape { dim: 2 } }", [], tops=2),
             Case("input_param { shape { dim: 3 } }", [], tops=2)]

    def setup(self, bottom, top):
        shapes = self.layer_param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise self.error(f"input_param gives {len(shapes)} shapes for {len(top)} tops; give 1 or one per top")
        self.shapes = [tuple(shapes[0 if len(shapes) == 1 else i].dim) if shapes else None for i in range(len(top))]
        self._shaped = [None] * len(top)  # the blob each top was given its shape in

    def reshape(self, bottom, top):
        # A top takes its input_param shape once per blob; after that the caller owns the shape
        # (pycaffe reshapes an input blob, then the net).
        for i, (blob, shape) in enumerate(zip(top, self.shapes)):
            if shape is not None and blob is not self._shaped[i]:
                blob.reshape(shape)
                self._shaped[i] = blob

    def forward_cpu(self, bottom, top):
        pass
