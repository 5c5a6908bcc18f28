"""ONNX export: every layer configuration the conformance cases declare, and ONNX's edge cases of
Caffe's semantics, exported and run by onnxruntime against our forward (every top compared, not
only the outputs); every zoo deploy net likewise; the refusals, the file, the command line.

Skipped, with the reason, where the `[onnx]` extra (onnx, onnxruntime) is not installed."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the [onnx] extra is not installed (pip install -e '.[onnx]')")
pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed (pip install -e '.[onnx]')")

import onnx  # noqa: E402

import nvcaffe_py as caffe  # noqa: E402
from nvcaffe_py import CaffeError, Layer, formats, onnx_export, register_layer, registry  # noqa: E402
from nvcaffe_py import onnx_translation as onnx_translation_module  # noqa: E402
from nvcaffe_py.conformance import declared_cases  # noqa: E402
from nvcaffe_py.net_surgery import data_layers_to_inputs  # noqa: E402
from nvcaffe_py.onnx_translation import onnx_translation, translated_types  # noqa: E402
from nvcaffe_py.registry import builtin_layer_types, layer_class  # noqa: E402

import fork_nets  # noqa: E402
from conftest import SHARED, shared_path  # noqa: E402
from onnx_helpers import RELATIVE_TOLERANCE, compare_with_onnxruntime, net_around, randomize_weights  # noqa: E402

# Configurations the export refuses by design, with the reason it gives.
REFUSED = {
    "DummyData": "draws new values every forward",  # its random fillers (constant ones are exported)
    "Filter": "the exported shapes are static",
    "DetectionOutput": "adaptive NMS (eta 0.9 < 1) has no ONNX counterpart",  # the case with eta
}


def assert_matches(net, feeds, opset=onnx_export.DEFAULT_OPSET):
    differences = compare_with_onnxruntime(net, feeds, opset)
    worst = max(differences, key=differences.get)
    assert differences[worst] <= RELATIVE_TOLERANCE, f"blob '{worst}' differs by {differences[worst]:.3g} (relative)"


def conformance_cases():
    return [(name, k) for name in translated_types() if name in builtin_layer_types()
            for k in range(len(list(declared_cases(layer_class(name)) or ())))]


@pytest.mark.parametrize("type_name,index", conformance_cases(), ids=lambda v: str(v))
def test_every_conformance_case_exports_and_matches_onnxruntime(type_name, index):
    """Each case built as a TEST-phase net (Input layers, then the layer), as a deploy net runs it."""
    case = list(declared_cases(layer_class(type_name)))[index]
    net, feeds = net_around(f'type: "{type_name}" {case.params}', case.arrays(), case.tops, case.in_place)
    if case.prepare is not None:
        case.prepare(net.layers[-1], net.bottom_vecs[-1])
    if type_name == "Silence":  # it leaves the net no output: keep its input as one too
        net, feeds = net_around('type: "Split"', case.arrays()[:1], tops=2)
    try:
        assert_matches(net, feeds)
    except CaffeError as exc:
        if type_name not in REFUSED:
            raise
        assert REFUSED[type_name] in str(exc)


# ONNX-specific edge cases of Caffe's semantics the conformance cases do not reach.
EDGE_CASES = [
    # Pooling's ceil rounding: a window past the image (no pad), a window clipped by the padded
    # image (AVE divides by its clipped size), a last window that would start in the padding
    # (dropped), GoogLeNet's 3x3/2 on an even size, FLOOR, and the MAX mask with padding.
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 }', [(1, 2, 8, 8)], 1),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }', [(1, 2, 8, 6)], 1),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 }', [(1, 2, 5, 5)], 1),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 }', [(1, 2, 5, 5)], 1),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }', [(1, 2, 8, 8)], 1),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR }', [(1, 2, 8, 9)], 1),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }', [(2, 2, 8, 6)], 2),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 7 }', [(1, 3, 7, 7)], 1),  # a full-size kernel
    ('type: "Pooling" pooling_param { pool: AVE kernel_h: 3 kernel_w: 1 stride_h: 3 stride_w: 1 pad_h: 1 pad_w: 0 }',
     [(1, 2, 7, 4)], 1),
    # Grouped, dilated, strided and padded at once; a deconvolution with all of those; one on axis 2.
    ('type: "Convolution" convolution_param { num_output: 6 group: 3 kernel_size: 3 dilation: 2 stride: 2 pad: 2 '
     'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', [(2, 3, 11, 9)], 1),
    ('type: "Deconvolution" convolution_param { num_output: 6 group: 3 kernel_size: 4 dilation: 2 stride: 3 pad: 2 '
     'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', [(2, 3, 5, 4)], 1),
    ('type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 3 stride: 2 axis: 2 '
     'weight_filler { type: "gaussian" } }', [(2, 2, 3, 4, 5)], 1),
    # Inner product over axis 2 of a 4-D input: the top keeps the leading axes.
    ('type: "InnerProduct" inner_product_param { num_output: 3 axis: 2 weight_filler { type: "gaussian" } '
     'bias_filler { type: "gaussian" } }', [(2, 3, 4, 5)], 1),
    # LRN wider than the channels, across; and within a channel at an odd size.
    ('type: "LRN" lrn_param { local_size: 7 alpha: 3 beta: 0.5 k: 1.5 }', [(2, 4, 3, 3)], 1),
    ('type: "LRN" lrn_param { local_size: 5 alpha: 0.7 beta: 0.6 norm_region: WITHIN_CHANNEL }', [(1, 2, 7, 3)], 1),
    # Power's constant output (scale 0), Exp and Log in base 10.
    ('type: "Power" power_param { power: 2 scale: 0 shift: -1.5 }', [(2, 3)], 1),
    ('type: "Exp" exp_param { base: 10 scale: 0.3 shift: -0.5 }', [(2, 3, 4)], 1),
    ('type: "Log" log_param { base: 10 scale: 2 shift: 7 }', [(2, 3, 4)], 1),
]


@pytest.mark.parametrize("text,shapes,tops", EDGE_CASES)
def test_edge_cases_of_caffes_semantics_match_onnxruntime(text, shapes, tops):
    generator = np.random.default_rng(3)
    assert_matches(*net_around(text, [generator.standard_normal(shape) for shape in shapes], tops))


@pytest.mark.parametrize("opset", [onnx_export.MIN_OPSET, 18, onnx.defs.onnx_opset_version()])
def test_the_opset_dependent_forms_match_at_every_opset(opset):
    # Reductions take their axes as an attribute before opset 18 and as an input from it on.
    for text, shape in (('type: "MVN" mvn_param { across_channels: true }', (2, 3, 4, 5)),
                        ('type: "Reduction" reduction_param { operation: SUMSQ axis: 1 coeff: 0.5 }', (2, 3, 4)),
                        ('type: "BatchNorm" batch_norm_param { use_global_stats: false }', (3, 2, 4)),
                        ('type: "Normalize" norm_param { across_spatial: false }', (2, 3, 4))):
        net, feeds = net_around(text, [np.random.default_rng(0).standard_normal(shape)])
        assert_matches(net, feeds, opset)


def test_infogain_loss_with_its_matrix_from_a_file(tmp_path):
    generator = np.random.default_rng(5)
    path = tmp_path / "H.binaryproto"
    formats.write_binary(path, formats.blob_to_proto(generator.uniform(0, 2, (1, 1, 3, 3))))
    labels = generator.integers(0, 3, (2, 1, 2, 2)).astype(np.float64)
    net, feeds = net_around(f'type: "InfogainLoss" infogain_loss_param {{ source: "{path}" }} '
                            'loss_param { ignore_label: 1 }', [generator.standard_normal((2, 3, 2, 2)), labels])
    assert_matches(net, feeds)


def test_argmax_breaks_ties_toward_the_larger_index_as_caffe():
    # After a ReLU most scores tie at 0; Caffe ranks equal scores by the larger index first.
    scores = np.array([[0, 2, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]], np.float64)
    for params in ("argmax_param { top_k: 4 }", "argmax_param { top_k: 3 out_max_val: true }",
                   "argmax_param { axis: 1 top_k: 5 }"):
        net, feeds = net_around(f'type: "ArgMax" {params}', [scores])
        assert_matches(net, feeds)


@pytest.fixture
def isolated_registries(monkeypatch):
    """Layer types and translations a test registers are gone after it."""
    monkeypatch.setattr(registry, "_layer_types", dict(registry._layer_types))
    monkeypatch.setattr(onnx_translation_module, "_translations", dict(onnx_translation_module._translations))


def test_a_wrong_translation_is_caught_by_the_comparison(isolated_registries):
    # The comparison must be able to fail: a translation that forgets Caffe's 1/size in LRN's
    # alpha (a classic porting mistake) differs by far more than the tolerance.
    @register_layer("TestLRNMisported")
    class MisportedLRN(layer_class("LRN")):
        cases = ()

    @onnx_translation("TestLRNMisported")
    def misported(layer, g):
        return [g.op("LRN", g.bottoms[0], size=layer.size, alpha=float(layer.alpha) * layer.size,
                     beta=float(layer.beta), bias=float(layer.k))]

    x = [np.random.default_rng(1).standard_normal((1, 6, 3, 3)) * 3]
    net, feeds = net_around('type: "TestLRNMisported" lrn_param { local_size: 5 alpha: 0.5 }', x)
    differences = compare_with_onnxruntime(net, feeds)
    assert max(differences.values()) > 100 * RELATIVE_TOLERANCE
    net, feeds = net_around('type: "LRN" lrn_param { local_size: 5 alpha: 0.5 }', x)
    assert_matches(net, feeds)


def test_a_plugin_type_exports_through_its_own_translation(isolated_registries):
    @register_layer("TestCube")
    class CubeLayer(Layer):
        exact_num_bottom = exact_num_top = 1
        cases = ()

        def reshape(self, bottom, top):
            top[0].reshape_like(bottom[0])

        def forward_cpu(self, bottom, top):
            top[0].data[...] = bottom[0].data_readonly() ** 3

    net, feeds = net_around('type: "TestCube"', [np.arange(6.0).reshape(2, 3)])
    with pytest.raises(CaffeError, match=r"^layer 'tested' \(TestCube\) cannot be exported to ONNX: no ONNX "
                                         r"translation is registered"):
        onnx_export.export(net)

    @onnx_translation("TestCube")
    def cube(layer, g):
        return [g.op("Pow", g.bottoms[0], g.constant(3, "three"))]

    assert_matches(net, feeds)


# -- refusals ---------------------------------------------------------------------------------
def _one_line_refusal(net, layer_name, type_name, why):
    with pytest.raises(CaffeError) as info:
        onnx_export.export(net)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"layer '{layer_name}' ({type_name}) cannot be exported to ONNX: ")
    assert why in message


def test_random_training_behaviour_is_refused_naming_the_layer():
    x = [np.ones((2, 3, 4, 4))]
    train_dropout = caffe_net('layer { name: "drop" type: "Dropout" bottom: "in0" top: "out" }', x, caffe.TRAIN)
    _one_line_refusal(train_dropout, "drop", "Dropout", "TRAIN-phase dropout is random")
    stochastic = caffe_net('layer { name: "pool" type: "Pooling" bottom: "in0" top: "out" '
                           'pooling_param { pool: STOCHASTIC kernel_size: 2 } }', x, caffe.TRAIN)
    _one_line_refusal(stochastic, "pool", "Pooling", "STOCHASTIC pooling samples at random")
    batch_norm = caffe_net('layer { name: "bn" type: "BatchNorm" bottom: "in0" top: "out" }', x, caffe.TRAIN)
    assert_matches(batch_norm, {"in0": x[0]})  # normalized by the batch's statistics, which ONNX expresses


def test_a_type_without_a_translation_is_refused_with_what_the_exporter_can_tell(isolated_registries):
    @register_layer("TestLossWithoutTranslation")
    class PluginLoss(layer_class("EuclideanLoss")):
        cases = ()

    net = caffe_net('layer { name: "loss" type: "TestLossWithoutTranslation" bottom: "in0" bottom: "in1" '
                    'top: "loss" }', [np.ones((2, 3))] * 2, caffe.TEST)
    _one_line_refusal(net, "loss", "TestLossWithoutTranslation", "a loss layer, used in training")


def test_a_data_layer_is_refused_naming_it():
    net = caffe.Net(formats.net_param_from_text(
        'layer { name: "dummy" type: "DummyData" top: "x" dummy_data_param { shape { dim: 2 } '
        'data_filler { type: "uniform" } } }'), caffe.TEST)
    _one_line_refusal(net, "dummy", "DummyData", "draws new values every forward")
    net = caffe.Net(formats.net_param_from_text(
        'layer { name: "memory" type: "MemoryData" top: "x" top: "y" '
        'memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }'), caffe.TEST)
    _one_line_refusal(net, "memory", "MemoryData", "a data layer")


def test_a_python_layer_is_refused_naming_its_code():
    net = caffe_net('layer { name: "py" type: "Python" bottom: "in0" bottom: "in1" top: "loss" '
                    "python_param { module: 'pyloss' layer: 'EuclideanLossLayer' } }", [np.ones((2, 3))] * 2, caffe.TEST)
    _one_line_refusal(net, "py", "Python", "it runs Python code (pyloss.EuclideanLossLayer)")


def test_hdf5_output_is_refused(tmp_path):
    net = caffe_net(f'layer {{ name: "save" type: "HDF5Output" bottom: "in0" bottom: "in1" '
                    f'hdf5_output_param {{ file_name: "{tmp_path / "out.h5"}" }} }}', [np.ones((2, 3))] * 2, caffe.TEST)
    _one_line_refusal(net, "save", "HDF5Output", "writes its bottoms to an HDF5 file")


def test_a_window_wholly_outside_the_image_is_refused():
    net, _ = net_around('type: "Pooling" pooling_param { pool: MAX kernel_size: 1 stride: 3 }', [np.ones((1, 1, 5, 5))])
    _one_line_refusal(net, "tested", "Pooling", "lies wholly outside")


def caffe_net(layers_text, arrays, phase):
    inputs = "".join(f'layer {{ name: "in{i}" type: "Input" top: "in{i}" input_param {{ shape {{ '
                     f'{" ".join(f"dim: {d}" for d in a.shape)} }} }} }}' for i, a in enumerate(arrays))
    return caffe.Net(formats.net_param_from_text(inputs + layers_text), phase)


def test_an_opset_out_of_range_is_refused():
    net, _ = net_around('type: "ReLU"', [np.ones((1, 2))])
    for opset in (onnx_export.MIN_OPSET - 1, onnx.defs.onnx_opset_version() + 1):
        with pytest.raises(CaffeError, match=f"opset {opset} is not supported"):
            onnx_export.export(net, opset=opset)


def test_a_model_over_protobufs_2_gib_limit_is_refused(monkeypatch):
    net, _ = net_around('type: "InnerProduct" inner_product_param { num_output: 3 }', [np.ones((1, 4))])
    monkeypatch.setattr(onnx_export, "MAX_MODEL_BYTES", 40)  # the weights alone take 48 bytes
    with pytest.raises(CaffeError, match=r"more than the 2 GiB one ONNX file can hold"):
        onnx_export.export(net)


def test_without_onnx_the_export_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx then raises ImportError
    net, _ = net_around('type: "ReLU"', [np.ones((1, 2))])
    with pytest.raises(CaffeError, match=r"pip install 'nvcaffe_py\[onnx\]'"):
        onnx_export.export(net)


# -- the model and its file ---------------------------------------------------------------------
def test_the_file_is_a_checked_model_named_after_the_blobs(tmp_path):
    net = caffe_net('layer { name: "fc" type: "InnerProduct" bottom: "in0" top: "fc" inner_product_param { '
                    'num_output: 3 weight_filler { type: "gaussian" } } } '
                    'layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" } '
                    'layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" } '
                    'layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }',
                    [np.ones((2, 5))], caffe.TEST)
    path = tmp_path / "model.onnx"
    onnx_export.export(net, str(path), opset=15)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["in0"]
    assert [o.name for o in model.graph.output] == ["prob"]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [2, 3]
    assert model.opset_import[0].version == 15
    # fc, written three times (InnerProduct, then ReLU and Dropout in place), names its last value.
    assert "fc" in {v.name for v in model.graph.value_info}
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_a_failed_export_leaves_no_file_and_an_old_one_untouched(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous")
    net = caffe_net('layer { name: "drop" type: "Dropout" bottom: "in0" top: "out" }', [np.ones((2, 3))], caffe.TRAIN)
    with pytest.raises(CaffeError):
        onnx_export.export(net, str(path))
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["model.onnx"]


# -- whole nets -----------------------------------------------------------------------------------
ZOO = os.path.join(SHARED, "caffe-zoo")


def zoo_deploy_nets():
    """The zoo's deploy nets: those whose inputs are Input layers (train/val nets read datasets)."""
    paths = sorted(p for p in glob.glob(os.path.join(ZOO, "**", "*.prototxt"), recursive=True)
                   if "solver" not in os.path.basename(p))
    return [os.path.relpath(p, ZOO) for p in paths
            if any(layer.type == "Input" for layer in formats.read_net_param(p).layer)]


