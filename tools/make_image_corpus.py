#!/usr/bin/env python3
"""Seed corpus for tests/fuzz/fuzz_image_decode.cpp: one file per kind of image the loader meets.

  tools/make_image_corpus.py OUT [--from DIR ...]

JPEG baseline, progressive and Huffman-optimised, 4:4:4 / 4:2:0 / 4:2:2 subsampling, grayscale,
CMYK (Adobe inverted, as Photoshop writes it), odd sizes; PNG RGB, RGBA, grayscale with and without
alpha, palette, 16-bit, interlaced (Adam7). --from adds real files (e.g. a few of the
converted Fashion-MNIST folder). Each seed ends with the target's 8 knob bytes (crop, output size,
flip, DCT scaling), so the fuzzer starts from full decodes of every kind.
"""
import argparse
import io
import pathlib
import random
import sys
import zlib
import struct

try:
    from PIL import Image
except ImportError:
    print("make_image_corpus: needs Pillow (Debian: python3-pil)", file=sys.stderr)
    sys.exit(77)

KNOBS = bytes([16, 16, 240, 240, 23, 17, 1, 1])


def picture(w, h, seed):
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 7 + y * 3) % 256, (x * y + rng.randrange(16)) % 256, (255 - x * 5) % 256)
                 for y in range(h) for x in range(w)])
    return img


def png_interlaced(img):
    """Pillow cannot write Adam7: the chunks are written by hand (RGB, 8-bit, filter 0)."""
    w, h = img.size
    px = img.load()
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = bytearray()
    for x0, y0, dx, dy in passes:
        cols = range(x0, w, dx)
        if not cols:
            continue
        for y in range(y0, h, dy):
            raw.append(0)
            for x in cols:
                raw.extend(px[x, y])

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)) +
            chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def seeds():
    rgb = picture(67, 45, 1)
    out = {}
    for name, options in {"baseline_444": {"subsampling": 0}, "baseline_420": {"subsampling": 2},
                          "baseline_422": {"subsampling": 1}, "progressive": {"progressive": True},
                          "optimized": {"optimize": True}}.items():
        buf = io.BytesIO()
        try:
            rgb.save(buf, "JPEG", quality=85, **options)
        except (TypeError, OSError):
            continue
        out[f"jpeg_{name}.jpg"] = buf.getvalue()
    for mode in ("L", "CMYK"):
        buf = io.BytesIO()
        rgb.convert(mode).save(buf, "JPEG", quality=80)
        out[f"jpeg_{mode.lower()}.jpg"] = buf.getvalue()
    buf = io.BytesIO()
    picture(9, 5, 2).save(buf, "JPEG")
    out["jpeg_tiny.jpg"] = buf.getvalue()
    for mode in ("RGB", "RGBA", "L", "LA", "P", "I;16"):
        img = rgb.convert("I") if mode == "I;16" else rgb.convert(mode)
        if mode == "I;16":
            img = img.point(lambda v: v * 250).convert("I;16")
        buf = io.BytesIO()
        img.save(buf, "PNG")
        out[f"png_{mode.lower().replace(';', '')}.png"] = buf.getvalue()
    out["png_adam7.png"] = png_interlaced(picture(19, 13, 3))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--from", dest="real", type=pathlib.Path, action="append", default=[],
                        help="a folder whose .jpg/.jpeg/.png files are added (the first 8 of each)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = seeds()
    for folder in args.real:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not found:
            print(f"make_image_corpus: no images under {folder}", file=sys.stderr)
            return 2
        for p in found[:8]:
            files[f"real_{p.parent.name}_{p.name}"] = p.read_bytes()
    for name, data in files.items():
        (args.out / name).write_bytes(data + KNOBS)
    print(f"make_image_corpus: {len(files)} seeds in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
