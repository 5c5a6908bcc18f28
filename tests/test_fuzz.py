"""The fuzz test: tests/fuzz_inputs.py mutates prototxt nets and solvers, caffemodels, HDF5 weights
and solver states, Datums and AnnotatedDatums for a few seconds, in a child process capped at 2 GiB of address
space; only CaffeError may come out of the readers and the net builder, and the child may neither
crash nor hang. By hand, longer and with another seed:

    NVCAFFE_FUZZ_SECONDS=600 NVCAFFE_FUZZ_SEED=7 python -m pytest -q -s tests/test_fuzz.py
"""
import json
import os
import resource
import subprocess
import sys

import pytest

FUZZER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_inputs.py")
SECONDS = float(os.environ.get("NVCAFFE_FUZZ_SECONDS", "6"))
SEED = int(os.environ.get("NVCAFFE_FUZZ_SEED", "0"))
MEMORY_CAP = 2 << 30
TARGETS = {"net", "solver", "caffemodel", "weights_h5", "solverstate", "solverstate_h5", "datum", "annotated_datum"}


def cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def the_input_being_read(out):
    target = (out / "current_target").read_text() if (out / "current_target").exists() else "?"
    kept = [name for name in os.listdir(out) if name.startswith("current.")] if out.exists() else []
    return f"a {target} input (the last written of {', '.join(sorted(kept))} in {out})"


def test_fuzzed_inputs_end_in_a_caffe_error_or_load(tmp_path):
    out = tmp_path / "fuzz"
    command = [sys.executable, FUZZER, "--seconds", str(SECONDS), "--seed", str(SEED), "--out", str(out)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 120,
                                preexec_fn=cap_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the fuzzer hung on {the_input_being_read(out)}")
    if result.returncode != 0:
        pytest.fail(f"the fuzzer ended with status {result.returncode} on {the_input_being_read(out)}:\n"
                    f"{result.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    print(f"\nfuzz: {report['tried']} inputs in {SECONDS:g} s (seed {SEED}), {report['distinct_outcomes']} distinct "
          f"outcomes, {report['escapes']} escapes; per target: " +
          ", ".join(f"{name} {entry['tried']}" for name, entry in report["targets"].items()))
    escapes = [escape for entry in report["targets"].values() for escape in entry["escapes"]]
    assert not escapes, "\n\n".join(f"{e['error']}\n{e['traceback']}input: {e['input']}" for e in escapes[:5])
    assert set(report["targets"]) == TARGETS and all(entry["tried"] for entry in report["targets"].values())
