"""Input: tops of fixed shapes that the caller fills (`net.blobs['data'].data[...] = x`)."""
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Input")
class InputLayer(Layer):
    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        shapes = self.layer_param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise self.error(f"input_param gives {len(shapes)} shapes for {len(top)} tops; give 1 or one per top")
        for i, blob in enumerate(top):
            if shapes:
                blob.reshape(tuple(shapes[0 if len(shapes) == 1 else i].dim))

    def reshape(self, bottom, top):
        pass  # the caller owns the shape (pycaffe reshapes input blobs directly)

    def forward_cpu(self, bottom, top):
        pass

    def backward_cpu(self, top, propagate_down, bottom):
        pass
