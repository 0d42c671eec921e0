#!/usr/bin/env python3
"""Writes tests/fixtures/data_pil.json: what Pillow and torchvision produce, for pmpl's loader
tests (tests/test_data.cpp) to match byte for byte:
  - resize: a random 37x29 RGB image resized with Image.resize(BILINEAR, box=...) for boxes and
    sizes that shrink, enlarge and cut fractional pixels;
  - eval: a 120x90 JPEG (quality 90) through torchvision's Resize(int(S/0.875)) + CenterCrop(S)
    at S = 32 and 64, decoded by Pillow.

usage: /usr/bin/python3 tools/make_data_fixtures.py [OUT.json]
"""
import base64
import io
import json
import sys

import numpy as np
from PIL import Image
from torchvision import transforms


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/data_pil.json"
    rng = np.random.default_rng(3)
    src = rng.integers(0, 256, (29, 37, 3), dtype=np.uint8)
    img = Image.fromarray(src)
    cases = []
    for box, size in [((0, 0, 37, 29), (16, 12)), ((3.5, 2.25, 30.0, 20.5), (11, 9)),
                      ((5, 4, 17, 13), (40, 31)), ((0.75, 0.5, 36.0, 28.75), (37, 29)),
                      ((10, 0, 30, 29), (7, 23))]:
        r = np.asarray(img.resize(size, Image.BILINEAR, box=box))
        cases.append({"box": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "size": list(size),
                      "pixels": base64.b64encode(r.tobytes()).decode()})
    # A smooth JPEG (so decoding is well defined) for the eval pipeline.
    yy, xx = np.mgrid[0:90, 0:120]
    photo = np.stack([xx * 2, yy * 2.5, (xx + yy)], -1) % 256
    photo = (photo + rng.normal(0, 8, photo.shape)).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    evals = []
    for s in (32, 64):
        tf = transforms.Compose([transforms.Resize(int(s / 0.875)), transforms.CenterCrop(s)])
        r = np.asarray(tf(Image.open(io.BytesIO(jpeg)).convert("RGB")))
        evals.append({"size": s, "pixels": base64.b64encode(r.tobytes()).decode()})
    with open(out, "w") as f:
        json.dump({"source": {"width": 37, "height": 29, "pixels": base64.b64encode(src.tobytes()).decode()},
                   "resize": cases, "jpeg": base64.b64encode(jpeg).decode(), "eval": evals}, f)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