def test_the_zoo_has_its_eleven_deploy_nets():
    shared_path("caffe-zoo")
    assert len(zoo_deploy_nets()) == 11, zoo_deploy_nets()


@pytest.mark.parametrize("path", zoo_deploy_nets() if os.path.isdir(ZOO) else [])
def test_every_zoo_deploy_net_matches_onnxruntime(path):
    """At batch 1 with random weights (deploy nets come without trained ones)."""
    param = data_layers_to_inputs(formats.read_net_param(os.path.join(ZOO, path)), None, batch_size=1)
    net = caffe.Net(param, phase=caffe.TEST)
    randomize_weights(net)
    generator = np.random.default_rng(0)
    assert_matches(net, {name: generator.standard_normal(net.blobs[name].shape) for name in net.inputs})


@pytest.mark.parametrize("model", sorted(fork_nets.OUTPUTS))
def test_every_fork_net_matches_onnxruntime(model):
    """The fork nets of models/ whole, DetectionOutput included, with every inner blob compared."""
    net, _ = fork_nets.load(model)
    data = fork_nets.image(net)
    if "detection_out" in net.outputs:
        net.forward(data=data)
        found = net.blobs["detection_out"].data_readonly().reshape(-1, 7)
        assert (found[:, 1] >= 0).sum() >= 3, "too few detections to compare"
    assert_matches(net, {"data": data})


