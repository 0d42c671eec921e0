#!/usr/bin/env python3
"""Does PMPL find an architecture worth having? Trains, at one budget and over several seeds, for
a backbone (--model: mobilenetv2, the default, or any other in pmpl's registry without _mp):
  plain      the backbone (MobileNetV2)
  pmpl       its Meta-Pooling variant (MobileNetV2-MP) with the genotype a PMPL search found (the search runs first, its
             cost reported apart), trained from scratch; --search NAME=FLAGS adds more searched arms,
             each with its own searches (e.g. --search "pt=--select perturbation"); --derived
             NAME=SEARCH:RULE trains what another rule would have fixed at that search's end
             (the searches run the same steps until then): alpha / alpha2 (the one or two most
             probable ops), rise / rise2 (the one or two whose removal raised the loss most;
             the search must have run --select perturbation), decided (the threshold's fixes,
             skip for every forced one), lead10 (a forced fix keeps its most probable op where it
             leads the second by >= 0.10, else skip), decided_none and lead10_none (the same with
             the enhancer removed, genotype op "none", instead of skip)
  onepass    the MP variant searching in its own run at the arm's budget: the alphas step, the
             enhancers are fixed (by threshold, then all at --force-fix-epoch, half by default) and
             the fixed network trains on to the end, as the paper trains (search, fix and training
             in one run, no retraining); its weights train on --train-images like every arm's, its
             alphas on the held-out architecture split beside them
  random     the MP variant with a random genotype (one op per enhancer, uniformly, per seed)
  max3       the MP variant with every enhancer max3
  skip       the MP variant with every enhancer skip (the enhancer without pooling)
--arms chooses among the fixed arms (plain always; onepass only when named).
and prints a table (mean +- std of val top-1/top-5, params, MACs, training img/s), writes
fidelity.json and, per search, the enhancers' probabilities over it (plot_run.py's enhancers.png).

Every run is `pmpl train` with the same flags but the model's; the validation split is only ever
evaluated, never used to choose anything (the defaults were chosen on a split of train/). Run again
with the same --out, the bench reuses the runs that finished (wherever they came from) and
continues those it started with the same flags from their last checkpoint (--save-interval in
--extra makes those more frequent than each epoch's end).

usage: /usr/bin/python3 tools/bench_fidelity.py --data DIR --out DIR [options]   (--help)
"""
import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = ["skip", "strip", "max3", "max5", "max7", "avg3", "avg5", "avg7"]
ARMS = ["plain", "pmpl", "onepass", "random", "max3", "skip"]
# In each run's folder: the pmpl train flags it was started with, so a later invocation resumes
# only a run of the same flags.
BENCH_FLAGS = "bench_flags.json"


RULES = {"alpha": ("probs", 1), "alpha2": ("probs", 2), "rise": ("loss_rise", 1), "rise2": ("loss_rise", 2),
         "decided": ("probs", 1), "lead10": ("probs", 1), "decided_none": ("probs", 1), "lead10_none": ("probs", 1)}
# Rules that fall back, where a forced fix's lead is below this, to skip (the enhancer without
# pooling) or, for the _none rules, to none (the enhancer removed: the backbone's block).
FALLBACK_BELOW = {"decided": math.inf, "lead10": 0.10, "decided_none": math.inf, "lead10_none": 0.10}


def parse_derived(text):
    name, sep, rest = text.partition("=")
    search, sep2, rule = rest.partition(":")
    if not sep or not sep2 or rule not in RULES or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in ARMS:
        raise argparse.ArgumentTypeError(f"--derived wants NAME=SEARCH:RULE (RULE: {', '.join(RULES)}), got '{text}'")
    return name, (search, rule)


