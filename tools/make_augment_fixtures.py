#!/usr/bin/env python3
"""Writes tests/fixtures/augment_pil.json: what Pillow makes of two small random RGB images under
each operation timm's RandAugment uses, with fixed arguments, for tests/test_augment.cpp to match
byte for byte (data/pil_ops.h). The arguments are the ones timm's level functions give (e.g.
rotate +-27 degrees at magnitude 9) plus edge cases (factors above 1 that clip, posterize 0 bits,
solarize at 0 and 256, rotations Pillow turns into transposes). SolarizeAdd is timm's own
function, written out here as timm writes it. The tv_* cases are torchvision's
autoaugment._apply_op (nearest-neighbour, black fill) at magnitudes from its tables, and
"tables" holds TrivialAugmentWide's and AutoAugment's (ImageNet) float32 magnitude tables, and
"hue" torchvision's adjust_hue (ColorJitter's hue) on 1,024 random colours.

usage: /usr/bin/python3 tools/make_augment_fixtures.py [OUT.json]
"""
import base64
import json
import sys

import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as tv_autoaugment
from torchvision.transforms import functional as tv_functional

FILL = (124, 116, 104)  # timm's img_mean for ImageNet


def solarize_add(img, add, thresh):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * 3)


def cases():
    yield "autocontrast", [], lambda im: ImageOps.autocontrast(im)
    yield "equalize", [], lambda im: ImageOps.equalize(im)
    yield "invert", [], lambda im: ImageOps.invert(im)
    for bits in (0, 1, 3, 4, 7, 8):
        yield "posterize", [bits], lambda im, b=bits: im if b >= 8 else ImageOps.posterize(im, b)
    for t in (0, 26, 128, 230, 256):
        yield "solarize", [t], lambda im, t=t: ImageOps.solarize(im, t)
    for add in (0, 39, 99, 110):
        yield "solarize_add", [add, 128], lambda im, a=add: solarize_add(im, a, 128)
    for name, cls in (("color", ImageEnhance.Color), ("contrast", ImageEnhance.Contrast),
                      ("brightness", ImageEnhance.Brightness), ("sharpness", ImageEnhance.Sharpness)):
        for f in (0.1, 0.37, 1.0, 1.72, 1.9):
            yield name, [f], lambda im, c=cls, f=f: c(im).enhance(f)
    for name, mk in (("shear_x", lambda v, im: (1, v, 0, 0, 1, 0)), ("shear_y", lambda v, im: (1, 0, 0, v, 1, 0)),
                     ("translate_x", lambda v, im: (1, 0, v * im.size[0], 0, 1, 0)),
                     ("translate_y", lambda v, im: (1, 0, 0, 0, 1, v * im.size[1]))):
        for v in (0.27, -0.27, 0.081, -0.405, 0.2025):
            yield name, [v], lambda im, mk=mk, v=v: im.transform(im.size, Image.AFFINE, mk(v, im), Image.BILINEAR,
                                                                 fillcolor=FILL)
    for deg in (27.0, -27.0, 13.5, -2.7, 0.0, 90.0, 180.0, -90.0, 270.0, 359.5):
        yield "rotate", [deg], lambda im, d=deg: im.rotate(d, Image.BILINEAR, fillcolor=FILL)
    # timm's RandAugment picks bilinear or bicubic per geometric op (train.py's 'random').
    for v in (0.27, -0.2025):
        yield "bicubic_shear_x", [v], lambda im, v=v: im.transform(im.size, Image.AFFINE, (1, v, 0, 0, 1, 0),
                                                                   Image.BICUBIC, fillcolor=FILL)
        yield "bicubic_translate_y", [v], lambda im, v=v: im.transform(im.size, Image.AFFINE,
                                                                       (1, 0, 0, 0, 1, v * im.size[1]),
                                                                       Image.BICUBIC, fillcolor=FILL)
    for deg in (27.0, -13.5):
        yield "bicubic_rotate", [deg], lambda im, d=deg: im.rotate(d, Image.BICUBIC, fillcolor=FILL)
    tv = {"identity": [0.0], "shear_x": [0.99000001, -0.3, 0.13333334], "shear_y": [-0.627000034, 0.2],
          "translate_x": [13.8666668, -16.0, 3.2], "translate_y": [-7.46666718, 32.0],
          "rotate": [-135.0, 26.666666, 90.0, 3.33333325], "brightness": [-0.99000001, 0.5],
          "color": [0.899999976, -0.4], "contrast": [-0.2, 0.7], "sharpness": [0.99000001, -0.6],
          "posterize": [2.0, 6.0], "solarize": [141.666656, 127.5, 0.0], "autocontrast": [0.0], "equalize": [0.0],
          "invert": [0.0]}
    names = {"identity": "Identity", "shear_x": "ShearX", "shear_y": "ShearY", "translate_x": "TranslateX",
             "translate_y": "TranslateY", "rotate": "Rotate", "brightness": "Brightness", "color": "Color",
             "contrast": "Contrast", "sharpness": "Sharpness", "posterize": "Posterize", "solarize": "Solarize",
             "autocontrast": "AutoContrast", "equalize": "Equalize", "invert": "Invert"}
    for op, mags in tv.items():
        for m in mags:
            m = float(np.float32(m))
            yield "tv_" + op, [m], lambda im, n=names[op], m=m: tv_autoaugment._apply_op(
                im, n, m, interpolation=InterpolationMode.NEAREST, fill=None)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/augment_pil.json"
    rng = np.random.default_rng(14)
    # Not square (rotations by 90 stay affine there), and square; each channel in its own range so
    # autocontrast has something to stretch.
    # The first has more than 255 pixels (else equalize's step is 0 and it changes nothing) and a
    # skewed first channel (else equalizing a flat histogram changes little).
    first = [rng.integers(30, 200, (17, 19)) ** 2 // 200, rng.integers(0, 256, (17, 19)), rng.integers(90, 140, (17, 19))]
    images = [np.stack(first, -1),
              np.stack([rng.integers(lo, hi, (12, 12)) for lo, hi in ((0, 256), (10, 250), (60, 61))], -1)]
    doc = {"pillow": PIL.__version__, "fill": FILL, "images": [], "cases": []}
    for src in images:
        src = src.astype(np.uint8)
        doc["images"].append({"height": src.shape[0], "width": src.shape[1],
                              "rgb": base64.b64encode(src.tobytes()).decode()})
    for name, args, fn in cases():
        for i, src in enumerate(images):
            got = np.asarray(fn(Image.fromarray(src.astype(np.uint8))).convert("RGB"))
            doc["cases"].append({"op": name, "args": args, "image": i,
                                 "rgb": base64.b64encode(got.tobytes()).decode()})
    # adjust_hue's round trip through Pillow's HSV, on 1,024 random colours (its own image: the
    # conversions' float arithmetic needs many colours to be caught).
    colours = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    doc["hue"] = {"height": 32, "width": 32, "rgb": base64.b64encode(colours.tobytes()).decode(), "cases": []}
    for factor in (0.0, 0.1, -0.1, 0.5, -0.5, 0.37, -0.013):
        got = np.asarray(tv_functional.adjust_hue(Image.fromarray(colours), factor))
        doc["hue"]["cases"].append({"factor": factor, "rgb": base64.b64encode(got.tobytes()).decode()})
    wide = tv_autoaugment.TrivialAugmentWide()._augmentation_space(31)
    imagenet = tv_autoaugment.AutoAugment()._augmentation_space(10, (224, 224))
    doc["tables"] = {"wide": {k: [float(x) for x in v[0]] for k, v in wide.items() if v[0].ndim},
                     "imagenet": {k: [float(x) for x in v[0]] for k, v in imagenet.items()
                                  if v[0].ndim and not k.startswith("Translate")}}
    with open(out, "w") as f:
        json.dump(doc, f, indent=0)
    print(f"wrote {len(doc['cases'])} cases to {out}")


if __name__ == "__main__":
    main()