def test_the_command_exports_caffe_trained_lenet_that_classifies_as_ours(tmp_path):
    import onnxruntime

    model_dir = shared_path("data", "caffemodels", "lenet_mnist")
    deploy, weights = os.path.join(model_dir, "mnist_deploy.prototxt"), os.path.join(model_dir, "lenet_iter_10000.caffemodel")
    samples = sorted(glob.glob(os.path.join(model_dir, "samples", "*.png")))
    output = tmp_path / "lenet.onnx"
    result = subprocess.run([sys.executable, "-m", "nvcaffe_py", "export_onnx", "--model", deploy, "--weights", weights,
                             "--output", str(output), "--opset", "13", "--batch", str(len(samples))],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Wrote" in result.stderr and "outputs loss" in result.stderr
    images = np.stack([caffe.io.load_image(p, color=False).transpose(2, 0, 1) for p in samples]).astype(np.float32)
    images *= 255 / 256  # the training net's scale of 1/256 on 0..255 pixels
    net = caffe.Net(deploy, weights, caffe.TEST)
    net.blobs["data"].reshape(*images.shape)
    net.reshape()
    ours = net.forward(data=images)["loss"]
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"data": images})[0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-6)
    assert list(theirs.argmax(axis=1)) == [int(os.path.basename(p).split("_")[1]) for p in samples]


