#!/usr/bin/env python3
"""Converts weights between PyTorch and pmpl (every backbone of models/registry.h: the names are
torchvision's, only conv layouts differ).

  tools/torch_convert.py to-pmpl IN.pth OUT.safetensors   torchvision-style state_dict -> pmpl
  tools/torch_convert.py to-torch IN.safetensors OUT.pth  pmpl weights -> PyTorch state_dict
  tools/torch_convert.py from-export IN.pmpl OUT.pth      a deployment file -> PyTorch state_dict

from-export unfolds the deployment file (docs/FORMAT.md) into a state_dict for
torch_models.build(architecture, width, num_classes, small_input, genotype=...) with the file's
config (printed, and saved next to OUT as OUT.json): each folded conv keeps its weight and its
batchnorm becomes an identity carrying the folded bias (weight 1, bias b, mean 0, var 1 - eps);
a batchnorm left alone (an "affine" node) and an enhancer's become weight = scale, bias = shift.
So the PyTorch model computes what the file computes, to float32 rounding (f16 files are
widened). MobileNetV2 files are read by their tensor names; the other backbones' by their graph
(the node names are the module paths, and a conv's node names the batchnorm it absorbed).

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
import zlib

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


BN_EPS = 1e-5


def load_export(path):
    """Returns (config dict, dict name -> float32 torch.Tensor) of a PMPLMDL file, CRC checked."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"PMPLMDL\0" or len(raw) < 36:
        raise ValueError("not a pmpl model file (no PMPLMDL header)")
    version, _, config_size, count = struct.unpack_from("<IIQQ", raw, 8)
    if version != 1:
        raise ValueError(f"format version {version} is not supported (expected 1)")
    if zlib.crc32(raw[:-4]) != struct.unpack_from("<I", raw, len(raw) - 4)[0]:
        raise ValueError("the file is corrupt or truncated (CRC32 mismatch)")
    pos = 32
    config = json.loads(raw[pos:pos + config_size])
    pos += config_size
    tensors = {}
    for _ in range(count):
        (n,) = struct.unpack_from("<H", raw, pos)
        name = raw[pos + 2:pos + 2 + n].decode()
        pos += 2 + n
        dtype, rank = struct.unpack_from("<BB", raw, pos)
        pos += 2
        shape = struct.unpack_from(f"<{rank}Q", raw, pos)
        pos += 8 * rank
        offset, size = struct.unpack_from("<QQ", raw, pos)
        pos += 16
        kind = {0: torch.float32, 1: torch.float16}[dtype]
        t = torch.frombuffer(bytearray(raw[offset:offset + size]), dtype=kind) if size else torch.empty(0, dtype=kind)
        tensors[name] = t.reshape(shape).float()
    return config, tensors


def identity_batchnorm(out):
    """A function writing, into `out`, batchnorm `bn` as y = x * weight + bias in eval mode."""
    def identity_bn(bn, channels, bias, eps=BN_EPS, weight=None):
        out[bn + ".weight"] = torch.ones(channels) if weight is None else weight
        out[bn + ".bias"] = bias
        out[bn + ".running_mean"] = torch.zeros(channels)
        out[bn + ".running_var"] = torch.full((channels,), 1.0 - eps)
        out[bn + ".num_batches_tracked"] = torch.tensor(0)
    return identity_bn


