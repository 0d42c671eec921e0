#!/usr/bin/env python3
"""Top-1 and top-5 of a `pmpl export --format onnx` file on an ImageNet-layout folder
(DIR/<class>/<image>), run by onnxruntime: each image through the eval transform the file's
metadata names (Pillow's bilinear resize of the shorter side to int(size / 0.875), the centre
size x size crop, as torchvision does it), normalised with the file's mean and std, batched.
The main job scores its ONNX file with it; `pmpl eval` scores the checkpoint it came from.

usage: PYTHON tools/eval_onnx.py MODEL.onnx DIR [--batch-size N] [--limit N]
(PYTHON: the environment `tools/install_deps.sh --onnx` makes, ~/.cache/pmpl/pyenv/bin/python)
"""
import argparse
import json
import os
import sys
import time

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from PIL import Image
except ImportError as e:
    print(f"eval_onnx: {e}: run it with the Python of tools/install_deps.sh --onnx "
          "(~/.cache/pmpl/pyenv/bin/python)", file=sys.stderr)
    raise SystemExit(2)


def eval_transform(path, size, mean, std):
    """torchvision 0.14's Resize(int(size / 0.875)) + CenterCrop(size) + ToTensor + Normalize, as CHW."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    short = int(size / 0.875)
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    img = img.resize((new_w, new_h), Image.BILINEAR)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = np.asarray(img, dtype=np.float32) / 255.0
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(2, 0, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("dir")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, default=0, help="score the first N images only (0: all)")
    args = parser.parse_args()
    if not os.path.isdir(args.dir):
        print(f"eval_onnx: {args.dir} is not a folder: give DIR/<class>/<image>, e.g. data/fmnist/val", file=sys.stderr)
        raise SystemExit(2)
    meta = {p.key: p.value for p in onnx.load(args.model, load_external_data=False).metadata_props}
    if "pmpl.classes" not in meta:
        print(f"eval_onnx: {args.model} has no pmpl metadata: export it with pmpl export --format onnx", file=sys.stderr)
        raise SystemExit(2)
    classes, spec = json.loads(meta["pmpl.classes"]), json.loads(meta["pmpl.input"])
    index = {c: i for i, c in enumerate(classes)}
    samples = []
    for name in sorted(os.listdir(args.dir)):
        if not os.path.isdir(os.path.join(args.dir, name)):
            continue
        if name not in index:
            print(f"eval_onnx: {args.dir}/{name} is not one of the model's classes ({', '.join(classes)})",
                  file=sys.stderr)
            raise SystemExit(2)
        for f in sorted(os.listdir(os.path.join(args.dir, name))):
            samples.append((os.path.join(args.dir, name, f), index[name]))
    if args.limit:
        samples = samples[:args.limit]
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    top1 = top5 = 0
    start = time.time()
    for b in range(0, len(samples), args.batch_size):
        batch = samples[b:b + args.batch_size]
        x = np.stack([eval_transform(p, spec["size"], spec["mean"], spec["std"]) for p, _ in batch])
        logits = session.run(["logits"], {"images": x})[0]
        labels = np.array([label for _, label in batch])
        order = np.argsort(-logits, axis=1, kind="stable")[:, :5]
        top1 += int((order[:, 0] == labels).sum())
        top5 += int((order == labels[:, None]).any(axis=1).sum())
    n = len(samples)
    print(f"{args.model}: {n} images, top-1 {100 * top1 / n:.2f}%, top-5 {100 * top5 / n:.2f}% "
          f"(onnxruntime {ort.__version__}, {n / (time.time() - start):.0f} img/s)")


if __name__ == "__main__":
    main()
