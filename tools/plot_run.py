#!/usr/bin/env python3
"""Draws a pmpl training run (the log.jsonl of its --output folder) as PNG files next to it:
  curves.png     training loss per logged step, validation top-1/top-5 per epoch
  enhancers.png  for a PMPL search: each enhancer's candidate probabilities over the steps, with
                 the step where it was fixed and to what, and with --gate its q_keep (black, dashed)

usage: /usr/bin/python3 tools/plot_run.py RUN_DIR     (needs matplotlib: python3-matplotlib)
"""
import json
import math
import os
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    raise SystemExit("plot_run: matplotlib is missing: apt-get install python3-matplotlib")

OPS = ["skip", "strip", "max3", "max5", "max7", "avg3", "avg5", "avg7"]


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    run = sys.argv[1]
    path = os.path.join(run, "log.jsonl")
    if not os.path.exists(path):
        raise SystemExit(f"plot_run: {path} does not exist: is {run} a pmpl train --output folder?")
    lines = [json.loads(l) for l in open(path) if l.strip()]
    steps = [l for l in lines if l.get("type") == "step"]
    epochs = [l for l in lines if l.get("type") == "epoch" and "val_top1" in l]
    fixes = [l for l in lines if l.get("event") == "fixed"]

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot([l["step"] for l in steps], [l["loss"] for l in steps], lw=1)
    a.set_xlabel("step"), a.set_ylabel("training loss"), a.set_title("loss")
    b.plot([l["epoch"] + 1 for l in epochs], [100 * l["val_top1"] for l in epochs], "o-", label="val top-1")
    b.plot([l["epoch"] + 1 for l in epochs], [100 * l["val_top5"] for l in epochs], "s--", label="val top-5")
    b.set_xlabel("epoch"), b.set_ylabel("%"), b.set_title("accuracy"), b.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(run, "curves.png"), dpi=110)
    written = ["curves.png"]

    tracked = [l for l in steps if "enhancers" in l]
    if tracked:
        names = [e["name"] for e in tracked[0]["enhancers"]]
        cols = 4
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
        x = [l["step"] for l in tracked]
        for k, name in enumerate(names):
            ax = axes[k // cols][k % cols]
            for op in OPS:
                ax.plot(x, [l["enhancers"][k]["probs"][op] for l in tracked], lw=1, label=op)
            if "keep" in tracked[0]["enhancers"][k]:
                ax.plot(x, [l["enhancers"][k]["keep"] for l in tracked], "k--", lw=1, label="q_keep")
            for f in fixes:
                if f["name"] == name:
                    ax.axvline(f["step"], color="k", ls=":", lw=1)
                    ax.set_title(f"{name}\n-> {f['ops']} ({f['why']})", fontsize=8)
                    break
            else:
                ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=7)
        for k in range(len(names), rows * cols):
            axes[k // cols][k % cols].axis("off")
        axes[0][0].legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(os.path.join(run, "enhancers.png"), dpi=110)
        written.append("enhancers.png")
    print("wrote " + ", ".join(os.path.join(run, w) for w in written))


if __name__ == "__main__":
    main()
