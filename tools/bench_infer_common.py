"""What the baselines of `pmpl bench infer` share (tools/bench_infer_torch.py, tools/bench_infer_onnx.py):
the timing flags and the keys it matches results by (tools/cmd_bench_infer.cpp builds the same)."""
import zlib


def add_timing_args(ap):
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="0: one per core this process may use")
    ap.add_argument("--out", required=True, help="JSON results (accumulate across runs)")


def genotype_tag(enhancers):
    """CRC32 of "op+op,op,..." over the enhancers in order; empty for a plain network."""
    if enhancers is None:
        return ""
    text = ",".join("+".join(e["ops"]) for e in enhancers)
    return f"_g{zlib.crc32(text.encode()):08x}"


def infer_key(model, width, small_input, enhancers, batch, size, classes):
    """As C++'s fmt formats it: the width with {} (Python's :g agrees for widths like 0.25, 1)."""
    return f"{model}_w{width:g}{'_small' if small_input else ''}{genotype_tag(enhancers)}_b{batch}_s{size}_k{classes}"
