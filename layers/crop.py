"""Crop: cuts bottom[0] to the shape of bottom[1] on every axis from `axis` on, starting at `offset`
(none: 0; one: the same for every cropped axis; else one per cropped axis)."""
from nvcaffe_py.conformance import Case
from nvcaffe_py.layer import Layer
from nvcaffe_py.registry import register_layer


@register_layer("Crop")
class CropLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 1
    cases = [Case("", [(3, 4, 5, 5), (2, 2, 3, 3)]),
             Case("crop_param { axis: 2 offset: 1 }", [(3, 4, 5, 5), (2, 2, 3, 3)]),
             Case("crop_param { axis: 1 offset: 1 offset: 2 offset: 0 }", [(3, 4, 5, 5), (2, 2, 3, 3)]),
             Case("crop_param { axis: -1 offset: 2 }", [(2, 3, 5), (1, 1, 2)]),
             Case("crop_param { axis: 0 offset: 1 }", [(3, 4, 5), (2, 2, 3)])]

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0  # only the reference's shape is read

    def reshape(self, bottom, top):
        data, ref = bottom[0].shape, bottom[1].shape
        if len(data) != len(ref):
            raise self.error(f"input {data} and reference {ref} must have the same number of axes")
        p = self.layer_param.crop_param
        start = self.canonical_axis(bottom[0], p.axis)
        offsets = list(p.offset)
        if len(offsets) > 1 and len(offsets) != len(data) - start:
            raise self.error(f"{len(offsets)} offsets for the {len(data) - start} axes from axis {start} "
                             f"of input shape {data}; give 0, 1 or one per cropped axis")
        window, shape = [], []
        for i, size in enumerate(data):
            if i < start:
                window.append(slice(None))
                shape.append(size)
                continue
            offset = offsets[0] if len(offsets) == 1 else (offsets[i - start] if offsets else 0)
            if offset + ref[i] > size:
                raise self.error(f"crop of axis {i} out of bounds: input {data}, reference {ref}, offset {offset}")
            window.append(slice(offset, offset + ref[i]))
            shape.append(ref[i])
        self.window = tuple(window)
        top[0].reshape(shape)

    def forward_cpu(self, bottom, top):
        top[0].data[...] = bottom[0].data_readonly()[self.window]

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            diff[...] = 0
            diff[self.window] = top[0].diff_readonly()
        if propagate_down[1]:
            bottom[1].diff[...] = 0  # the output does not depend on the reference's values