def test_the_command_reports_a_refused_layer_on_one_line(tmp_path):
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } } '
        'layer { name: "noise" type: "DummyData" top: "noise" dummy_data_param { shape { dim: 1 dim: 3 } '
        'data_filler { type: "gaussian" } } } '
        'layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "noise" top: "sum" }')
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    net.save(str(tmp_path / "net.caffemodel"))
    # Warnings and errors only (glog's level 1), so that the net's INFO setup dump stays out.
    result = subprocess.run([sys.executable, "-m", "nvcaffe_py", "export_onnx", "-model", "net.prototxt",
                             "-weights", "net.caffemodel", "-output", "net.onnx"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "GLOG_minloglevel": "1"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "nvcaffe: error: layer 'noise' (DummyData) cannot be exported to ONNX: a filler other than constant "
        "draws new values every forward"]
    assert not (tmp_path / "net.onnx").exists()


# -- the fork layers' ONNX forms beyond their conformance cases ---------------------------------------
def _detection_inputs(num, priors, classes, loc_classes, seed):
    generator = np.random.default_rng(seed)
    corner = generator.uniform(0, 0.7, (priors, 2))
    boxes = np.concatenate([corner, corner + generator.uniform(0.1, 0.3, (priors, 2))], axis=1).reshape(-1)
    prior = np.stack([boxes, np.resize([0.1, 0.1, 0.2, 0.2], boxes.size)])[None]
    return [generator.uniform(-1, 1, (num, priors * loc_classes * 4)), generator.uniform(0, 1, (num, priors * classes)),
            prior]


@pytest.mark.parametrize("params,num,loc_classes,opset", [
    # per-class locations, two images each keeping its best 5 (the per-image TopK), CORNER_SIZE
    ("num_classes: 3 share_location: false nms_param { nms_threshold: 0.5 top_k: 8 } code_type: CORNER_SIZE "
     "keep_top_k: 5 confidence_threshold: 0.3", 2, 3, onnx_export.MIN_OPSET),
    # every class (no background), no confidence threshold nor top_k, clipped boxes
    ("num_classes: 2 background_label_id: -1 nms_param { nms_threshold: 0.3 } code_type: CENTER_SIZE clip: true",
     1, 1, onnx_export.DEFAULT_OPSET),
    # nothing passes the threshold: one row (image, -1, ...) per image
    ("num_classes: 3 nms_param { nms_threshold: 0.45 top_k: 10 } code_type: CENTER_SIZE keep_top_k: 4 "
     "confidence_threshold: 1.5", 2, 1, onnx_export.DEFAULT_OPSET),
])
def test_detection_output_in_onnx_ops_matches(params, num, loc_classes, opset):
    classes = int(params.split("num_classes: ")[1].split()[0])
    net, feeds = net_around(f'type: "DetectionOutput" detection_output_param {{ {params} }}',
                            _detection_inputs(num, 20, classes, loc_classes, seed=num))
    net.forward(**feeds)
    rows = net.blobs["out0"].data_readonly().reshape(-1, 7)
    assert len(rows) >= num
    assert_matches(net, feeds, opset)


def test_exported_detection_output_has_a_symbolic_count():
    net, feeds = net_around('type: "DetectionOutput" detection_output_param { num_classes: 2 '
                            'nms_param { nms_threshold: 0.45 } confidence_threshold: 0.5 }',
                            _detection_inputs(1, 12, 2, 1, seed=0))
    model = onnx_export.export(net)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == [1, 1, "detections", 7]


def test_a_fork_layer_onnx_cannot_express_is_refused_naming_it():
    case = list(declared_cases(layer_class("PSROIPooling")))[0]
    net, _ = net_around(f'type: "PSROIPooling" {case.params}', case.arrays())
    _one_line_refusal(net, "tested", "PSROIPooling", "no ONNX translation is registered")
