"""AnnotatedData (SSD): the label top's layout from hand-built AnnotatedDatum records, mirroring,
expansion, cropping to sampled windows, resize modes, noise_param, mean_file, a batch without boxes,
seeded repeats, and one-line errors for bad records; the tools that build such records (make_shapes,
convert_annoset)."""
import xml.etree.ElementTree as ElementTree

import cv2
import lmdb
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats, rng
from nvcaffe_py.datum import array_to_datum
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layers.annotated_data import parse_annotated_datum
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.tools import convert_annoset, make_shapes

LABEL_MAP = 'item { name: "background" label: 0 } item { name: "a" label: 1 } item { name: "b" label: 2 }'


def record(image, boxes):
    """An AnnotatedDatum of a CxHxW uint8 image and boxes [(label, xmin, ymin, xmax, ymax, difficult)]."""
    anno = caffe_pb2.AnnotatedDatum(type=caffe_pb2.AnnotatedDatum.BBOX)
    anno.datum.CopyFrom(array_to_datum(image))
    groups = {}
    for label, *box, difficult in boxes:
        if label not in groups:
            groups[label] = anno.annotation_group.add(group_label=label)
        a = groups[label].annotation.add(instance_id=len(groups[label].annotation))
        a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax = box
        a.bbox.difficult = bool(difficult)
    return anno


def write_lmdb(path, records):
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, value in enumerate(records):
            txn.put(f"{k:08d}".encode(), value if isinstance(value, bytes) else value.SerializeToString())
    env.close()
    return str(path)


def annotated_net(source, batch, transform="", extra="", phase=caffe.TRAIN):
    text = (f'layer {{ name: "d" type: "AnnotatedData" top: "data" top: "label" transform_param {{ {transform} }} '
            f'data_param {{ source: "{source}" batch_size: {batch} }} annotated_data_param {{ {extra} }} }}')
    return caffe.Net(formats.net_param_from_text(text), phase)


def images(n, height=8, width=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, height, width), dtype=np.uint8)


def test_label_layout_and_pixels(tmp_path):
    pictures = images(3)
    boxes = [[(1, 0.1, 0.2, 0.5, 0.6, 0), (2, 0.5, 0.5, 0.9, 1.0, 1), (1, 0.0, 0.0, 0.3, 0.3, 0)], [],
             [(2, 0.2, 0.2, 0.4, 0.4, 0)]]
    db = write_lmdb(tmp_path / "db", [record(p, b) for p, b in zip(pictures, boxes)])
    net = annotated_net(db, 3, "scale: 0.5", phase=caffe.TEST)
    out = net.forward()
    np.testing.assert_array_equal(out["data"], pictures * 0.5)
    # groups in record order (label 1 with instances 0 and 1, then label 2), boxes as given
    want = [[0, 1, 0, 0.1, 0.2, 0.5, 0.6, 0], [0, 1, 1, 0.0, 0.0, 0.3, 0.3, 0], [0, 2, 0, 0.5, 0.5, 0.9, 1.0, 1],
            [2, 2, 0, 0.2, 0.2, 0.4, 0.4, 0]]
    np.testing.assert_allclose(out["label"], np.reshape(want, (1, 1, 4, 8)), atol=1e-6)


def test_a_batch_without_boxes_gives_one_row_of_minus_one(tmp_path):
    db = write_lmdb(tmp_path / "db", [record(p, []) for p in images(2)])
    out = annotated_net(db, 2).forward()
    np.testing.assert_array_equal(out["label"], -np.ones((1, 1, 1, 8)))


