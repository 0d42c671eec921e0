#!/usr/bin/env python3
"""Writes an ImageNet-like JPEG set for loader benchmarks when no real one is at hand:
OUT/train/<class>/*.JPEG, 500x375 (some portrait), quality 90, 4:2:0, with photo-like content
(smooth colour fields and texture at several scales, ~47 KiB per image). The texture is
calibrated so that a full libjpeg-turbo decode runs at ~1,700 img/s per core on the 2-core
development machine, the reference point the loader's speed goal is stated against; noisier
content decodes slower for every decoder alike (entropy decoding dominates).

usage: /usr/bin/python3 tools/make_jpeg_set.py OUT [--images 2000] [--classes 10] [--seed 0]
"""
import argparse
import os

import numpy as np
from PIL import Image


def image(rng, w, h):
    out = np.zeros((h, w, 3), np.float32)
    for cells, amp in ((4, 90.0), (16, 40.0), (64, 24.0)):
        small = rng.normal(0, 1, (cells * h // w + 1, cells, 3)).astype(np.float32)
        layer = np.asarray(Image.fromarray(((small + 3) * 40).clip(0, 255).astype(np.uint8)).resize((w, h), Image.BICUBIC),
                           np.float32) / 40 - 3
        out += amp * layer
    out += rng.normal(0, 4, (h, w, 3))  # sensor noise: fine texture
    out += 128 - out.mean()
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    sizes = []
    for i in range(a.images):
        cls = f"n{i % a.classes:08d}"
        os.makedirs(os.path.join(a.out, "train", cls), exist_ok=True)
        w, h = (500, 375) if i % 4 else (375, 500)
        path = os.path.join(a.out, "train", cls, f"img_{i:06d}.JPEG")
        image(rng, w, h).save(path, quality=90)
        sizes.append(os.path.getsize(path))
    print(f"wrote {a.images} images to {a.out}/train, mean {np.mean(sizes) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
