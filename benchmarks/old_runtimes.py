"""Do a package's TorchScript and ONNX weights run in old runtimes (deepImageJ's engines)?

deepImageJ runs models with JDLL, whose newest engines are libtorch 2.0.0 and ONNX Runtime 1.13.1.
This script runs the package's weights in another Python environment that has an old ``torch``
and/or ``onnxruntime`` (for example a virtualenv with ``torch==2.0.0`` and
``onnxruntime==1.15.0``, the oldest that install for Python 3.11), on the package's test input
normalised like the package does, and compares with the package's test outputs (the baseline,
written by eager PyTorch in this environment):

    python -m venv /tmp/oldrt && /tmp/oldrt/bin/pip install torch==2.0.0 "numpy<2" onnxruntime==1.15.0
    python benchmarks/old_runtimes.py runs/quickstart/model.zip --python /tmp/oldrt/bin/python

Prints the runtime versions, the ONNX file's IR version and opset, the TorchScript archive's file
format version and per format the largest difference to the test outputs.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import yaml

_RUNNER = """
import json, sys
import numpy as np
out = {}
x = np.load(sys.argv[1])
fmt, weights, result = sys.argv[2], sys.argv[3], sys.argv[4]
if fmt == "torchscript":
    import torch
    out["runtime"] = "torch " + torch.__version__
    module = torch.jit.load(weights, map_location="cpu").eval()
    with torch.no_grad():
        y = module(torch.from_numpy(x))
    ys = list(y) if isinstance(y, (tuple, list)) else [y]
    arrays = [t.numpy() for t in ys]
else:
    import onnxruntime as ort
    out["runtime"] = "onnxruntime " + ort.__version__
    session = ort.InferenceSession(weights, providers=["CPUExecutionProvider"])
    arrays = session.run(None, {session.get_inputs()[0].name: x})
np.savez(result, *arrays)
print(json.dumps(out))
"""


def _normalised_input(rdf: dict, raw: np.ndarray) -> np.ndarray:
    from spoco_zoo.config import NormalizationConfig
    from spoco_zoo.data.normalize import normalize

    norm = NormalizationConfig.model_validate(rdf["config"]["spoco"]["normalization"])
    return normalize(raw[0], norm)[None].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--python", required=True, help="Python of the environment with the old runtimes")
    args = parser.parse_args()

    from spoco_zoo.zoo.consumers import onnx_problems, torchscript_problems

    with zipfile.ZipFile(args.package) as zf, tempfile.TemporaryDirectory() as tmp:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        raw = np.load(io.BytesIO(zf.read(rdf["inputs"][0]["test_tensor"]["source"])))
        expected = [np.load(io.BytesIO(zf.read(t["test_tensor"]["source"]))) for t in rdf["outputs"]]
        x = Path(tmp) / "input.npy"
        np.save(x, _normalised_input(rdf, raw))
        for fmt in ("torchscript", "onnx"):
            entry = rdf["weights"].get(fmt)
            if entry is None:
                continue
            weights = Path(tmp) / entry["source"]
            weights.write_bytes(zf.read(entry["source"]))
            check = torchscript_problems(weights) if fmt == "torchscript" else onnx_problems(weights)
            result = Path(tmp) / f"{fmt}.npz"
            proc = subprocess.run(
                [args.python, "-c", _RUNNER, str(x), fmt, str(weights), str(result)],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode != 0:
                print(f"{fmt}: FAILED to run\n{proc.stderr.strip()[-2000:]}")
                continue
            runtime = json.loads(proc.stdout.strip().splitlines()[-1])["runtime"]
            got = np.load(result)
            diffs = []
            for i, (want, name) in enumerate(zip(expected, [t["id"] for t in rdf["outputs"]])):
                have = got[f"arr_{i}"]
                if np.issubdtype(want.dtype, np.integer):
                    diffs.append(f"{name}: {int(np.count_nonzero(have != want))} of {want.size} labels differ")
                else:
                    diffs.append(f"{name}: max |diff| {float(np.abs(have - want).max()):.2e}")
            print(f"{fmt} in {runtime}: {'; '.join(diffs)}; file checks: {'; '.join(check) or 'ok'}")


if __name__ == "__main__":
    main()
