"""One Markdown file of every figure a tools/gpu_check.sh run measured: its stages, the CUDA tests,
our SGEMM against cuBLAS by shape, and training iterations of AlexNet and ResNet-50 against
PyTorch + cuDNN (TF32 off and on) and against our CPU backend, with the issue's targets.

    python benchmarks/gpu_report.py RUN_FOLDER REPORT.md

RUN_FOLDER holds what the stages wrote: stages.tsv, pytest.xml, sgemm.json, gpu_nets.json; a
stage that failed or ran out of time leaves its file out (or partial), and the report says so.
"""
import json
import os
import sys
import xml.etree.ElementTree as ElementTree

# The targets of issue 15, on an H100.
SGEMM_SQUARE_TARGET, SGEMM_CONV_TARGET = 0.85, 0.70
TORCH_TARGET, CPU_TARGET = 1.5, 50.0


def _load_json(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _met(ok):
    return "met" if ok else "NOT met"


def stages_section(folder):
    path = os.path.join(folder, "stages.tsv")
    if not os.path.exists(path):
        return ["No stage record (stages.tsv) in the run folder."]
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return _table(["stage", "limit s", "exit", "took s"],
                  [(name, limit, f"{rc}{' (timed out)' if rc in ('124', '137') else ''}", took)
                   for name, limit, rc, took in rows])


def pytest_section(folder):
    path = os.path.join(folder, "pytest.xml")
    if not os.path.exists(path):
        return ["No pytest result (pytest.xml): the stage did not run to its end."]
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    lines = [f"`pytest -m cuda`: {passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
             f"{counts['skipped']} skipped, in {float(suite.get('time', 0)):.0f} s."]
    broken = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    lines += [f"- failed: `{name}`" for name in broken[:30]]
    if len(broken) > 30:
        lines.append(f"- and {len(broken) - 30} more")
    return lines


def sgemm_section(data):
    if data is None:
        return ["No SGEMM figures (sgemm.json missing: the stage failed or timed out)."]
    lines = [f"{data['device']['name']}, against {data['cublas']} (TF32 off), {data['repeat']} repeats; "
             "GFLOP/s; ours runs the plan chosen for the shape (tile / K slices); split-K gain is over the "
             "same tile in one slice.", ""]
    rows, conv_ratios, square = [], [], None
    for r in data["results"]:
        gain = f"x{r['ours_gflops'] / r['unsplit_gflops']:.2f}" if r.get("unsplit_gflops") else ""
        rows.append((r["shape"], r["trans"], f"{r['M']}x{r['N']}x{r['K']}", f"{r['tile']}/{r['splits']}",
                     f"{r['ours_gflops']:.0f}", f"{r['cublas_gflops']:.0f}", f"{100 * r['ratio']:.1f}%", gain,
                     f"{r['max_rel_error_vs_cublas']:.1e}"))
        if r["shape"] == "square 4096":
            square = r["ratio"]
        elif r["shape"].startswith(("alexnet conv", "resnet50 conv", "resnet50 res")):
            conv_ratios.append(r["ratio"])
    lines += _table(["shape", "op", "MxNxK", "plan", "ours", "cuBLAS", "% of cuBLAS", "split-K gain",
                     "max rel err"], rows)
    if square is not None:
        lines += ["", f"Target >= {SGEMM_SQUARE_TARGET:.0%} of cuBLAS at 4096^3: {100 * square:.1f}% "
                      f"({_met(square >= SGEMM_SQUARE_TARGET)})."]
    if conv_ratios:
        lines.append(f"Target >= {SGEMM_CONV_TARGET:.0%} on the conv shapes: lowest {100 * min(conv_ratios):.1f}% "
                     f"({_met(min(conv_ratios) >= SGEMM_CONV_TARGET)}).")
    return lines


def nets_section(data):
    if data is None:
        return ["No training figures (gpu_nets.json missing: the stage failed or timed out)."]
    lines = [f"{data['device']['name']} and {data['cpu_cores']} CPU cores; median of {data['iterations']} "
             "iterations (forward + backward + SGD update), ms.", ""]
    rows = []
    for r in data["results"]:
        rows.append((r["net"], r["batch"], f"{r['ours_gpu_ms']:.1f}", f"{r.get('torch_ms', float('nan')):.1f}",
                     f"{r.get('ours_vs_torch', float('nan')):.2f}x", f"{r.get('torch_tf32_ms', float('nan')):.1f}",
                     f"{r.get('ours_vs_torch_tf32', float('nan')):.2f}x"))
    lines += _table(["net", "batch", "ours GPU", "PyTorch TF32 off", "ours / PyTorch", "PyTorch TF32 on",
                     "ours / PyTorch TF32"], rows)
    gpu_per_image = {}
    for r in data["results"]:
        gpu_per_image.setdefault(r["net"], (r["ours_gpu_ms"] / r["batch"], r["batch"]))
    if data.get("cpu_results"):
        lines += ["", "Our CPU backend on the same nets:", ""]
        cpu_rows = []
        for r in data["cpu_results"]:
            per_image = r["ours_cpu_ms"] / r["batch"]
            gpu = gpu_per_image.get(r["net"])
            ratio = f"{per_image / gpu[0]:.0f}x (GPU at batch {gpu[1]})" if gpu else ""
            cpu_rows.append((r["net"], r["batch"], f"{r['ours_cpu_ms']:.0f}", f"{per_image:.1f}", ratio))
        lines += _table(["net", "batch", "ours CPU ms", "ms per image", "GPU speed-up per image"], cpu_rows)
    alexnet = [r for r in data["results"] if r["net"] == "alexnet" and "ours_vs_torch" in r]
    if alexnet:
        worst = max(r["ours_vs_torch"] for r in alexnet)
        lines += ["", f"Target AlexNet within {TORCH_TARGET}x of PyTorch + cuDNN (TF32 off): worst {worst:.2f}x "
                      f"({_met(worst <= TORCH_TARGET)})."]
    cpu = [r for r in data.get("cpu_results", []) if r["net"] == "alexnet" and "alexnet" in gpu_per_image]
    if cpu:
        speedup = cpu[0]["ours_cpu_ms"] / cpu[0]["batch"] / gpu_per_image["alexnet"][0]
        lines.append(f"Target AlexNet >= {CPU_TARGET:.0f}x our CPU backend (per image): {speedup:.0f}x "
                     f"({_met(speedup >= CPU_TARGET)}).")
    for item, layers in data.get("layers", {}).items():
        if not layers:
            continue
        lines += ["", f"Our GPU backend per layer, {item}, the 10 slowest (ms; * = ran its CPU code):", ""]
        slowest = sorted(layers, key=lambda row: -(row[3] + row[4]))[:10]
        lines += _table(["layer", "type", "forward", "backward"],
                        [(name, kind + ("" if on_gpu else " *"), f"{fwd:.2f}", f"{bwd:.2f}")
                         for name, kind, on_gpu, fwd, bwd in slowest])
    return lines


def report(folder):
    lines = ["# GPU check: measured figures", "",
             "Written by benchmarks/gpu_report.py from one tools/gpu_check.sh run (measurements on the GPU "
             "named below; the CPU figures are that machine's CPU).", "", "## Stages", ""]
    lines += stages_section(folder)
    lines += ["", "## CUDA tests", ""] + pytest_section(folder)
    lines += ["", "## SGEMM against cuBLAS", ""] + sgemm_section(_load_json(folder, "sgemm.json"))
    lines += ["", "## Training iterations", ""] + nets_section(_load_json(folder, "gpu_nets.json"))
    return "\n".join(lines) + "\n"


def main():
    folder, target = sys.argv[1], sys.argv[2]
    text = report(folder)
    with open(target, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
