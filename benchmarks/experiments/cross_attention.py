"""Cross-attention of one decoder step: ONNX Runtime's MultiHeadAttention against plain
MatMul / Softmax / MatMul, the two ways export/fused.py could write it.

    .venv/bin/python benchmarks/experiments/cross_attention.py \\
        [--out benchmarks/results/cross_attention.md]

Each graph holds just the cross-attention of one layer (d_model 256, 4 heads of 64, as the shipped
model): queries (sentences, rows per sentence, 256), the encoder's K/V (sentences, 4, src_len, 64),
the source mask. One step runs it once per decoder layer on other K/V, so the K/V are not in cache
when it starts: here every timed call cycles through 8 sets of inputs, as a 4-layer step does (K and
V of 4 layers). Median microseconds per call over 100 cycles, 1 intra-op thread, the graphs
interleaved. Also prints the largest difference between the two outputs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"
D, H, HD = 256, 4, 64
SHAPES = [
    (1, 1, 40),
    (16, 1, 40),
    (16, 1, 60),
    (64, 1, 60),
    (16, 4, 40),
    (32, 4, 60),
]  # (sentences, rows each, src_len)


def _model(nodes, inits) -> bytes:
    vi = helper.make_tensor_value_info
    inputs = [
        vi("q", TensorProto.FLOAT, ["b", "g", D]),
        vi("k", TensorProto.FLOAT, ["b", H, "L", HD]),
        vi("v", TensorProto.FLOAT, ["b", H, "L", HD]),
        vi("mask", TensorProto.INT64, ["b", "L"]),
    ]
    graph = helper.make_graph(
        nodes, "cross", inputs, [vi("out", TensorProto.FLOAT, ["rows_or_b", "g_or_1", D])], inits
    )
    m = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
    )
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def fused() -> bytes:
    return _model(
        [
            helper.make_node("Cast", ["mask"], ["m32"], to=TensorProto.INT32),
            helper.make_node(
                "MultiHeadAttention", ["q", "k", "v", "", "m32"], ["out"], domain=MS, num_heads=H
            ),
        ],
        [],
    )


def standard() -> bytes:
    """As export/fused.py writes it (the mask bias is built once per step there, here per call)."""
    c = numpy_helper.from_array
    inits = [
        c(np.array([0, -1, H, HD], np.int64), "heads"),
        c(np.array([0, -1, D], np.int64), "rows"),
        c(np.array(1 / np.sqrt(HD), np.float32), "scale"),
        c(np.array(0, np.float32), "zero"),
        c(np.array(np.finfo(np.float32).min, np.float32), "lowest"),
        c(np.array([1, 2], np.int64), "axes"),
    ]
    n = helper.make_node
    nodes = [
        n("Cast", ["mask"], ["real"], to=TensorProto.BOOL),
        n("Where", ["real", "zero", "lowest"], ["bias2"]),
        n("Unsqueeze", ["bias2", "axes"], ["bias"]),
        n("Mul", ["q", "scale"], ["qs"]),
        n("Reshape", ["qs", "heads"], ["q4"]),
        n("Transpose", ["q4"], ["qt"], perm=[0, 2, 1, 3]),
        n("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        n("MatMul", ["qt", "kt"], ["s"]),
        n("Add", ["s", "bias"], ["sb"]),
        n("Softmax", ["sb"], ["p"], axis=-1),
        n("MatMul", ["p", "v"], ["o4"]),
        n("Transpose", ["o4"], ["ot"], perm=[0, 2, 1, 3]),
        n("Reshape", ["ot", "rows"], ["out"]),
    ]
    return _model(nodes, inits)


def _session(model: bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _per_call_us(session, feeds: list[dict], cycles: int) -> float:
    for f in feeds:
        session.run(None, f)
    times = []
    for _ in range(cycles):
        t0 = time.perf_counter()
        for f in feeds:
            session.run(None, f)
        times.append((time.perf_counter() - t0) / len(feeds))
    return 1e6 * statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=100)
    p.add_argument("--out", help="also write the table to this file")
    args = p.parse_args()
    from traductor.runtime.machine import cpu_summary

    sessions = {
        "MultiHeadAttention": _session(fused()),
        "MatMul/Softmax/MatMul": _session(standard()),
    }
    rng = np.random.default_rng(0)
    lines = [
        f"cross-attention of one layer, microseconds per call (median of {args.cycles} cycles "
        "over 8 input sets), 1 thread; "
        f"{cpu_summary()}; onnxruntime {ort.__version__}",
        "",
        "| sentences x rows each | src_len | MultiHeadAttention | MatMul/Softmax/MatMul | ratio "
        "| max abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for b, g, length in SHAPES:
        feeds = []
        for _ in range(8):
            mask = np.ones((b, length), np.int64)
            mask[: b // 2, length - 5 :] = 0  # half the sentences end in padding
            feeds.append(
                {
                    "q": rng.standard_normal((b, g, D)).astype(np.float32),
                    "k": rng.standard_normal((b, H, length, HD)).astype(np.float32),
                    "v": rng.standard_normal((b, H, length, HD)).astype(np.float32),
                    "mask": mask,
                }
            )
        outs = [s.run(None, feeds[0])[0].reshape(b * g, D) for s in sessions.values()]
        us = [_per_call_us(s, feeds, args.cycles) for s in sessions.values()]
        lines.append(
            f"| {b} x {g} | {length} | {us[0]:.1f} | {us[1]:.1f} | {us[0] / us[1]:.2f}x "
            f"| {np.abs(outs[0] - outs[1]).max():.1e} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