def parse_search(text):
    name, sep, flags = text.partition("=")
    if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in ARMS:
        raise argparse.ArgumentTypeError(f"--search wants NAME=FLAGS with a new lower-case NAME, got '{text}'")
    return name, flags.split()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ImageNet-layout dataset (ROOT/{train,val}/<class>/)")
    p.add_argument("--out", required=True, help="folder for the runs, fidelity.json and the plots")
    p.add_argument("--pmpl", default=os.path.join(HERE, "..", "build", "pmpl"), help="the pmpl binary")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--input-size", type=int, default=56)
    p.add_argument("--model", default="mobilenetv2", help="the backbone (pmpl's name, without _mp)")
    p.add_argument("--width", type=float, default=None,
                   help="width multiplier (default 0.25; ShuffleNetV2 carries its width in its name: 1)")
    p.add_argument("--epochs", type=int, default=2, help="training epochs of every arm")
    p.add_argument("--train-images", type=int, default=15000, help="--limit-train of every arm")
    p.add_argument("--search-epochs", type=int, default=1)
    p.add_argument("--search-images", type=int, default=12000, help="--limit-train of the search")
    p.add_argument("--val-images", type=int, default=0, help="--limit-val (0: the whole split)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (each gets cores / jobs threads)")
    p.add_argument("--extra", default="", help="more pmpl train flags for every run, as one string")
    p.add_argument("--search", type=parse_search, action="append", default=[], metavar="NAME=FLAGS",
                   help="another searched arm: its searches add FLAGS to the default search's (repeatable)")
    p.add_argument("--derived", type=parse_derived, action="append", default=[], metavar="NAME=SEARCH:RULE",
                   help="an arm whose genotype RULE reads off searched arm SEARCH's fixes (repeatable)")
    p.add_argument("--arms", default=",".join(x for x in ARMS if x != "onepass"),
                   help="which of the fixed arms to train, comma-separated (plain comes first; default: all but "
                        "onepass, whose runs each cost a search at the whole budget)")
    a = p.parse_args()
    a.arms = [x for x in a.arms.split(",") if x]
    unknown = [x for x in a.arms if x not in ARMS]
    if unknown or "plain" not in a.arms:
        p.error(f"--arms takes plain and any of {ARMS[1:]}, got {a.arms}")
    if not os.path.isdir(os.path.join(a.data, "train")) or not os.path.isdir(os.path.join(a.data, "val")):
        p.error(f"--data {a.data}: no train/ and val/ folders there (pmpl data fashion-mnist DIR makes one)")
    shuffle = a.model.startswith("shufflenetv2")
    if a.width is None:
        a.width = 1.0 if shuffle else 0.25
    if shuffle and a.width != 1.0:
        p.error(f"--width {a.width:g}: {a.model} carries its width in its name; leave --width out")
    if a.model.endswith("_mp"):
        p.error(f"--model {a.model}: name the backbone, without _mp (the arms choose plain or Meta-Pooling)")
    if a.model.startswith("mobilenetv3") and "--bn-momentum" not in a.extra:
        # Measured (README, "Does the search pay?"): with torchvision's 0.01 the _mp arms of a
        # 2-epoch bench evaluated at 10-36% on running statistics that lag the weights.
        print(f"bench_fidelity: warning: {a.model} keeps batchnorm momentum 0.01, whose running statistics lag runs "
              f"this short; pass --extra \"--bn-momentum 0.1\" for a fair comparison", file=sys.stderr)
    searched = (["pmpl"] if "pmpl" in a.arms else []) + [name for name, _ in a.search]
    for name, (search, _) in a.derived:
        if search not in searched:
            p.error(f"--derived {name}: no searched arm {search} (searched: {searched})")
    return a


def genotype_file(path, names, ops):
    """names: the enhancers in network order; ops: per enhancer, an op name or a list of one or two."""
    with open(path, "w") as f:
        json.dump({"format": "pmpl-genotype", "version": 1,
                   "enhancers": [{"name": n, "ops": op if isinstance(op, list) else [op]} for n, op in zip(names, ops)]},
                  f)
    return path


def fixes_of(run, names):
    """A search's fixed events, in network order (names: the enhancers in that order)."""
    return sorted((l for l in read_log(run) if l.get("event") == "fixed"), key=lambda l: names.index(l["name"]))


def read_log(run):
    return [json.loads(l) for l in open(os.path.join(run, "log.jsonl")) if l.strip()]


