#!/usr/bin/env python3
"""onnxruntime's static int8 quantisation of a `pmpl export --format onnx` file, the baseline
for pmpl's int8 export: QDQ format, int8 weights per channel, uint8 activations, MinMax
calibration on images of an ImageNet-layout folder through the file's eval transform (the same
images and transform `pmpl export --dtype int8 --calibrate` uses: spread evenly over the sorted
files). The pmpl metadata is carried over, so tools/eval_onnx.py scores the result and
tools/bench_infer_onnx.py times it under the same keys.

usage: PYTHON tools/quantize_onnx.py model.onnx model-int8.onnx --calibrate ROOT/train [--images 512]
(PYTHON: ~/.cache/pmpl/pyenv/bin/python, from tools/install_deps.sh --onnx)
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_onnx import eval_transform  # noqa: E402


class Images(CalibrationDataReader):
    def __init__(self, files, spec, batch=32):
        self.batches = [files[i:i + batch] for i in range(0, len(files), batch)]
        self.spec = spec

    def get_next(self):
        if not self.batches:
            return None
        files = self.batches.pop(0)
        x = np.stack([eval_transform(f, self.spec["size"], self.spec["mean"], self.spec["std"]) for f in files])
        return {"images": x}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--calibrate", required=True, help="a split folder: DIR/<class>/<image>")
    ap.add_argument("--images", type=int, default=512)
    a = ap.parse_args()
    model = onnx.load(a.model)
    meta = {p.key: p.value for p in model.metadata_props}
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(a.calibrate) for f in names
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if not files:
        ap.error(f"{a.calibrate} holds no images")
    n = min(a.images, len(files))
    files = [files[i * len(files) // n] for i in range(n)]
    quantize_static(a.model, a.out, Images(files, json.loads(meta["pmpl.input"])), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    out = onnx.load(a.out)
    del out.metadata_props[:]
    for k, v in meta.items():
        out.metadata_props.add(key=k, value=v)
    onnx.save(out, a.out)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes; onnxruntime static int8, {n} calibration images)")


if __name__ == "__main__":
    main()
