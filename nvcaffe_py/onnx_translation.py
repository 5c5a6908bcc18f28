"""The registry of ONNX translations, one per layer type, as the layer registry is one of layer types.

    @onnx_translation("Pooling")
    def pooling(layer, g):          # g: the layer's view of the graph (nvcaffe_py.onnx_graph.LayerGraph)
        return [g.op("MaxPool", g.bottoms[0], kernel_shape=[...])]

A translation reads the set-up layer (its parameters and blobs) and the static shapes g gives,
adds ONNX nodes through g, and returns one ONNX value name per top. It raises `g.refuse(why)`
for a configuration ONNX cannot express. The built-in translations sit beside their layers
(layers/<family>_onnx.py); a plugin registers its own with the same decorator. Nothing here
imports onnx, so registering costs nothing where the `[onnx]` extra is not installed.
"""
from .errors import CaffeError

_translations: dict = {}


def onnx_translation(*type_names: str):
    """Register the decorated function as the ONNX translation of these layer types."""

    def decorate(function):
        for name in type_names:
            _translations[name] = function
        return function

    return decorate


def translated_types() -> list:
    return sorted(_translations)


def translation_for(layer):
    """The translation of `layer`'s type, or a CaffeError that names the layer and says why not."""
    translation = _translations.get(layer.type)
    if translation is not None:
        return translation
    if any(layer.default_loss_weights):
        why = "a loss layer, used in training; export the deploy net"
    elif layer.exact_num_bottom == 0:
        why = "a data layer, whose data comes from outside the graph; export a deploy net with Input layers"
    else:
        why = ("no ONNX translation is registered for this type "
               "(nvcaffe_py.onnx_translation.onnx_translation registers one)")
    raise refusal(layer, why)


def refusal(layer, why: str) -> CaffeError:
    return CaffeError(f"layer '{layer.name}' ({layer.type}) cannot be exported to ONNX: {why}")
