#!/usr/bin/env python3
"""The baseline for `pmpl bench loader`: torchvision's ImageFolder + PIL with the same transform
(RandomResizedCrop(S) + RandomHorizontalFlip, or Resize(S/0.875) + CenterCrop(S) with --eval),
uint8 output (PILToTensor, as pmpl's loader delivers uint8), the same batch size and number of
worker processes, on the same files. Prints img/s over --batches batches after one warm-up batch.
With --auto-augment ta_wide or imagenet, torchvision's TrivialAugmentWide or AutoAugment (ImageNet
policy); with --auto-augment rand-..., timm's RandAugment (timm.data.auto_augment.rand_augment_transform, with
the hparams timm's transforms_imagenet_train gives it, bilinear) after the flip, as pmpl's
`--aa STR`: timm is not a Debian package, so install it beside Debian's torch first
(python3 -m venv --system-site-packages VENV && VENV/bin/pip install --no-deps timm).

usage: /usr/bin/python3 tools/bench_loader_torch.py --data ROOT --batch-size 64 --workers 2 \\
           --input-size 224 [--eval] [--auto-augment rand-m9-mstd0.5] [--batches 30] [--out torch_loader.json]
then:  build/pmpl bench loader --data ROOT --batch-size 64 --workers 2 --input-size 224 \\
           --baseline torch_loader.json
"""
import json
import argparse
import time

import torch
from torchvision import datasets, transforms


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--auto-augment", default="")
    ap.add_argument("--out", help="JSON for `pmpl bench loader --baseline` (results accumulate)")
    a = ap.parse_args()
    s = a.input_size
    if a.eval:
        tf = transforms.Compose([transforms.Resize(int(s / 0.875)), transforms.CenterCrop(s), transforms.PILToTensor()])
    else:
        steps = [transforms.RandomResizedCrop(s), transforms.RandomHorizontalFlip()]
        if a.auto_augment == "ta_wide":
            steps.append(transforms.TrivialAugmentWide())
        elif a.auto_augment == "imagenet":
            steps.append(transforms.AutoAugment(transforms.AutoAugmentPolicy.IMAGENET))
        elif a.auto_augment:
            from PIL import Image
            from timm.data.auto_augment import rand_augment_transform
            mean = (0.485, 0.456, 0.406)
            steps.append(rand_augment_transform(a.auto_augment, dict(
                translate_const=int(s * 0.45), img_mean=tuple(min(255, round(255 * x)) for x in mean),
                interpolation=Image.BILINEAR)))
        tf = transforms.Compose(steps + [transforms.PILToTensor()])
    ds = datasets.ImageFolder(f"{a.data}/{a.split}", transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
                                         persistent_workers=a.workers > 0, drop_last=False)
    images, done = 0, 0
    it = iter(loader)
    next(it)  # warm-up: worker processes started
    t0 = time.perf_counter()
    while done < a.batches - 1:
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        images += x.shape[0]
        done += 1
    dt = time.perf_counter() - t0
    if a.out:
        key = f"{'eval' if a.eval else 'train'}_s{s}_b{a.batch_size}_w{a.workers}" + (
            f"_{a.auto_augment}" if a.auto_augment else "")
        results = {}
        try:
            with open(a.out) as f:
                results = {r["key"]: r for r in json.load(f)["results"]}
        except FileNotFoundError:
            pass
        results[key] = {"key": key, "img_per_s": images / dt}
        with open(a.out, "w") as f:
            json.dump({"label": f"torchvision-{torchvision_version()}+PIL", "results": list(results.values())}, f, indent=2)
    print(f"torchvision {torchvision_version()} + PIL: {images / dt:.1f} img/s "
          f"({images / dt / max(a.workers, 1):.1f} per worker), {'eval' if a.eval else 'train'} transform at {s}, "
          f"batch {a.batch_size}, {a.workers} workers")


def torchvision_version():
    import torchvision
    return torchvision.__version__


if __name__ == "__main__":
    main()
