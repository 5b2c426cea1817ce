"""Where the time of one decoder step goes, and how far batch-1 int8 is from the memory floor.

    .venv/bin/python benchmarks/step_profile.py --model models/es-en [--compare OTHER_MODEL_DIR]

- Step time: median of timed `session.run` calls of the decoder alone, at batch 1, 16 and 128 rows,
  with a past of 30 tokens and a source of 60 (a typical verse), 1 intra-op thread.
- Breakdown: ONNX Runtime's own profiler, kernel time summed per operator type.
- Batch-1 step through the runtime's greedy decoder (CachedStepDecoder), timed around step().
- Memory floor (batch 1): bytes of decoder weights one step must read (every initializer except
  the lookup tables, of which a step reads one row per token) divided by the copy bandwidth
  measured here with numpy (a 512 MB copy; bandwidth = bytes read + written per second).

Prints a markdown table and the lines above to stdout and writes no file
(benchmarks/results/step_profile.txt holds a run's output).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from traductor.runtime.package import read_config


def _feeds(session, rows: int, past: int = 30, src: int = 60) -> dict:
    feeds = {}
    for i in session.get_inputs():
        shape = [
            rows
            if d in ("batch", "rows")
            else past
            if d == "past_len"
            else src
            if d == "src_len"
            else d
            for d in i.shape
        ]
        if i.name == "position":
            feeds[i.name] = np.array([past], dtype=np.int64)
        elif "int64" in i.type:
            feeds[i.name] = np.ones(shape, dtype=np.int64)
        else:
            feeds[i.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return feeds


def _session(path: Path, profile: bool = False) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tempfile.gettempdir()) / "traductor-step")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def step_ms(path: Path, rows: int, n: int = 200) -> float:
    s = _session(path)
    feeds = _feeds(s, rows)
    for _ in range(20):
        s.run(None, feeds)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def runtime_step_ms(model_dir: Path, n_steps: int = 40) -> float:
    """Median step of the runtime's own greedy decoder (in-place cache, IOBinding), batch 1, one
    thread, on a test verse: what translation at batch 1 pays per token on top of the encoder."""
    from traductor.runtime import Translator
    from traductor.runtime.decoder import CachedStepDecoder

    tr = Translator(model_dir, variant="int8", intra_threads=1)
    ids, mask = tr._pad(
        [
            tr.tokenizer.encode("Y dijo Dios: Sea la luz: y fué la luz.").ids
            + [tr.config.special_tokens.eos_id]
        ]
    )
    times = []
    for _ in range(5):
        dec = CachedStepDecoder(tr.model, ids, mask, max_steps=n_steps)
        token = np.array([tr.config.special_tokens.bos_id])
        for _ in range(n_steps):
            t0 = time.perf_counter()
            _, best = dec.step(token, top_k=1)
            times.append(time.perf_counter() - t0)
            token = best[:, 0]
    return 1000 * statistics.median(times)


def breakdown(path: Path, rows: int, n: int = 50) -> list[tuple[str, float]]:
    s = _session(path, profile=True)
    feeds = _feeds(s, rows)
    for _ in range(n):
        s.run(None, feeds)
    trace = s.end_profiling()
    per_op: collections.Counter = collections.Counter()
    for e in json.load(open(trace)):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / n / 1000
    os.remove(trace)
    return per_op.most_common()


def copy_bandwidth_gbs() -> float:
    src = np.ones(512 * 2**20 // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return 2 * src.nbytes / min(times) / 1e9


def weight_bytes(path: Path) -> int:
    """Bytes of initializers one step reads: all but lookup tables (Gather data: the token
    embedding, the position table), of which a step reads one row per row."""
    graph = onnx.load(str(path)).graph
    tables = {n.input[0] for n in graph.node if n.op_type == "Gather"}
    total = 0
    for init in graph.initializer:
        if init.name not in tables:
            total += (
                int(np.prod(init.dims))
                * onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
            )
    return total


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="models/es-en", help="model package (its int8 is profiled)")
    p.add_argument(
        "--compare", help="a second package (e.g. before a change), timed in the same run"
    )
    p.add_argument("--rows", default="1,16,128", help="decoder rows of the timed steps")
    args = p.parse_args()
    rows = [int(r) for r in args.rows.split(",")]
    models = [Path(args.model)] + ([Path(args.compare)] if args.compare else [])
    print("decoder step, median ms (1 thread, past 30, source 60; cross K/V per row, as in greedy)")
    print("| model | variant | " + " | ".join(f"rows {r}" for r in rows) + " |")
    print("|---|---|" + "---|" * len(rows))
    for _ in range(2):  # two interleaved rounds; report the second (warm caches, same order)
        lines = [_step_line(m, v, rows) for m in models for v in _variants_here(m)]
    print("\n".join(lines))
    cfg = read_config(models[0])
    int8 = models[0] / cfg.variants["int8"].decoder
    print("\nint8 breakdown (ms per step, kernel time by operator):")
    for r in (1, 16, 128):
        parts = breakdown(int8, r)
        total = sum(t for _, t in parts)
        print(
            f"  rows {r}: "
            + ", ".join(f"{op} {t:.3f} ({100 * t / total:.0f}%)" for op, t in parts[:7])
            + f"; kernels total {total:.3f}"
        )
    print("\n" + _memory_floor(models[0], int8))
    return 0


def _variants_here(model: Path) -> list[str]:
    """fp32 and int8, where the package has the decoder file (a checkout tracks int8 only)."""
    cfg = read_config(model)
    return [
        v
        for v in ("fp32", "int8")
        if v in cfg.variants and (model / cfg.variants[v].decoder).is_file()
    ]


def _step_line(model: Path, variant: str, rows: list[int]) -> str:
    dec = model / read_config(model).variants[variant].decoder
    return f"| {model} | {variant} | " + " | ".join(f"{step_ms(dec, r):.3f}" for r in rows) + " |"


def _memory_floor(model: Path, int8: Path) -> str:
    """The batch-1 int8 step against the time to read its weights once at copy bandwidth."""
    bw = copy_bandwidth_gbs()
    wb = weight_bytes(int8)
    floor = wb / (bw * 1e9) * 1000
    measured = step_ms(int8, 1)
    in_runtime = runtime_step_ms(model)
    return (
        f"memory floor, batch 1 int8: {wb / 1e6:.2f} MB of weights per step / {bw:.1f} GB/s "
        f"copy bandwidth = {floor:.3f} ms; measured step {measured:.3f} ms = "
        f"{measured / floor:.2f}x the floor (session.run with numpy inputs); {in_runtime:.3f} ms = "
        f"{in_runtime / floor:.2f}x through the runtime's decoder (IOBinding, in-place cache)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
