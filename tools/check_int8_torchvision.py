#!/usr/bin/env python3
"""int8 accuracy of a converted torchvision MobileNetV2 (width 1.0, torchvision's own layers).

Trains torchvision.models.mobilenet_v2 with PyTorch on ROOT/train (a pmpl dataset folder), converts
the weights with tools/torch_convert.py, exports them with pmpl as f32 and as int8 (calibrated on
ROOT/train), and scores both files with `pmpl eval --deploy` on ROOT/val. Prints both top-1s and
their difference, and writes them to --out. The images go through pmpl's own eval transform
(shorter side to int(size / 0.875), centre crop, ImageNet mean and std), so training uses the
same resize before its random crop.

  python3 tools/check_int8_torchvision.py data_cache/fashion-mnist --out runs/int8-torchvision
"""
import argparse
import json
import math
import pathlib
import re
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def fail(message):
    print(f"check_int8_torchvision.py: {message}", file=sys.stderr)
    sys.exit(2)


def train(args, classes):
    import torch
    import torchvision
    from torchvision import transforms

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    resize = int(args.input_size / 0.875)
    transform = transforms.Compose([
        transforms.Lambda(lambda im: im.convert("RGB")),
        transforms.Resize(resize),
        transforms.RandomCrop(args.input_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    data = torchvision.datasets.ImageFolder(str(args.data / "train"), transform=transform)
    if data.classes != classes:
        fail(f"{args.data}/train: classes {data.classes} differ from val's {classes}")
    generator = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, generator=generator)
    model = torchvision.models.mobilenet_v2(num_classes=len(classes)).to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 4e-5}, {"params": rest, "weight_decay": 0.0}],
                                lr=args.lr, momentum=0.9, nesterov=True)
    steps = args.epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    model.train()
    step, start = 0, time.time()
    for epoch in range(args.epochs):
        for images, labels in loader:
            loss = loss_fn(model(images.to(memory_format=torch.channels_last)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 50 == 0 or step == steps:
                rate = step * args.batch_size / (time.time() - start)
                print(f"epoch {epoch + 1}/{args.epochs} step {step}/{steps} loss {loss.item():.4f} "
                      f"({rate:.0f} img/s)", flush=True)
    weights = args.out / "mobilenet_v2.pth"
    torch.save(model.state_dict(), weights)
    return weights


def top1(pmpl, data, deploy):
    text = subprocess.run([pmpl, "eval", "--data", str(data), "--deploy", str(deploy)], check=True,
                          capture_output=True, text=True).stdout
    match = re.search(r"top-1\D*([0-9.]+)", text)
    if not match:
        fail(f"no top-1 in `pmpl eval` output:\n{text}")
    return float(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=pathlib.Path, help="dataset folder (ROOT/train, ROOT/val)")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder for the weights, files and results")
    parser.add_argument("--pmpl", default="build/pmpl")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calib-images", type=int, default=512)
    args = parser.parse_args()
    for split in ("train", "val"):
        if not (args.data / split).is_dir():
            fail(f"{args.data / split} is not a folder; make one with `pmpl data fashion-mnist {args.data}`")
    if not pathlib.Path(args.pmpl).is_file():
        fail(f"{args.pmpl} not found; build pmpl first or pass --pmpl")
    classes = sorted(p.name for p in (args.data / "val").iterdir() if p.is_dir())
    args.out.mkdir(parents=True, exist_ok=True)

    weights = train(args, classes)
    converted = args.out / "mobilenet_v2.safetensors"
    subprocess.run([sys.executable, str(HERE / "torch_convert.py"), "to-pmpl", str(weights), str(converted)],
                   check=True)
    common = [args.pmpl, "export", "--model", "mobilenetv2", "--num-classes", str(len(classes)), "--weights",
              str(converted), "--input-size", str(args.input_size)]
    f32, int8 = args.out / "f32.pmpl", args.out / "int8.pmpl"
    subprocess.run(common + ["--out", str(f32)], check=True)
    subprocess.run(common + ["--dtype", "int8", "--calibrate", str(args.data), "--calib-images",
                             str(args.calib_images), "--out", str(int8)], check=True)
    result = {"model": "torchvision mobilenet_v2 (width 1.0)", "data": str(args.data), "split": "val",
              "input_size": args.input_size, "epochs": args.epochs, "seed": args.seed,
              "top1_f32": top1(args.pmpl, args.data, f32), "top1_int8": top1(args.pmpl, args.data, int8),
              "bytes_f32": f32.stat().st_size, "bytes_int8": int8.stat().st_size}
    result["int8_minus_f32"] = round(result["top1_int8"] - result["top1_f32"], 4)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
