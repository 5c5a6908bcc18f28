"""The layer registry: the decorator, suggestions for unknown types, entry-point plugins, and the
one-call gradient check a plugin author runs."""
import sys
import textwrap

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import registry
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text
from nvcaffe_py.gradient_check import check_layer_gradient


@caffe.register_layer("TestRegistryTriple")
class TripleLayer(caffe.Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def forward_cpu(self, bottom, top):
        np.multiply(bottom[0].data, 3, out=top[0].data)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            np.multiply(top[0].diff, 3, out=bottom[0].diff)


@caffe.register_layer("TestRegistryTripleWrongBackward")
class TripleWrongBackwardLayer(TripleLayer):
    def backward_cpu(self, top, propagate_down, bottom):
        np.multiply(top[0].diff, 2, out=bottom[0].diff)  # the bug under test: should be 3


@pytest.fixture
def isolated_registry(monkeypatch):
    """Types registered or plugins loaded by a test vanish afterwards."""
    monkeypatch.setattr(registry, "_layer_types", dict(registry._layer_types))
    monkeypatch.setattr(registry, "_plugin_errors", {})
    monkeypatch.setitem(registry._state, "plugins_loaded", False)


def test_decorator_registers_the_class_and_a_net_uses_it():
    assert registry.layer_class("TestRegistryTriple") is TripleLayer
    assert "TestRegistryTriple" in caffe.layer_types()
    net = caffe.Net(net_param_from_text("""
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "triple" type: "TestRegistryTriple" bottom: "x" top: "y" }
    """), caffe.TEST)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(net.forward(x=x)["y"], 3 * x)
    assert type(net.layer_dict["triple"]) is TripleLayer


@pytest.mark.parametrize("typo, suggestion", [("Softmx", "Softmax"), ("relu", "ReLU"),
                                              ("TestRegistryTripel", "TestRegistryTriple")])
def test_unknown_type_suggests_close_names(typo, suggestion):
    with pytest.raises(CaffeError, match=f"unknown layer type '{typo}'; did you mean .*'{suggestion}'"):
        registry.layer_class(typo)


def test_unknown_type_without_close_names():
    with pytest.raises(CaffeError) as info:
        registry.layer_class("Qwxyzzy")
    assert str(info.value) == "unknown layer type 'Qwxyzzy'"


def test_unknown_type_in_a_net_is_a_caffe_error():
    with pytest.raises(CaffeError, match="unknown layer type 'Sigmoyd'.*'Sigmoid'"):
        caffe.Net(net_param_from_text("""
            layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }
            layer { name: "act" type: "Sigmoyd" bottom: "x" top: "y" }
        """), caffe.TEST)


PLUGIN_MODULE = """
    import numpy as np
    from nvcaffe_py import Layer

    class CubeLayer(Layer):
        exact_num_bottom = 1
        exact_num_top = 1

        def reshape(self, bottom, top):
            top[0].reshape_like(bottom[0])

        def forward_cpu(self, bottom, top):
            np.power(bottom[0].data, 3, out=top[0].data)
"""


def install_fake_distribution(root, entry_points):
    """A distribution as pip leaves it in site-packages: `fakeplugin-0.1.dist-info/` + module."""
    info = root / "fakeplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{entry_points}\n")
    (root / "fakeplugin_layers.py").write_text(textwrap.dedent(PLUGIN_MODULE))


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch, isolated_registry):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fakeplugin_layers", None)


def test_plugin_from_an_installed_distribution(plugin_dir):
    install_fake_distribution(plugin_dir, "FakePluginCube = fakeplugin_layers:CubeLayer")
    cls = registry.layer_class("FakePluginCube")
    assert cls.__module__ == "fakeplugin_layers" and cls.__name__ == "CubeLayer"
    net = caffe.Net(net_param_from_text("""
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 3 } } }
        layer { name: "cube" type: "FakePluginCube" bottom: "x" top: "y" }
    """), caffe.TEST)
    np.testing.assert_array_equal(net.forward(x=[1, 2, -3])["y"], [1, 8, -27])


def test_broken_plugin_is_named_when_used_and_spares_the_others(plugin_dir):
    install_fake_distribution(plugin_dir, "FakePluginBroken = fakeplugin_layers:NoSuchLayer\n"
                                          "FakePluginCube = fakeplugin_layers:CubeLayer")
    with pytest.raises(CaffeError, match="^layer plugin 'FakePluginBroken' .*failed to load"):
        registry.layer_class("FakePluginBroken")
    assert registry.layer_class("FakePluginCube").__name__ == "CubeLayer"
    with pytest.raises(CaffeError, match="did you mean 'Sigmoid'"):  # other lookups are unaffected
        registry.layer_class("Sigmoyd")


def test_plugin_author_gradient_check_passes_on_a_correct_layer():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    layer = check_layer_gradient('name: "tripler" type: "TestRegistryTriple"', [x])
    assert isinstance(layer, TripleLayer)


def test_plugin_author_gradient_check_fails_on_a_wrong_backward():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    with pytest.raises(AssertionError, match=r"layer 'broken' \(TestRegistryTripleWrongBackward\): gradient of bottom\[0\]"):
        check_layer_gradient('name: "broken" type: "TestRegistryTripleWrongBackward"', [x])
