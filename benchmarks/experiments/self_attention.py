"""Self-attention of one decoder step with its cache: where its time goes as rows grow, and whether
another way of writing it is cheaper per row.

    .venv/bin/python benchmarks/experiments/self_attention.py \\
        [--out benchmarks/results/self_attention.md]

One layer of the shipped model's shape (4 heads of 64), one new token per row over `past` cached
ones, written four ways:

- GroupQueryAttention on a growing cache, as the decoder graph runs in beam search: past K/V in,
  present K/V (past + 1) out; ONNX Runtime clears the present buffers and copies the past into them;
- GroupQueryAttention in place: one buffer per tensor (rows, heads, capacity, head_dim) bound as
  both past and present (IOBinding), the step writing only the new position, as greedy search runs;
  with no spare position after the new one (capacity past + 1), two spare, and the model's max_len;
- Concat + MatMul / Softmax / MatMul with the key cache stored transposed (rows, heads, head_dim,
  past), so both products are matrix-vector products without a transposing copy;
- a plain copy of the past K and V (numpy copyto into reused arrays): one pass over the cache, what
  beam search's reorder of the cache costs per layer, for scale.

A step runs this once per layer on other K/V, so every timed call cycles through 4 input sets (one
per layer of the shipped decoder, each with its own K and V). Median microseconds per call over
--repeats cycles, 1 intra-op thread, the forms interleaved; outputs are checked against each other.
How much of the cache stays in the last-level cache between calls decides much of each form's time,
so read the table as this machine's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

MS = "com.microsoft"
H, HD = 4, 64
SHAPES = [(4, 10), (4, 30), (16, 30), (64, 10), (64, 30), (128, 30)]  # (rows, past)
SETS = 4  # one per layer, as in a step of the shipped 4-layer decoder
CAPACITY = 256  # the shipped model's max_len, as greedy search allocates


def _vi(name: str, shape: list, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _session(nodes, inputs, outputs, ms: bool) -> ort.InferenceSession:
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(MS, 1)] if ms else [])
    m = helper.make_model(
        helper.make_graph(nodes, "self_attention", inputs, outputs), opset_imports=opsets
    )
    m.ir_version = 8
    onnx.checker.check_model(m)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def gqa_session() -> ort.InferenceSession:
    node = helper.make_node(
        "GroupQueryAttention",
        ["qkv", "", "", "past_k", "past_v", "seqlens_k", "total"],
        ["out", "present_k", "present_v"],
        domain=MS,
        num_heads=H,
        kv_num_heads=H,
    )
    inputs = [
        _vi("qkv", ["rows", 1, 3 * H * HD]),
        _vi("past_k", ["rows", H, "past", HD]),
        _vi("past_v", ["rows", H, "past", HD]),
        _vi("seqlens_k", ["rows"], TensorProto.INT32),
        _vi("total", [], TensorProto.INT32),
    ]
    outputs = [
        _vi("out", ["rows", 1, H * HD]),
        _vi("present_k", ["rows", H, "present", HD]),
        _vi("present_v", ["rows", H, "present", HD]),
    ]
    return _session([node], inputs, outputs, ms=True)


def transposed_key_session() -> ort.InferenceSession:
    nodes = [
        helper.make_node("Concat", ["past_kt", "k_t"], ["present_kt"], axis=3),
        helper.make_node("Concat", ["past_v", "v"], ["present_v"], axis=2),
        helper.make_node("MatMul", ["q", "present_kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "present_v"], ["out"]),
    ]
    inputs = [
        _vi("q", ["rows", H, 1, HD]),
        _vi("k_t", ["rows", H, HD, 1]),
        _vi("v", ["rows", H, 1, HD]),
        _vi("past_kt", ["rows", H, HD, "past"]),
        _vi("past_v", ["rows", H, "past", HD]),
    ]
    outputs = [
        _vi("out", ["rows", H, 1, HD]),
        _vi("present_kt", ["rows", H, HD, "present"]),
        _vi("present_v", ["rows", H, "present", HD]),
    ]
    return _session(nodes, inputs, outputs, ms=False)


class Case:
    """One input set: the same q, k, v and cache in each form's layout."""

    def __init__(self, rng, rows: int, past: int, capacities: tuple[int, ...], gqa, kt):
        q, k, v = (rng.standard_normal((rows, H, 1, HD), dtype=np.float32) for _ in range(3))
        self.past_k = rng.standard_normal((rows, H, past, HD), dtype=np.float32)
        self.past_v = rng.standard_normal((rows, H, past, HD), dtype=np.float32)
        qkv = np.concatenate([t.reshape(rows, 1, H * HD) for t in (q, k, v)], axis=-1)
        lengths = np.full(rows, past, np.int32)
        total = np.array(past + 1, np.int32)
        self.gqa_feed = {
            "qkv": qkv,
            "past_k": self.past_k,
            "past_v": self.past_v,
            "seqlens_k": lengths,
            "total": total,
        }
        self.kt_feed = {
            "q": q / np.sqrt(HD).astype(np.float32),
            "k_t": k.transpose(0, 1, 3, 2).copy(),
            "v": v,
            "past_kt": self.past_k.transpose(0, 1, 3, 2).copy(),
            "past_v": self.past_v,
        }
        # in place: a buffer per tensor (rows, heads, capacity, head_dim), the past written into it,
        # bound as both past and present
        self.out = np.empty((rows, 1, H * HD), np.float32)
        self.bindings = [self._bind(gqa, rows, past, c) for c in capacities]
        self.copy_k, self.copy_v = np.empty_like(self.past_k), np.empty_like(self.past_v)
        # each form's output, checked against the growing-cache GroupQueryAttention's
        want = gqa.run(["out"], self.gqa_feed)[0]
        got = {
            "transposed-key MatMul": kt.run(["out"], self.kt_feed)[0]
            .transpose(0, 2, 1, 3)
            .reshape(rows, 1, H * HD)
        }
        for capacity, (binding, _) in zip(capacities, self.bindings):
            gqa.run_with_iobinding(binding)
            got[f"in-place GroupQueryAttention, capacity {capacity}"] = self.out.copy()
        for name, out in got.items():
            diff = float(np.abs(out - want).max())
            if diff > 1e-4:
                raise SystemExit(
                    f"{name} differs from GroupQueryAttention by {diff:.2e} at {rows} rows, "
                    f"past {past}"
                )

    def _bind(self, gqa, rows: int, past: int, capacity: int):
        """-> (IOBinding, its two buffers) for GroupQueryAttention writing the new position in
        place."""
        bufs = []
        b = gqa.io_binding()
        for name in ("qkv", "seqlens_k", "total"):
            b.bind_cpu_input(name, self.gqa_feed[name])
        for names, past_t in (
            (("past_k", "present_k"), self.past_k),
            (("past_v", "present_v"), self.past_v),
        ):
            buf = np.zeros((rows, H, capacity, HD), np.float32)
            buf[:, :, :past] = past_t
            bufs.append(buf)
            b.bind_input(names[0], "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
            b.bind_output(names[1], "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
        b.bind_output("out", "cpu", 0, np.float32, list(self.out.shape), self.out.ctypes.data)
        return b, bufs


def measure(rows: int, past: int, repeats: int, gqa, kt) -> dict[str, float]:
    rng = np.random.default_rng(rows * 1000 + past)
    cases = [Case(rng, rows, past, (past + 1, past + 3, CAPACITY), gqa, kt) for _ in range(SETS)]
    forms = {
        "GroupQueryAttention, growing cache": lambda c: gqa.run(None, c.gqa_feed),
        "in place, capacity past + 1": lambda c: gqa.run_with_iobinding(c.bindings[0][0]),
        "in place, capacity past + 3": lambda c: gqa.run_with_iobinding(c.bindings[1][0]),
        f"in place, capacity {CAPACITY}": lambda c: gqa.run_with_iobinding(c.bindings[2][0]),
        "transposed key, MatMul/Softmax/MatMul": lambda c: kt.run(None, c.kt_feed),
        "copy of past K and V": lambda c: (
            np.copyto(c.copy_k, c.past_k),
            np.copyto(c.copy_v, c.past_v),
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(repeats):
        for name, fn in forms.items():
            t = time.perf_counter()
            for c in cases:
                fn(c)
            times[name].append((time.perf_counter() - t) / SETS * 1e6)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--out")
    args = p.parse_args()
    from traductor.runtime.machine import cpu_summary

    gqa, kt = gqa_session(), transposed_key_session()
    rows_out = []
    for rows, past in SHAPES:
        med = measure(rows, past, args.repeats, gqa, kt)
        names = list(med)
        base = med[names[0]]
        cells = [f"{med[n]:.1f} ({med[n] / rows:.2f}/row)" for n in names]
        speedups = [f"{base / med[n]:.2f}x" for n in names[1:-1]]
        rows_out.append(f"| {rows} | {past} | " + " | ".join(cells + speedups) + " |")
    lines = [
        f"Self-attention of one layer at a decoder step (4 heads of 64), microseconds per call and "
        f"per row, median of {args.repeats} cycles over {SETS} input sets, 1 thread; "
        f"{cpu_summary()}; onnxruntime {ort.__version__}.",
        "The last columns: each form's speed against the growing cache.",
        "",
        "| rows | past | " + " | ".join(names + [f"{n}, speed" for n in names[1:-1]]) + " |",
        "|---|---|" + "---|" * (2 * len(names) - 2),
    ] + rows_out
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
