#!/usr/bin/env python3
"""Checks tools/torch_convert.py and `pmpl forward` against PyTorch (run by ctest as
Python.TorchConvert; exits 77, "skipped", where torch or torchvision is missing):
  1. torch -> pmpl -> torch is exact for every backbone, plain and with Meta-Pooling (CASES: every
     tensor of the state_dict, num_batches_tracked included, bit for bit);
  2. `pmpl forward` on the converted weights gives PyTorch's eval-mode logits (f32, 1e-5);
  3. a fixed Meta-Pooling network (every op kind, pairs too) exported with `pmpl export`:
     `torch_convert.py from-export` gives back a PyTorch model computing the original's logits,
     and `pmpl infer --json` on a PNG gives the log-probabilities that model computes (float64)
     on the same image through torchvision's Resize(int(size / 0.875)) + CenterCrop(size), for
     f32 and f16 files; each within 10x the error that rounding every weight to float32 causes
     (rounding_floor: a random network is poorly conditioned, so fixed tolerances mislead);
  4. the other backbones (MobileNetV3, EfficientNet-B0, ShuffleNetV2, as fixed Meta-Pooling
     networks with every op kind) exported as graphs: `pmpl forward --deploy` gives the PyTorch
     reference's logits and `from-export` a PyTorch model computing them, within the same bound.

usage: python3 tools/check_torch_convert.py PMPL_BINARY
"""
import copy
import math
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
import torch_models  # noqa: E402
from check_util import CASES, centered, fixed_model, relative, rounding_floor, save_for_pmpl  # noqa: E402


def run(*args):
    subprocess.run([sys.executable, *args], check=True)