def test_mirror_resize_and_crop_move_the_boxes(tmp_path):
    picture = images(1, 20, 20)[0]
    db = write_lmdb(tmp_path / "db", [record(picture, [(1, 0.1, 0.2, 0.3, 0.6, 0)])])
    rng.set_random_seed(1)
    net = annotated_net(db, 1, "mirror: true")
    seen = set()
    for _ in range(12):
        out = net.forward()
        box = tuple(np.round(out["label"][0, 0, 0, 3:7], 6))
        mirrored = np.array_equal(out["data"][0], picture[:, :, ::-1])
        assert box == ((0.7, 0.2, 0.9, 0.6) if mirrored else (0.1, 0.2, 0.3, 0.6))
        seen.add(mirrored)
    assert seen == {True, False}
    net = annotated_net(db, 1, "resize_param { height: 10 width: 40 } crop_h: 10 crop_w: 20", phase=caffe.TEST)
    out = net.forward()
    assert out["data"].shape == (1, 3, 10, 20)
    np.testing.assert_allclose(out["label"][0, 0, 0, 3:7], [0.0, 0.2, 0.1, 0.6], atol=1e-6)  # cut at the crop's left


def test_expansion_and_sampling_keep_boxes_on_their_pixels(tmp_path):
    """A white square on black: wherever expansion and the sampled crops put it, the label box
    is where the white pixels are."""
    picture = np.zeros((3, 40, 40), np.uint8)
    picture[:, 10:30, 8:24] = 255
    db = write_lmdb(tmp_path / "db", [record(picture, [(1, 8 / 40, 10 / 40, 24 / 40, 30 / 40, 0)])])
    sampler = ("batch_sampler { sampler { min_scale: 0.5 max_scale: 1 min_aspect_ratio: 0.5 max_aspect_ratio: 2 } "
               "sample_constraint { min_object_coverage: 1.0 } max_trials: 50 max_sample: 1 }")
    rng.set_random_seed(4)
    net = annotated_net(db, 1, "resize_param { height: 40 width: 40 interp_mode: NEAREST } "
                        "expand_param { prob: 1 max_expand_ratio: 2 }", sampler)
    sizes = set()
    for _ in range(10):
        out = net.forward()
        rows = out["label"][0, 0]
        assert rows.shape == (1, 8) and rows[0, 1] == 1
        white = np.argwhere(out["data"][0, 0] > 128)
        (y0, x0), (y1, x1) = white.min(axis=0), white.max(axis=0) + 1
        # the crop is cut at whole pixels (as the fork's), then scaled by up to 2: 2.5 pixels of slack
        np.testing.assert_allclose(rows[0, 3:7] * 40, [x0, y0, x1, y1], atol=2.5)
        sizes.add(round(float(rows[0, 5] - rows[0, 3]), 2))
    assert len(sizes) > 3  # the box's size varies with the expansion and the window


def test_seeded_runs_repeat(tmp_path):
    db = write_lmdb(tmp_path / "db", [record(p, [(1, 0.2, 0.2, 0.7, 0.8, 0)]) for p in images(4, 24, 24)])
    transform = ("mirror: true distort_param { brightness_prob: 0.5 brightness_delta: 30 contrast_prob: 0.5 "
                 "contrast_lower: 0.5 contrast_upper: 1.5 saturation_prob: 0.5 saturation_lower: 0.5 "
                 "saturation_upper: 1.5 hue_prob: 0.5 hue_delta: 18 random_order_prob: 0.5 } "
                 "expand_param { prob: 0.5 max_expand_ratio: 2 } resize_param { height: 24 width: 24 }")
    sampler = "batch_sampler { sampler { min_scale: 0.3 } sample_constraint { min_jaccard_overlap: 0.3 } }"
    runs = []
    for _ in range(2):
        rng.set_random_seed(7)
        net = annotated_net(db, 2, transform, sampler)
        runs.append([(out["data"].copy(), out["label"].copy()) for out in (net.forward() for _ in range(3))])
    for (d1, l1), (d2, l2) in zip(*runs):
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(l1, l2)


