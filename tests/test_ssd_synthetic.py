"""SSD trained end to end from the files a user would have: `nvcaffe make_shapes` (images, VOC
XML, label map), `nvcaffe convert_annoset`, then models/ssd_synthetic's net and solver (shortened)
through `nvcaffe train`: the detection mAP of the fork's test (DetectionEvaluate) rises well above
its start. The full run's figures: models/ssd_synthetic/README.md."""
import os
import re

from nvcaffe_py import cli
from nvcaffe_py.tools import convert_annoset, make_shapes

MODEL = os.path.join(os.path.dirname(__file__), os.pardir, "models", "ssd_synthetic")


def test_ssd_map_rises_on_synthetic_shapes(tmp_path, capfd):
    data = tmp_path / "shapes"
    assert make_shapes.main(["--output", str(data), "--num_train", "200", "--num_test", "50", "--size", "64",
                             "--seed", "2"]) == 0
    for name, listing in (("trainval_lmdb", "trainval.txt"), ("test_lmdb", "test.txt")):
        assert convert_annoset.main(["--anno_type=detection", f"--label_map_file={data}/labelmap.prototxt",
                                     "--encoded", f"{data}/", str(data / listing), str(data / name)]) == 0
    net = open(os.path.join(MODEL, "ssd_train_test.prototxt")).read().replace("runs/shapes", str(data))
    (tmp_path / "net.prototxt").write_text(net)
    solver = open(os.path.join(MODEL, "ssd_solver.prototxt")).read()
    solver = solver.replace("models/ssd_synthetic/ssd_train_test.prototxt", str(tmp_path / "net.prototxt"))
    solver = solver.replace("runs/shapes", str(data))
    for field, value in (("test_iter", "2"), ("test_interval", "80"), ("max_iter", "160"), ("display", "40")):
        solver = re.sub(rf"^{field}: .*$", f"{field}: {value}", solver, flags=re.M)
    (tmp_path / "solver.prototxt").write_text(solver)
    capfd.readouterr()
    assert cli.main(["train", f"--solver={tmp_path / 'solver.prototxt'}"]) == 0
    log = capfd.readouterr().err
    maps = [float(v) for v in re.findall(r"Test net output #0: detection_eval = ([0-9.e-]+)", log)]
    assert len(maps) == 3, log[-2000:]
    assert maps[0] < 0.2 and maps[-1] > 0.45 and maps[-1] > maps[0] + 0.3, maps
    assert re.search(r"class3: [0-9.]+", log)