def check_export(pmpl, tool, tmp):
    import json

    from PIL import Image
    import torchvision.transforms as T

    width, classes, size = 0.25, 5, 24
    model, genotype = fixed_model("mobilenetv2_mp", width, classes, size)
    st, geno = save_for_pmpl(model, genotype, os.path.join(tmp, "fixed"))
    # Structure the network responds to (smooth ramps, a bright block off-centre), plus noise:
    # a crop or resize that differs from torchvision's moves the probabilities visibly.
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:33, 0:41]
    pixels = np.stack([xx * 6, yy * 7, (xx + yy) * 3], axis=2) + rng.integers(0, 40, (33, 41, 3))
    pixels[4:14, 22:36] = [250, 30, 200]
    png = os.path.join(tmp, "probe.png")
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(png)
    x = T.Compose([T.Resize(int(size / 0.875)), T.CenterCrop(size), T.ToTensor(),
                   T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(Image.open(png).convert("RGB"))
    probe_x = torch.randn(3, 3, size, size)
    failures = 0
    for dtype in ("f32", "f16"):
        exported, back = (os.path.join(tmp, f"fixed.{dtype}.{ext}") for ext in ("pmpl", "pth"))
        subprocess.run([pmpl, "export", "--weights", st, "--model", "mobilenetv2_mp", "--width", str(width),
                        "--small-input", "--num-classes", str(classes), "--genotype", geno, "--dtype", dtype,
                        "--input-size", str(size), "--out", exported], check=True, stdout=subprocess.DEVNULL)
        run(tool, "from-export", exported, back)
        with open(back + ".json") as f:
            config = json.load(f)
        unfolded = mp.build(config["width"], config["num_classes"], config["small_input"], True,
                            genotype={e["name"]: e["ops"] for e in config["genotype"]["enhancers"]})
        unfolded.load_state_dict(torch.load(back))
        unfolded.eval()
        with torch.no_grad():
            # What the file says, computed in float64 by PyTorch, against pmpl's float32 runtime.
            expected = centered(copy.deepcopy(unfolded).double()(x[None].double()))[0]
            bound = 10 * rounding_floor(unfolded, x[None], 2.0**-24)
            if dtype == "f32":  # the unfolded file against the network it came from
                err = relative(centered(unfolded(probe_x)), centered(model(probe_x)))
                floor = 10 * rounding_floor(model, probe_x, 2.0**-24)
                print(f"export f32: from-export PyTorch model vs the original: relative error {err:.2e} "
                      f"(bound {floor:.1e})")
                failures += not err <= floor
            else:  # not asserted: how far f16 weights move this (random, poorly conditioned) network
                drift = relative(expected, centered(copy.deepcopy(model).double()(x[None].double()))[0])
                print(f"export f16: log-probabilities move {drift:.1e} (relative) from the f32 network's")
        top = json.loads(subprocess.run([pmpl, "infer", exported, png, "--json", "--top", str(classes)], check=True,
                                        capture_output=True, text=True).stdout)[0]["top"]
        got = torch.zeros(classes, dtype=torch.float64)
        for entry in top:
            got[entry["index"]] = math.log(entry["probability"])
        err = relative(centered(got), expected)
        print(f"export {dtype}: pmpl infer vs PyTorch (float64, torchvision preprocessing) log-probabilities on a "
              f"PNG: relative error {err:.2e} (bound {bound:.1e})")
        failures += not (err <= bound and top[0]["index"] == int(expected.argmax()))
    return failures


GRAPH_CASES = [("mobilenetv3_small_mp", 0.25), ("efficientnet_b0_mp", 0.25), ("shufflenetv2_x0_5_mp", 1.0)]


def check_graph_exports(pmpl, tool, tmp):
    """Check 4 (module doc): every backbone exported through its traced graph, 32 px small input."""
    import json

    size, classes, failures = 32, 6, 0
    for name, width in GRAPH_CASES:
        model, genotype = fixed_model(name, width, classes, size, True, seed=13)
        st, geno = save_for_pmpl(model, genotype, os.path.join(tmp, name))
        exported, back = (os.path.join(tmp, f"{name}.{ext}") for ext in ("pmpl", "pth"))
        subprocess.run([pmpl, "export", "--weights", st, "--model", name, "--width", str(width), "--small-input",
                        "--num-classes", str(classes), "--genotype", geno, "--input-size", str(size), "--out",
                        exported], check=True, stdout=subprocess.DEVNULL)
        x = torch.randn(3, 3, size, size)
        np.save(os.path.join(tmp, "gx.npy"), x.numpy())
        subprocess.run([pmpl, "forward", "--deploy", exported, "--input", os.path.join(tmp, "gx.npy"), "--output",
                        os.path.join(tmp, "gy.npy")], check=True)
        bound = 10 * rounding_floor(model, x, 2.0**-24)
        with torch.no_grad():
            expected = centered(copy.deepcopy(model).double()(x.double()))
            got = centered(torch.from_numpy(np.load(os.path.join(tmp, "gy.npy"))))
            err = relative(got, expected)
            run(tool, "from-export", exported, back)
            with open(back + ".json") as f:
                config = json.load(f)
            unfolded = torch_models.build(config["architecture"], config["width"], config["num_classes"],
                                          config["small_input"], 0.0,
                                          {e["name"]: e["ops"] for e in config["genotype"]["enhancers"]})
            unfolded.load_state_dict(torch.load(back))
            unfolded.eval()
            back_err = relative(centered(unfolded.double()(x.double())), expected)
        print(f"{name} exported as a graph: pmpl forward --deploy vs PyTorch (float64) {err:.2e}, from-export's "
              f"PyTorch model vs the original {back_err:.2e} (bound {bound:.1e})")
        failures += not (err <= bound and back_err <= bound)
    return failures


def main():
    pmpl = sys.argv[1]
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_convert.py")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, size in CASES:
            torch.manual_seed(5)
            model = torch_models.build(name, cfg["width"], cfg["num_classes"], cfg["small_input"])
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
        failures += check_export(pmpl, tool, tmp)
        failures += check_graph_exports(pmpl, tool, tmp)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