class Bench:
    def __init__(self, a):
        self.a = a
        self.threads = max(1, (os.cpu_count() or 2) // a.jobs)
        os.makedirs(a.out, exist_ok=True)
        self.common = ["--data", a.data, "--width", str(a.width), "--small-input", "--input-size", str(a.input_size),
                       "--crop-scale", "0.5", "--batch-size", str(a.batch_size), "--lr", str(a.lr),
                       "--workers", str(self.threads), "--quiet"]
        if a.val_images:
            self.common += ["--limit-val", str(a.val_images)]
        self.common += a.extra.split()

    def train(self, name, flags):
        run = os.path.join(self.a.out, name)
        if os.path.exists(os.path.join(run, "log.jsonl")) and any(
                l.get("type") == "epoch" and "val_top1" in l and l["epoch"] + 1 == self.epochs_of(flags)
                for l in read_log(run)):
            return run  # done by an earlier, interrupted invocation
        # A run an earlier invocation started with these very flags continues from its last
        # checkpoint (exact resume); anything else there starts again.
        stamp, args = os.path.join(run, BENCH_FLAGS), [*self.common, *flags]
        resumable = os.path.exists(os.path.join(run, "checkpoint-last.safetensors")) and os.path.exists(stamp) and \
            json.load(open(stamp)) == args
        if not resumable:
            if os.path.exists(run):
                subprocess.run(["rm", "-rf", run], check=True)
            os.makedirs(run)
            with open(stamp, "w") as f:
                json.dump(args, f)
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        start = time.time()
        done = subprocess.run([self.a.pmpl, "train", *args, "--resume" if resumable else "--output", run], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench_fidelity: {name} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
        print(f"  {name}: {time.time() - start:.0f} s{' (resumed)' if resumable else ''}", flush=True)
        return run

    @staticmethod
    def epochs_of(flags):
        return int(flags[flags.index("--epochs") + 1])

    def summary_text(self, model_flags):
        done = subprocess.run([self.a.pmpl, "summary", *model_flags, "--width", str(self.a.width), "--small-input",
                               "--input-size", str(self.a.input_size), "--num-classes", str(self.classes)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench_fidelity: pmpl summary {' '.join(model_flags)} failed: {done.stderr.strip()}")
        return done.stdout

    def summary(self, model_flags):
        out = self.summary_text(model_flags)
        return int(re.search(r"params: (\d+)", out).group(1)), int(re.search(r"macs: (\d+)", out).group(1))

    def enhancer_names(self):
        """The MP variant's enhancers in network order, from `pmpl summary` (each one's batchnorm row)."""
        names = [m.group(1) for m in re.finditer(r"^(\S+)\.enhancer\.bn\s", self.summary_text(["--model", self.mp]),
                                                 re.MULTILINE)]
        if not names:
            raise SystemExit(f"bench_fidelity: pmpl summary lists no enhancers for {self.mp}")
        return [n + ".enhancer" for n in names]

    @staticmethod
    def search_name(arm, seed):
        """The run whose fixes are arm's search (onepass searches in its own run)."""
        if arm == "onepass":
            return f"onepass-s{seed}"
        return f"search-s{seed}" if arm == "pmpl" else f"search-{arm}-s{seed}"

    def arm_flags(self, arm, seed):
        base = ["--epochs", str(self.a.epochs), "--limit-train", str(self.a.train_images), "--seed", str(seed)]
        if arm == "plain":
            return ["--model", self.a.model, *base]
        if arm == "onepass":
            return ["--model", self.mp, *base]
        if arm in self.searched:
            search = os.path.join(self.a.out, self.search_name(arm, seed), "genotype.json")
            return ["--model", self.mp, "--genotype", search, *base]
        if arm in self.derived:
            search, rule = self.derived[arm]
            key, count = RULES[rule]
            genotype = []
            for fix in fixes_of(os.path.join(self.a.out, self.search_name(search, seed)), self.names):
                if fix["why"] == "threshold":  # decided during the search, the same under every rule
                    genotype.append(fix["ops"].split("+"))
                    continue
                if key not in fix:
                    raise SystemExit(f"bench_fidelity: {arm}: search {search} logged no {key} (run it with --select perturbation)")
                ranked = sorted(range(len(OPS)), key=lambda i: (-fix[key][i], i))
                if fix[key][ranked[0]] - fix[key][ranked[1]] < FALLBACK_BELOW.get(rule, -math.inf):
                    genotype.append(["none"] if rule.endswith("_none") else ["skip"])
                    continue
                genotype.append([OPS[i] for i in ranked[:count]])
            path = os.path.join(self.a.out, f"{arm}-s{seed}.genotype.json")
            return ["--model", self.mp, "--genotype", genotype_file(path, self.names, genotype), *base]
        rng = random.Random(1000 + seed)
        count = len(self.names)
        ops = [rng.choice(OPS) for _ in range(count)] if arm == "random" else [arm] * count
        return ["--model", self.mp, "--genotype",
                genotype_file(os.path.join(self.a.out, f"{arm}-s{seed}.genotype.json"), self.names, ops), *base]

    def run(self):
        a = self.a
        self.classes = len([d for d in os.listdir(os.path.join(a.data, "train"))])
        self.mp = a.model + "_mp"
        self.names = self.enhancer_names()
        # Each searched arm: the flags its searches add to the default search's.
        self.searched = dict(([("pmpl", [])] if "pmpl" in a.arms else []) + a.search)
        self.derived = dict(a.derived)
        arms = ["plain", *self.searched, *self.derived, *(x for x in ARMS if x in a.arms and x not in ("plain", "pmpl"))]
        seeds = list(range(a.seeds))
        t0 = time.time()
        print(f"bench_fidelity: {a.model}, {a.seeds} seeds x {arms} at {a.input_size} px, width {a.width}, {a.epochs} epochs of "
              f"{a.train_images} images; searches of {a.search_epochs} epoch(s) on {a.search_images}; {a.jobs} runs at a "
              f"time, {self.threads} thread(s) each", flush=True)
        search_flags = lambda arm, s: ["--model", self.mp, "--epochs", str(a.search_epochs), "--limit-train",
                                       str(a.search_images), "--seed", str(s), *self.searched[arm]]
        jobs = [(self.search_name(arm, s), search_flags(arm, s)) for s in seeds for arm in self.searched]
        jobs += [(f"{arm}-s{s}", None) for s in seeds for arm in arms if arm not in self.searched and arm not in self.derived]
        results = {}
        with ThreadPoolExecutor(a.jobs) as pool:
            # The searches first; each searched arm starts as soon as its search is done.
            futures = {}
            for name, flags in jobs:
                arm, seed = name.rsplit("-s", 1)
                flags = flags or self.arm_flags(arm, int(seed))
                futures[name] = pool.submit(self.train, name, flags)
            for s in seeds:
                for arm in self.searched:
                    futures[self.search_name(arm, s)].result()
                    futures[f"{arm}-s{s}"] = pool.submit(self.train, f"{arm}-s{s}", self.arm_flags(arm, s))
                for arm, (search, _) in self.derived.items():
                    futures[f"{arm}-s{s}"] = pool.submit(self.train, f"{arm}-s{s}", self.arm_flags(arm, s))
            runs = {name: f.result() for name, f in futures.items()}
        for name, run in runs.items():
            log = read_log(run)
            last = [l for l in log if l.get("type") == "epoch" and "val_top1" in l][-1]
            speeds = sorted(l["img_per_s"] for l in log if l.get("type") == "step")
            results[name] = {"val_top1": last["val_top1"], "val_top5": last["val_top5"],
                             "img_per_s": speeds[len(speeds) // 2] if speeds else None,
                             "seconds": sum(l["seconds"] for l in log if l.get("type") == "epoch")}
        table = []
        for arm in arms:
            rows = [results[f"{arm}-s{s}"] for s in seeds]
            if arm == "plain":
                sizes = [self.summary(["--model", a.model])] * len(seeds)
            elif arm == "onepass":  # the genotype its own run fixed
                sizes = [self.summary(["--model", self.mp, "--genotype",
                                       os.path.join(a.out, self.search_name(arm, s), "genotype.json")]) for s in seeds]
            else:
                sizes = [self.summary(["--model", self.mp, "--genotype",
                                       self.arm_flags(arm, s)[self.arm_flags(arm, s).index("--genotype") + 1]])
                         for s in seeds]
            top1 = [100 * r["val_top1"] for r in rows]
            top5 = [100 * r["val_top5"] for r in rows]
            table.append({"arm": arm, "top1": top1, "top5": top5, "params": statistics.mean(p for p, _ in sizes),
                          "macs": statistics.mean(m for _, m in sizes),
                          "img_per_s": statistics.mean(r["img_per_s"] for r in rows),
                          "train_seconds": statistics.mean(r["seconds"] for r in rows)})
        searches = []
        searching = [*self.searched, *(["onepass"] if "onepass" in arms else [])]
        for arm, s in ((arm, s) for arm in searching for s in seeds):
            name = self.search_name(arm, s)
            run = os.path.join(a.out, name)
            fixes = fixes_of(run, self.names)
            searches.append({"arm": arm, "seed": s, "seconds": results[name]["seconds"],
                             "genotype": [f["ops"] for f in fixes],
                             "fixed_p": [max(f["probs"]) for f in fixes],
                             "entropy_bits": [-sum(p * math.log2(p) for p in f["probs"] if p > 0) for f in fixes],
                             "why": [f["why"] for f in fixes],
                             "q_keep": [f["gate"][1] if "gate" in f else None for f in fixes],
                             "loss_rise": [f.get("loss_rise") for f in fixes]})
            plot = os.path.join(HERE, "plot_run.py")
            subprocess.run([sys.executable, plot, run], capture_output=True)
        report = {"config": vars(a), "cpu": cpu_description(), "arms": table, "searches": searches, "runs": results,
                  "wall_seconds": time.time() - t0}
        with open(os.path.join(a.out, "fidelity.json"), "w") as f:
            json.dump(report, f, indent=1)
        print_table(report)


def cpu_description():
    """The CPU's model and widest vector unit: OpenBLAS and oneDNN pick their kernels by it at run
    time, so the same seed rounds differently, and trains to a different result, on another CPU."""
    model, flags = "unknown", set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    vector = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "baseline"
    return f"{model}, {vector}, {os.cpu_count()} cores"


def paired(arm, plain):
    """The arm's per-seed differences against plain: mean, standard error and seeds ahead."""
    diffs = [x - p for x, p in zip(arm, plain)]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    ahead = sum(d > 0 for d in diffs)
    return f"{statistics.mean(diffs):+.2f} (se {se:.2f}, ahead in {ahead} of {len(diffs)}; " + \
        ", ".join(f"{d:+.2f}" for d in diffs) + ")"


def mean_std(xs):
    return f"{statistics.mean(xs):.2f} +- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.2f}"


def print_table(report):
    a = report["config"]
    print(f"\n{a.get('model', 'mobilenetv2')}, {a['seeds']} seeds, {a['input_size']} px, width {a['width']}, {a['epochs']} epochs of {a['train_images']} "
          f"images, val top-1/top-5 in %, mean +- std over seeds\n")
    print("| arm | top-1 | top-5 | params | MACs | train img/s |")
    print("|---|---|---|---|---|---|")
    for r in report["arms"]:
        print(f"| {r['arm']} | {mean_std(r['top1'])} | {mean_std(r['top5'])} | {r['params']:,.0f} | "
              f"{r['macs'] / 1e6:.1f}M | {r['img_per_s']:.0f} |")
    plain = report["arms"][0]["top1"]
    for r in report["arms"][1:]:
        print(f"{r['arm']} - plain, paired by seed: {paired(r['top1'], plain)}")
    for s in report["searches"]:
        # A gated search's p is its alphas' top one; the gate's q_keep says whether it kept the enhancer.
        gates = s.get("q_keep") or [None] * len(s["genotype"])
        print(f"{s.get('arm', 'pmpl')} search seed {s['seed']} ({s['seconds']:.0f} s): " + ", ".join(
            f"{op} ({p:.2f}" + (f", q_keep {q:.2f})" if q is not None else ")")
            for op, p, q in zip(s["genotype"], s["fixed_p"], gates)))
    print(f"CPU: {report.get('cpu', 'not recorded')}; wall time {report['wall_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    Bench(parse_args()).run()
