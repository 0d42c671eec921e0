#!/usr/bin/env python3
"""Smoke check of tools/bench_fidelity.py on a backbone other than MobileNetV2 (ctest
Python.BenchFidelity, about 20 s): on a generated 3-class dataset, `--model mobilenetv3_small`
with 2 seeds runs every arm and its searches, and fidelity.json has each arm's two results and
each search's genotype over all 10 of MobileNetV3-Small-MP's enhancers, named as the network
names them; the random arm's genotype names the same enhancers; the CPU is recorded and every arm
is compared with plain seed by seed. Then a run killed mid-way is resumed by the next invocation
and ends where the uninterrupted run ended, and a run started with other flags starts again.

usage: python3 tools/check_bench_fidelity.py PMPL_BINARY
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write_png(path, pixels, size):
    """An 8-bit grayscale PNG from a list of size*size values."""
    raw = b"".join(b"\0" + bytes(pixels[r * size:(r + 1) * size]) for r in range(size))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_dataset(root, size=28):
    """Three classes told apart by where a bright square sits, with noise."""
    rng = random.Random(7)
    for split, count in (("train", 80), ("val", 12)):
        for k, name in enumerate(("left", "middle", "right")):
            os.makedirs(os.path.join(root, split, name))
            for i in range(count):
                x0 = 2 + 8 * k
                pixels = [min(255, rng.randrange(60) + (150 if x0 <= c < x0 + 8 and 10 <= r < 18 else 0))
                          for r in range(size) for c in range(size)]
                write_png(os.path.join(root, split, name, f"{i:03d}.png"), pixels, size)


def main():
    pmpl = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "data"), os.path.join(tmp, "fidelity")
        make_dataset(data)
        done = subprocess.run([sys.executable, os.path.join(HERE, "bench_fidelity.py"), "--data", data, "--out", out,
                               "--pmpl", pmpl, "--model", "mobilenetv3_small", "--extra", "--bn-momentum 0.1",
                               "--seeds", "2", "--epochs", "1", "--train-images", "96", "--search-images", "96",
                               "--input-size", "28", "--batch-size", "16", "--jobs", "2",
                               "--arms", "plain,pmpl,onepass,random,max3,skip"],
                              capture_output=True, text=True)
        print(done.stdout[-1500:], done.stderr[-1500:])
        if done.returncode != 0:
            print(f"bench_fidelity exited {done.returncode}")
            raise SystemExit(1)
        report = json.load(open(os.path.join(out, "fidelity.json")))
        arms = {r["arm"]: r for r in report["arms"]}
        ok = sorted(arms) == sorted(["plain", "pmpl", "onepass", "random", "max3", "skip"]) and all(
            len(r["top1"]) == 2 for r in arms.values())
        print(f"arms {sorted(arms)}, two seeds each: {'ok' if ok else 'WRONG'}")
        failures += not ok
        ok = "cpu" in report and all(f"{arm} - plain, paired by seed: " in done.stdout for arm in arms if arm != "plain")
        print(f"the CPU recorded and each arm paired with plain by seed: {'ok' if ok else 'WRONG'}")
        failures += not ok
        names = None
        kinds = sorted({(s["arm"], s["seed"]) for s in report["searches"]})
        ok = kinds == [("onepass", 0), ("onepass", 1), ("pmpl", 0), ("pmpl", 1)]
        print(f"searches reported: {kinds}: {'ok' if ok else 'WRONG'}")
        failures += not ok
        for s in report["searches"]:
            # The onepass arm searches, fixes and trains on in its own run; pmpl's searches run apart.
            run = f"onepass-s{s['seed']}" if s["arm"] == "onepass" else f"search-s{s['seed']}"
            genotype = json.load(open(os.path.join(out, run, "genotype.json")))
            names = [e["name"] for e in genotype["enhancers"]]
            ok = len(s["genotype"]) == 10 and len(names) == 10 and all(n.endswith(".enhancer") for n in names)
            print(f"{s['arm']} search seed {s['seed']}: {len(s['genotype'])} fixes over {names}: {'ok' if ok else 'WRONG'}")
            failures += not ok
        random_names = [e["name"] for e in json.load(open(os.path.join(out, "random-s0.genotype.json")))["enhancers"]]
        ok = random_names == names
        print(f"the random arm's genotype names the searched network's enhancers: {'ok' if ok else 'WRONG'}")
        failures += not ok
        failures += check_resume(pmpl, data, os.path.join(tmp, "resume"))
    raise SystemExit(1 if failures else 0)


def check_resume(pmpl, data, out):
    """A run killed after its first epoch's checkpoint is continued by the next invocation, not
    started again, and ends where the uninterrupted run ended; a run of other flags starts again."""
    bench = [sys.executable, os.path.join(HERE, "bench_fidelity.py"), "--data", data, "--out", out, "--pmpl", pmpl,
             "--model", "mobilenetv3_small", "--extra", "--bn-momentum 0.1", "--seeds", "1", "--epochs", "2",
             "--train-images", "96", "--input-size", "28", "--batch-size", "16", "--jobs", "2", "--arms", "plain"]
    run = os.path.join(out, "plain-s0")
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // 2)))  # the bench's, at --jobs 2

    def last_epoch():  # its losses: exact resume gives them bit for bit, and another run does not
        last = [json.loads(l) for l in open(os.path.join(run, "log.jsonl")) if '"val_top1"' in l][-1]
        return last["epoch"], last["train_loss"], last["val_loss"]

    def invoke():
        done = subprocess.run(bench, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"bench_fidelity (resume check) exited {done.returncode}: {done.stderr[-1500:]}")
            raise SystemExit(1)
        return done.stdout

    invoke()
    whole = last_epoch()
    flags = json.load(open(os.path.join(run, "bench_flags.json")))
    subprocess.run(["rm", "-rf", run], check=True)
    os.makedirs(run)
    json.dump(flags, open(os.path.join(run, "bench_flags.json"), "w"))
    # 6 steps an epoch: killed 3 steps into the second, after the first epoch's checkpoint.
    killed = subprocess.run([pmpl, "train", *flags, "--output", run, "--max-steps", "9"], env=env,
                            capture_output=True, text=True)
    stdout = invoke()
    ok = killed.returncode == 0 and "plain-s0: " in stdout and "(resumed)" in stdout and last_epoch() == whole
    print(f"a killed run resumed by the next invocation ({whole} uninterrupted, {last_epoch()} resumed): "
          f"{'ok' if ok else 'WRONG'}")
    failures = not ok
    subprocess.run(["rm", "-rf", run], check=True)
    os.makedirs(run)
    other = list(flags)
    other[other.index("--seed") + 1] = "1"
    json.dump(other, open(os.path.join(run, "bench_flags.json"), "w"))
    subprocess.run([pmpl, "train", *flags, "--output", run, "--max-steps", "9"], env=env, capture_output=True, text=True)
    stdout = invoke()
    ok = "plain-s0: " in stdout and "(resumed)" not in stdout and last_epoch() == whole
    print(f"a run of other flags started again: {'ok' if ok else 'WRONG'}")
    return failures + (not ok)


if __name__ == "__main__":
    main()