def test_plain_classification_records_give_datum_labels(tmp_path):
    records = []
    for k, picture in enumerate(images(2)):
        anno = caffe_pb2.AnnotatedDatum()
        anno.datum.CopyFrom(array_to_datum(picture, label=k + 3))
        records.append(anno)
    out = annotated_net(write_lmdb(tmp_path / "db", records), 2).forward()
    np.testing.assert_array_equal(out["label"], [3, 4])


def test_bad_records_are_one_line_errors(tmp_path):
    plain = write_lmdb(tmp_path / "plain", [array_to_datum(images(1)[0], 1)])
    with pytest.raises(CaffeError, match=r"record '00000000' of LMDB .*: not an AnnotatedDatum .*Data layer") as info:
        annotated_net(plain, 1)
    assert "\n" not in str(info.value) and "layer 'd' (AnnotatedData)" in str(info.value)
    label_map = tmp_path / "labelmap.prototxt"
    label_map.write_text(LABEL_MAP)
    db = write_lmdb(tmp_path / "db", [record(images(1)[0], [(1, 0, 0, 1, 1, 0)]),
                                      record(images(1)[0], [(7, 0, 0, 1, 1, 0)])])
    net = annotated_net(db, 2, extra=f'label_map_file: "{label_map}"')
    with pytest.raises(CaffeError, match="record '00000001' .*group label 7 is not in the label map") as info:
        net.forward()
    assert "\n" not in str(info.value)
    for transform, message in (("noise_param { saltpepper: true }", "saltpepper needs saltpepper_param.value"),
                               ("resize_param { resize_mode: FIT_SMALL_SIZE height: 0 width: 4 }",
                                "resize_param needs a positive height and width")):
        with pytest.raises(CaffeError, match=message) as info:
            annotated_net(db, 1, transform)
        assert "\n" not in str(info.value) and "layer 'd' (AnnotatedData)" in str(info.value)
    with pytest.raises(CaffeError, match="transform_param.expand_param .* AnnotatedData layers only"):
        caffe.Net(formats.net_param_from_text(
            f'layer {{ name: "d" type: "Data" top: "data" data_param {{ source: "{db}" batch_size: 1 }} '
            f'transform_param {{ expand_param {{ prob: 1 }} }} }}'), caffe.TRAIN)
    with pytest.raises(CaffeError, match="not a valid AnnotatedDatum"):
        parse_annotated_datum(b"\x0a\xff\xff")


# -- resize modes, noise, mean_file ----------------------------------------------------------------
WIDE = images(1, 20, 40, seed=3)[0]   # 20 rows, 40 columns


