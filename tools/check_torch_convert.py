#!/usr/bin/env python3
"""Checks tools/torch_convert.py and `pmpl forward` against PyTorch (run by ctest as
Python.TorchConvert; exits 77, "skipped", where torch or torchvision is missing):
  1. torch -> pmpl -> torch is exact for MobileNetV2 and MobileNetV2 with Meta-Pooling (every
     tensor of the state_dict, num_batches_tracked included, bit for bit);
  2. `pmpl forward` on the converted weights gives PyTorch's eval-mode logits (f32, 1e-5).

usage: python3 tools/check_torch_convert.py PMPL_BINARY
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torchvision  # noqa: F401
except ImportError as e:
    print(f"skipped: {e} (install python3-torch python3-torchvision)")
    raise SystemExit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mobilenetv2_mp as mp  # noqa: E402

CASES = [("mobilenetv2", dict(width=0.5, num_classes=7, small_input=False), 48),
         ("mobilenetv2_mp", dict(width=0.25, num_classes=5, small_input=True), 24)]


def run(*args):
    subprocess.run([sys.executable, *args], check=True)


def main():
    pmpl = sys.argv[1]
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_convert.py")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, size in CASES:
            torch.manual_seed(5)
            model = mp.build(cfg["width"], cfg["num_classes"], cfg["small_input"], name == "mobilenetv2_mp")
            with torch.no_grad():  # non-trivial running statistics and alphas
                model.train()
                model(torch.randn(4, 3, size, size))
                for m in model.modules():
                    if isinstance(m, mp.MetaPooling):
                        m.alpha.copy_(torch.randn(8))
            model.eval()
            pth, st, back = (os.path.join(tmp, f"{name}.{ext}") for ext in ("pth", "safetensors", "back.pth"))
            torch.save(model.state_dict(), pth)
            run(tool, "to-pmpl", pth, st)
            run(tool, "to-torch", st, back)
            original, restored = model.state_dict(), torch.load(back)
            exact = original.keys() == restored.keys() and all(
                original[k].dtype == restored[k].dtype and torch.equal(original[k], restored[k]) for k in original)
            print(f"{name}: round trip torch -> pmpl -> torch {'exact' if exact else 'DIFFERS'} "
                  f"({len(original)} tensors)")
            failures += not exact

            x = torch.randn(3, 3, size, size)
            np.save(os.path.join(tmp, "x.npy"), x.numpy())
            flags = ["--model", name, "--width", str(cfg["width"]), "--num-classes", str(cfg["num_classes"])]
            flags += ["--small-input"] if cfg["small_input"] else []
            subprocess.run([pmpl, "forward", *flags, "--weights", st, "--input", os.path.join(tmp, "x.npy"),
                            "--output", os.path.join(tmp, "y.npy")], check=True)
            with torch.no_grad():
                expected = model(x)
            got = torch.from_numpy(np.load(os.path.join(tmp, "y.npy")))
            err = float((got - expected).norm() / expected.norm())
            print(f"{name}: pmpl forward vs PyTorch eval logits: relative error {err:.2e}")
            failures += not err <= 1e-5
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
