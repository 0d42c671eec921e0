#!/usr/bin/env python3
"""Fails when a source file's #include points up the stack (docs/ARCHITECTURE.md, "Layers").

  tools/check_layers.py [--root DIR]
  tools/check_layers.py --self-test     plants broken includes in a scratch tree: each must be caught

Every quoted #include must name a file under the root, in a folder its own folder may use.
CUDA-only headers (.cuh) are for cuda_kernels/ alone: the rest of the engine reaches the kernels
through their plain .h declarations. Prints one line per broken include and exits 1; exits 0 and
prints a count when all point down.
"""
import argparse
import pathlib
import re
import sys
import tempfile

# Each folder and the folders its files may include (itself always). Lower layers first.
ALLOWED = {
    "core": set(),
    "cuda_kernels": {"core"},
    "engine": {"core", "cuda_kernels"},
    "layers": {"core", "engine"},
    "data": {"core", "engine"},
    "models": {"core", "engine", "layers"},
    "train": {"core", "engine", "layers", "models", "data"},
}
# The command-line tools and the tests may use everything.
TOP = {"tools", "tests"}
SOURCE_SUFFIXES = {".h", ".cpp", ".cu", ".cuh", ".c"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(relative: pathlib.PurePosixPath) -> str:
    return relative.parts[0] if len(relative.parts) > 1 else ""


def check(root: pathlib.Path) -> tuple[list[str], int]:
    problems = []
    checked = 0
    for layer in sorted(ALLOWED.keys() | TOP):
        base = root / layer
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            relative = pathlib.PurePosixPath(path.relative_to(root).as_posix())
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                checked += 1
                target = pathlib.PurePosixPath(match.group(1))
                where = f"{relative}:{number}"
                target_folder = folder_of(target)
                if not (root / target).is_file():
                    # An include relative to the file's own folder (a test helper, a fuzz seed).
                    if (path.parent / target).is_file() and target_folder == "":
                        continue
                    problems.append(f"{where}: includes \"{target}\", which is not a file under the root")
                    continue
                if target.suffix == ".cuh" and layer != "cuda_kernels":
                    problems.append(f"{where}: includes the CUDA-only header \"{target}\"; "
                                    f"outside cuda_kernels/ include its .h declarations")
                    continue
                if layer in TOP or target_folder == layer:
                    continue
                if target_folder not in ALLOWED[layer]:
                    allowed = ", ".join(sorted(ALLOWED[layer] | {layer}))
                    problems.append(f"{where}: includes \"{target}\": {layer}/ may include only {allowed}")
    return problems, checked


def self_test() -> int:
    """A clean scratch tree passes; each planted break is reported, and only it."""
    clean = {
        "core/hd.h": "",
        "core/kernels/pool.h": '#include "core/hd.h"\n',
        "cuda_kernels/pool.h": '#include "core/kernels/pool.h"\n',
        "cuda_kernels/launch.cuh": '#include "core/hd.h"\n',
        "cuda_kernels/pool.cu": '#include "cuda_kernels/launch.cuh"\n#include "cuda_kernels/pool.h"\n',
        "engine/ops.cpp": '#include "cuda_kernels/pool.h"\n',
        "train/sgd.cpp": '#include "engine/ops.cpp"\n',
        "tests/test_sgd.cpp": '#include "train/sgd.cpp"\n#include "helper.h"\n',
        "tests/helper.h": "",
    }
    broken = {
        "core/kernels/pool.h": ('#include "engine/ops.cpp"\n', "core/ may include only core"),
        "cuda_kernels/pool.h": ('#include "engine/ops.cpp"\n', "cuda_kernels/ may include only core, cuda_kernels"),
        "engine/ops.cpp": ('#include "cuda_kernels/launch.cuh"\n', "CUDA-only header"),
        "train/sgd.cpp": ('#include "cuda_kernels/pool.h"\n', "train/ may include only"),
        "tests/test_sgd.cpp": ('#include "train/missing.h"\n', "not a file under the root"),
    }

    def build(root: pathlib.Path, files: dict) -> None:
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)

    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        root = pathlib.Path(scratch) / "clean"
        build(root, clean)
        problems, _ = check(root)
        if problems:
            failures.append(f"the clean tree was reported: {problems}")
        for n, (name, (text, expected)) in enumerate(broken.items()):
            root = pathlib.Path(scratch) / f"broken{n}"
            build(root, clean | {name: clean[name] + text})
            problems, _ = check(root)
            if len(problems) != 1 or expected not in problems[0] or not problems[0].startswith(name + ":"):
                failures.append(f"{name} + {text.strip()}: expected one line with '{expected}', got {problems}")
    for failure in failures:
        print(f"check_layers self-test: {failure}")
    if failures:
        return 1
    print(f"check_layers self-test: the clean tree passes and all {len(broken)} planted breaks are caught")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent.parent,
                        help="the source tree (default: this checkout)")
    parser.add_argument("--self-test", action="store_true", help="check the checker on planted breaks")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not args.root.is_dir():
        print(f"check_layers: {args.root} is not a folder; pass the source tree with --root", file=sys.stderr)
        return 2
    problems, checked = check(args.root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_layers: {len(problems)} of {checked} includes break the layering "
              f"(the allowed directions are in docs/ARCHITECTURE.md, \"Layers\")")
        return 1
    print(f"check_layers: all {checked} includes point down the stack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