def test_fit_small_size_keeps_the_aspect_and_its_boxes(tmp_path):
    """20 x 40 to fit 10 x 10 by its short side: 10 x 20; the boxes stay (clipped). A centred 10 x 10
    crop is columns 5..14, x in [0.25, 0.75]: the box (0.25, 0.5, 1.0, 0.75) becomes (0, 0.5, 1, 0.75).
    With height_scale = width_scale = 5 the 10 x 10 crop's boxes are stretched by 10 / 5."""
    db = write_lmdb(tmp_path / "db", [record(WIDE, [(1, 0.25, 0.5, 1.0, 0.75, 0)])])
    resize = "resize_param { resize_mode: FIT_SMALL_SIZE height: 10 width: 10 %s }"
    out = annotated_net(db, 1, resize % "", phase=caffe.TEST).forward()
    want = cv2.resize(WIDE.transpose(1, 2, 0), (20, 10), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    np.testing.assert_array_equal(out["data"][0], want)
    np.testing.assert_allclose(out["label"][0, 0, 0, 3:7], [0.25, 0.5, 1.0, 0.75], atol=1e-6)
    out = annotated_net(db, 1, "crop_size: 10 " + resize % "", phase=caffe.TEST).forward()
    assert out["data"].shape == (1, 3, 10, 10)
    np.testing.assert_allclose(out["label"][0, 0, 0, 3:7], [0, 0.5, 1, 0.75], atol=1e-6)
    out = annotated_net(db, 1, "crop_size: 10 " + resize % "height_scale: 5 width_scale: 5",
                        phase=caffe.TEST).forward()
    np.testing.assert_allclose(out["label"][0, 0, 0, 3:7], [0, 1, 2, 1.5], atol=1e-6)


def test_fit_large_size_and_pad_moves_the_boxes_into_the_image(tmp_path):
    """20 x 40 into 30 x 30: resized to 15 x 30, 7 rows of padding above and 8 below; the boxes'
    padding is 7.5 rows (unrounded, as the fork's): y (0.2, 1.0) -> (7.5 + 3, 7.5 + 15) / 30."""
    db = write_lmdb(tmp_path / "db", [record(WIDE, [(1, 0.1, 0.2, 0.5, 1.0, 0)])])
    out = annotated_net(db, 1, "resize_param { resize_mode: FIT_LARGE_SIZE_AND_PAD height: 30 width: 30 "
                        "pad_value: 9 }", phase=caffe.TEST).forward()
    data = out["data"][0]
    assert data.shape == (3, 30, 30)
    assert (data[:, :7] == 9).all() and (data[:, 22:] == 9).all()
    want = cv2.resize(WIDE.transpose(1, 2, 0), (30, 15), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    np.testing.assert_array_equal(data[:, 7:22], want)
    np.testing.assert_allclose(out["label"][0, 0, 0, 3:7], [0.1, 0.35, 0.5, 0.75], atol=1e-6)


def noised(tmp_path, picture, noise, transform=""):
    db = write_lmdb(tmp_path / f"db{len(list(tmp_path.iterdir()))}", [record(picture, [])])
    return annotated_net(db, 1, f"{transform} noise_param {{ {noise} }}", phase=caffe.TEST).forward()["data"][0]


def test_noise_options(tmp_path):
    red = np.zeros((3, 4, 4), np.uint8)
    red[2] = 255                                    # BGR (0, 0, 255): gray 0.299 * 255 = 76
    # decolorize, then posterize (76 // 64 * 64 + 32 = 96), then inverse (255 - 96), in the fork's order
    np.testing.assert_array_equal(noised(tmp_path, red, "inverse: true posterize: true decolorize: true"), 159)
    np.testing.assert_array_equal(noised(tmp_path, red, "convert_to_hsv: true")[:, 0, 0], [0, 255, 255])
    lab = cv2.cvtColor(red.transpose(1, 2, 0).copy(), cv2.COLOR_BGR2Lab)[0, 0]
    np.testing.assert_array_equal(noised(tmp_path, red, "convert_to_lab: true")[:, 0, 0], lab)
    dot = np.zeros((1, 5, 5), np.uint8)
    dot[0, 2, 2] = 200
    assert not noised(tmp_path, dot, "erode: true").any()        # a 3 x 3 ellipse erodes a lone pixel away
    flat = np.full((3, 4, 4), 200, np.uint8)
    salted = noised(tmp_path, flat, "saltpepper: true saltpepper_param { fraction: 0.5 value: 7 }")
    hit = (salted == 7).all(axis=0)
    assert 1 <= hit.sum() <= 8 and ((salted == 7) | (salted == 200)).all() and (salted[:, ~hit] == 200).all()
    ramp = np.tile(np.arange(0, 160, 10, dtype=np.uint8), (1, 16, 1))     # a gray ramp 0..150
    equalized = noised(tmp_path, ramp, "hist_eq: true")
    np.testing.assert_array_equal(equalized[0], cv2.equalizeHist(ramp[0]))
    assert equalized[0].max() == 255
    for noise in ("clahe: true", "jpeg: 50", "gauss_blur: true"):
        assert noised(tmp_path, ramp, noise).shape == (1, 16, 16)   # a gray image stays gray
    with pytest.raises(CaffeError, match="noise_param.decolorize needs a 3-channel image"):
        noised(tmp_path, ramp, "decolorize: true")


def test_mean_file_is_subtracted_from_the_output(tmp_path):
    mean = np.arange(3 * 10 * 20, dtype=np.float32).reshape(1, 3, 10, 20) / 10
    path = tmp_path / "mean.binaryproto"
    formats.write_binary(str(path), formats.blob_to_proto(mean))
    db = write_lmdb(tmp_path / "db", [record(WIDE, [])])
    resize = "resize_param { resize_mode: FIT_SMALL_SIZE height: 10 width: 10 }"
    out = annotated_net(db, 1, f'mean_file: "{path}" {resize}', phase=caffe.TEST).forward()
    want = cv2.resize(WIDE.transpose(1, 2, 0), (20, 10), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    np.testing.assert_allclose(out["data"][0], want - mean[0], rtol=1e-6)
    for transform, message in ((f'mean_file: "{path}"', r"has shape \(3, 10, 20\); the transformed image is "
                                                        r"\(3, 20, 40\)"),
                               (f'mean_file: "{path}" expand_param {{ max_expand_ratio: 2 }}',
                                "expand_param with mean_file is not supported")):
        with pytest.raises(CaffeError, match=message) as info:
            annotated_net(db, 1, transform)
        assert "\n" not in str(info.value) and "AnnotatedData" in str(info.value)


# -- the tools ----------------------------------------------------------------------------------
def test_make_shapes_and_convert_annoset_round_trip(tmp_path):
    out = tmp_path / "shapes"
    assert make_shapes.main(["--output", str(out), "--num_train", "6", "--num_test", "2", "--size", "48"]) == 0
    lines = (out / "trainval.txt").read_text().splitlines()
    assert len(lines) == 6 and lines[0] == "JPEGImages/000000.jpg Annotations/000000.xml"
    db = str(tmp_path / "db")
    assert convert_annoset.main(["--anno_type=detection", f"--label_map_file={out}/labelmap.prototxt", "--encoded",
                                 f"{out}/", str(out / "trainval.txt"), db]) == 0
    names = {"circle": 1, "square": 2, "triangle": 3}
    env = lmdb.open(db, readonly=True, lock=False)
    with env.begin() as txn:
        stored = list(txn.cursor())
    env.close()
    assert [k.decode() for k, _ in stored][:2] == ["00000000_JPEGImages/000000.jpg", "00000001_JPEGImages/000001.jpg"]
    for (_, value), line in zip(stored, lines):
        anno = parse_annotated_datum(value)
        assert anno.type == caffe_pb2.AnnotatedDatum.BBOX and anno.datum.encoded
        root = ElementTree.parse(out / line.split()[1]).getroot()
        want = sorted((names[o.findtext("name")], *(int(o.find("bndbox").findtext(t)) / 48
                                                    for t in ("xmin", "ymin", "xmax", "ymax")))
                      for o in root.iter("object"))
        got = sorted((g.group_label, a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax)
                     for g in anno.annotation_group for a in g.annotation)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_convert_annoset_errors(tmp_path, capsys):
    out = tmp_path / "shapes"
    make_shapes.main(["--output", str(out), "--num_train", "2", "--num_test", "0", "--size", "32"])
    xml = out / "Annotations" / "000001.xml"
    xml.write_text(xml.read_text().replace("<name>", "<name>x", 1))
    args = ["--anno_type=detection", f"--label_map_file={out}/labelmap.prototxt", f"{out}/", str(out / "trainval.txt"),
            str(tmp_path / "db")]
    assert convert_annoset.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # the log lines, then the error
    assert err.startswith("nvcaffe convert_annoset: error:") and "trainval.txt:2:" in err and "000001.xml: object #1: name 'x" in err
    assert "is not in the label map" in err and not (tmp_path / "db").exists()
    assert convert_annoset.main(["--anno_type=detection"] + args[2:]) == 1
    assert "needs --label_map_file" in capsys.readouterr().err
    (out / "bad_map.prototxt").write_text('item { name: "a" label: 1 } item { name: "a" label: 2 }')
    assert convert_annoset.main(["--anno_type=detection", f"--label_map_file={out}/bad_map.prototxt"] + args[2:]) == 1
    assert "name 'a' is given twice" in capsys.readouterr().err
    (out / "list.txt").write_text("JPEGImages/000000.jpg\n")
    assert convert_annoset.main(args[:3] + [str(out / "list.txt"), str(tmp_path / "db")]) == 1
    assert "list.txt:1: expected 'image_path annotation_path'" in capsys.readouterr().err


SSD_PASCAL_SAMPLERS = "batch_sampler { sampler { } max_trials: 1 max_sample: 1 } " + " ".join(
    f"batch_sampler {{ sampler {{ min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5 max_aspect_ratio: 2.0 }} "
    f"sample_constraint {{ {bound} }} max_sample: 1 max_trials: 50 }}"
    for bound in ("min_jaccard_overlap: 0.1", "min_jaccard_overlap: 0.3", "min_jaccard_overlap: 0.5",
                  "min_jaccard_overlap: 0.7", "min_jaccard_overlap: 0.9", "max_jaccard_overlap: 1.0"))
SSD_PASCAL_TRANSFORM = (
    "mirror: true mean_value: 104 mean_value: 117 mean_value: 123 "
    "resize_param { prob: 1 resize_mode: WARP height: 30 width: 30 interp_mode: LINEAR interp_mode: AREA "
    "interp_mode: NEAREST interp_mode: CUBIC interp_mode: LANCZOS4 } emit_constraint { emit_type: CENTER } "
    "distort_param { brightness_prob: 0.5 brightness_delta: 32 contrast_prob: 0.5 contrast_lower: 0.5 "
    "contrast_upper: 1.5 hue_prob: 0.5 hue_delta: 18 saturation_prob: 0.5 saturation_lower: 0.5 "
    "saturation_upper: 1.5 random_order_prob: 0.0 } expand_param { prob: 0.5 max_expand_ratio: 4.0 }")


def test_ssd_pascals_data_layer_settings(tmp_path):
    """The data layer examples/ssd/ssd_pascal.py writes (its seven samplers, distortion, expansion
    up to 4x, five interpolations), on small images: every batch comes out 30x30 with valid boxes."""
    boxes = [(1, 0.1, 0.1, 0.5, 0.6, 0), (2, 0.4, 0.5, 0.9, 0.95, 1)]
    db = write_lmdb(tmp_path / "db", [record(p, boxes) for p in images(4, 40, 50)])
    rng.set_random_seed(3)
    net = annotated_net(db, 4, SSD_PASCAL_TRANSFORM, SSD_PASCAL_SAMPLERS)
    seen = 0
    for _ in range(5):
        out = net.forward()
        assert out["data"].shape == (4, 3, 30, 30)
        rows = out["label"][0, 0]
        if rows[0, 0] == -1:
            continue
        seen += len(rows)
        assert set(rows[:, 0]) <= {0, 1, 2, 3} and set(rows[:, 1]) <= {1, 2}
        assert np.all(rows[:, 3:7] >= 0) and np.all(rows[:, 3:7] <= 1)
        assert np.all(rows[:, 5] > rows[:, 3]) and np.all(rows[:, 6] > rows[:, 4])
    assert seen > 10


def test_convert_annoset_classification_records(tmp_path):
    for k in range(2):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((4, 5, 3), 40 * k, np.uint8))
    (tmp_path / "list.txt").write_text("0.png 3\n1.png 5\n")
    assert convert_annoset.main([f"{tmp_path}/", str(tmp_path / "list.txt"), str(tmp_path / "db")]) == 0
    out = annotated_net(str(tmp_path / "db"), 2).forward()
    np.testing.assert_array_equal(out["label"], [3, 5])
    np.testing.assert_array_equal(out["data"][1], np.full((3, 4, 5), 40))