def unfold_graph(graph, tensors):
    """A graph file's tensors (any backbone but MobileNetV2) as a torchvision-named state_dict."""
    out = {}
    identity_bn = identity_batchnorm(out)
    for node in graph["nodes"]:
        name, op = node["name"], node["op"]
        if op in ("conv", "depthwise"):
            weight, bias = tensors[name + ".weight"], tensors[name + ".bias"]
            out[name + ".weight"] = weight
            if "batchnorm" in node:
                identity_bn(node["batchnorm"], weight.shape[0], bias, node["batchnorm_eps"])
                if node["conv_bias"]:
                    out[name + ".bias"] = torch.zeros_like(bias)
            else:
                out[name + ".bias"] = bias
        elif op == "linear":
            out[name + ".weight"], out[name + ".bias"] = tensors[name + ".weight"], tensors[name + ".bias"]
        elif op == "affine":
            scale = tensors[name + ".scale"]
            identity_bn(name, scale.shape[0], tensors[name + ".shift"], node["eps"], scale)
        elif op == "enhancer":
            scale = tensors[name + ".scale"]
            identity_bn(name + ".bn", scale.shape[0], tensors[name + ".shift"], node["eps"], scale)
            if name + ".strip.conv1.weight" in tensors:
                conv1 = tensors[name + ".strip.conv1.weight"]
                out[name + ".strip.conv1.weight"] = conv1
                out[name + ".strip.conv1.bias"] = torch.zeros(conv1.shape[0])
                identity_bn(name + ".strip.bn1", conv1.shape[0], tensors[name + ".strip.conv1.bias"], node["strip_eps"])
                for gate in ("conv_h", "conv_w"):
                    for leaf in ("weight", "bias"):
                        key = f"{name}.strip.{gate}.{leaf}"
                        out[key] = tensors[key]
    return to_torch(out)


def unfold_export(tensors):
    """The deployment file's tensors as a torchvision-named state_dict (see the module doc)."""
    out = {}

    identity_bn = identity_batchnorm(out)
    for name, t in tensors.items():
        if name.startswith("classifier.") or ".strip.conv_" in name:
            out[name] = t  # stored as trained: no batchnorm follows them
        elif name.endswith(".scale"):  # enhancer: the batchnorm after the pooling sum
            parent = name[:-len(".scale")]
            identity_bn(parent + ".bn", t.shape[0], tensors[parent + ".shift"])
            out[parent + ".bn.weight"] = t
        elif name.endswith(".weight"):  # a folded conv, with the batchnorm it absorbed after it
            conv = name[:-len(".weight")]
            parent, leaf = conv.rsplit(".", 1)
            bias = tensors[conv + ".bias"]
            if leaf == "conv1":  # strip attention: conv1 has a bias of its own, then bn1
                out[conv + ".bias"] = torch.zeros_like(bias)
                bn = parent + ".bn1"
            else:  # in a Sequential the batchnorm is the next child
                bn = f"{parent}.{int(leaf) + 1}"
            out[name] = t
            identity_bn(bn, t.shape[0], bias)
        # ".shift" and a folded conv's ".bias" are taken with their ".scale" and ".weight"
    return to_torch(out)


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit(f"torch_convert: {path} holds no state_dict of tensors")
    return obj


def main(argv):
    if len(argv) != 4 or argv[1] not in ("to-pmpl", "to-torch", "from-export"):
        print("usage: tools/torch_convert.py to-pmpl IN.pth OUT.safetensors\n"
              "       tools/torch_convert.py to-torch IN.safetensors OUT.pth\n"
              "       tools/torch_convert.py from-export IN.pmpl OUT.pth", file=sys.stderr)
        raise SystemExit(2)
    mode, src, dst = argv[1:]
    try:
        if mode == "to-pmpl":
            save_safetensors(dst, to_pmpl(load_state_dict(src)), {"source": "torch_convert.py"})
        elif mode == "to-torch":
            tensors, _ = load_safetensors(src)
            torch.save(to_torch(tensors), dst)
        else:
            config, tensors = load_export(src)
            graph = config.get("graph")
            torch.save(unfold_graph(graph, tensors) if graph else unfold_export(tensors), dst)
            with open(dst + ".json", "w") as f:
                json.dump(config, f, indent=2)
            genotype = config.get("genotype") or {}
            print(f"{dst}: {config['architecture']} width {config['width']}, {config['num_classes']} classes, "
                  f"small_input {config['small_input']}, {len(genotype.get('enhancers', []))} fixed enhancers; "
                  f"build it with torch_models.build({config['architecture']!r}, ..., genotype=...) from {dst}.json")
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        print(f"torch_convert: {mode} {src}: {e}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main(sys.argv)
