#!/usr/bin/env python3
"""Converts MobileNetV2 weights between PyTorch and pmpl.

  tools/torch_convert.py to-pmpl IN.pth OUT.safetensors   torchvision-style state_dict -> pmpl
  tools/torch_convert.py to-torch IN.safetensors OUT.pth  pmpl weights -> PyTorch state_dict

Names are the same on both sides (torchvision's state_dict keys; the Meta-Pooling model adds
features.N.enhancer.{alpha, strip.*, bn.*}). Layouts differ:
  dense and 1x1 conv weights  PyTorch [Cout, Cin, kh, kw]  <->  pmpl [Cout, kh, kw, Cin]
  depthwise conv weights      PyTorch [C, 1, k, k]         <->  pmpl [C, k, k]
  everything else (linear [out, in], batchnorm, biases, alpha) is identical.
The conversion is exact (a permutation of the same float32 values), both ways.

IN.pth may be a plain state_dict or a checkpoint dict holding one under "state_dict" or
"model". Works with Debian's python3-torch (1.13) and current PyTorch; safetensors files are
read and written here directly, so the `safetensors` package is not needed.
"""
import json
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16,
          "BF16": torch.bfloat16, "I32": torch.int32, "I64": torch.int64, "U8": torch.uint8}
NAMES = {v: k for k, v in DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> torch.Tensor (CPU), written in order."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Returns (dict name -> torch.Tensor, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    base, tensors = 8 + n, {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        buf = bytearray(raw[base + begin:base + end])
        t = torch.frombuffer(buf, dtype=DTYPES[e["dtype"]]) if buf else torch.empty(0, dtype=DTYPES[e["dtype"]])
        tensors[name] = t.reshape(e["shape"]).clone()
    return tensors, metadata


def is_depthwise_torch(t):
    return t.dim() == 4 and t.shape[1] == 1 and t.shape[2] > 1


def to_pmpl(state):
    out = {}
    for name, t in state.items():
        if name.endswith("weight") and t.dim() == 4:
            t = t.reshape(t.shape[0], t.shape[2], t.shape[3]) if is_depthwise_torch(t) else t.permute(0, 2, 3, 1)
        out[name] = t.detach().contiguous().cpu()
    return out


def to_torch(tensors):
    out = {}
    for name, t in tensors.items():
        if name.endswith("weight") and t.dim() == 3:
            t = t.reshape(t.shape[0], 1, t.shape[1], t.shape[2])
        elif name.endswith("weight") and t.dim() == 4:
            t = t.permute(0, 3, 1, 2)
        out[name] = t.contiguous()
    return out


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit(f"torch_convert: {path} holds no state_dict of tensors")
    return obj


def main(argv):
    if len(argv) != 4 or argv[1] not in ("to-pmpl", "to-torch"):
        print("usage: tools/torch_convert.py to-pmpl IN.pth OUT.safetensors\n"
              "       tools/torch_convert.py to-torch IN.safetensors OUT.pth", file=sys.stderr)
        raise SystemExit(2)
    mode, src, dst = argv[1:]
    try:
        if mode == "to-pmpl":
            save_safetensors(dst, to_pmpl(load_state_dict(src)), {"source": "torch_convert.py"})
        else:
            tensors, _ = load_safetensors(src)
            torch.save(to_torch(tensors), dst)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        print(f"torch_convert: {mode} {src}: {e}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main(sys.argv)
