"""Which int8 scheme: the candidate levers for per-row activation scales, side by side on one
package.

    .venv/bin/python benchmarks/experiments/int8_levers.py --model models/es-en \\
        --out benchmarks/results/int8_levers.md

Each candidate re-quantizes the package's fp32 encoder and decoder. Reported: decoder step time at
1, 16 and 128 rows (one thread, medians of interleaved repeats, random past of 10 positions and 24
source positions), whether a row computed alone equals the same row inside a batch of 128
(bit for bit), and next-token agreement with fp32 on dev sentences (teacher-forced on fp32's greedy
output, the exporter's gate).

- per-tensor: onnxruntime quantize_dynamic (DynamicQuantizeMatMul), the previous scheme: one scale
  per activation tensor, full-range int8 weights (saturates on AVX2 without VNNI).
- rows-u8u8: per-row scales from standard ops (Abs, ReduceMax, Div, Round, Add, Cast) feeding a
  u8 x u8 MatMulInteger, then Cast and two Muls.
- rows-mitf: what the exporter writes (export/quantize.py): per-row QuantizeLinear feeding
  MatMulIntegerToFloat with 7-bit int8 weights.
- nbits-B: MatMulNBits, 8-bit weights in blocks of B along K, accuracy level 4 (activations
  quantized block-wise inside each row by the kernel).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

from traductor.export.quantize import (
    _drop_unused,
    _gathers_to_fp16,
    _untie_output_projection,
    quantize_int8,
)
from traductor.runtime.machine import cpu_summary
from traductor.runtime.onnx_model import OnnxSeq2Seq
from traductor.runtime.package import write_manifest
from traductor.runtime.quality import encode_sources, forced_token_agreement, ort_greedy

CANDIDATES = ["per-tensor", "rows-u8u8", "rows-mitf", "nbits-32", "nbits-128"]


def rows_u8u8(model: onnx.ModelProto) -> None:
    """Per-row symmetric u8 activations (zero point 128) x per-column symmetric u8 weights (128)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}

    def const(name, array):
        if name not in inits:
            inits[name] = numpy_helper.from_array(array, name)
            g.initializer.append(inits[name])
        return name

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    nodes, cache = [], {}
    for n in g.node:
        w = inits.get(n.input[1]) if n.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT:
            nodes.append(n)
            continue
        x = n.input[0]
        if x not in cache:
            p = f"u8q{len(cache)}"
            reduce = (
                helper.make_node(
                    "ReduceMax",
                    [p + "_abs", const("axes", np.array([-1], np.int64))],
                    [p + "_max"],
                    keepdims=1,
                )
                if opset >= 18
                else helper.make_node(
                    "ReduceMax", [p + "_abs"], [p + "_max"], axes=[-1], keepdims=1
                )
            )
            nodes += [
                helper.make_node("Abs", [x], [p + "_abs"]),
                reduce,
                helper.make_node(
                    "Max", [p + "_max", const("eps", np.array(1e-30, np.float32))], [p + "_m"]
                ),
                helper.make_node(
                    "Mul", [p + "_m", const("inv127", np.array(1 / 127, np.float32))], [p + "_s"]
                ),
                helper.make_node("Div", [x, p + "_s"], [p + "_d"]),
                helper.make_node("Round", [p + "_d"], [p + "_r"]),
                helper.make_node(
                    "Add", [p + "_r", const("f128", np.array(128, np.float32))], [p + "_a"]
                ),
                helper.make_node("Cast", [p + "_a"], [p + "_q"], to=TensorProto.UINT8),
            ]
            cache[x] = (p + "_q", p + "_s")
        q, s = cache[x]
        weight = numpy_helper.to_array(w)
        ws = np.maximum(np.abs(weight).max(0), 1e-30) / 127
        wq = (np.round(weight / ws) + 128).astype(np.uint8)
        o = n.output[0]
        nodes += [
            helper.make_node(
                "MatMulInteger",
                [q, const(w.name + "_u8", wq), const("u8_128", np.array(128, np.uint8)), "u8_128"],
                [o + "_i"],
            ),
            helper.make_node("Cast", [o + "_i"], [o + "_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [o + "_f", s], [o + "_fs"]),
            helper.make_node(
                "Mul", [o + "_fs", const(w.name + "_scale", ws.astype(np.float32))], [o]
            ),
        ]
    del g.node[:]
    g.node.extend(nodes)
    _drop_unused(g)


def quantize(kind: str, src: Path, dst: Path) -> None:
    if kind in ("per-tensor", "rows-mitf"):
        quantize_int8(src, dst, per_row=kind == "rows-mitf")
        return
    model = onnx.load(str(src))
    _untie_output_projection(model)
    _gathers_to_fp16(model)
    if kind == "rows-u8u8":
        rows_u8u8(model)
    else:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        q = MatMulNBitsQuantizer(
            model, bits=8, block_size=int(kind.split("-")[1]), is_symmetric=True, accuracy_level=4
        )
        q.process()
        model = q.model.model
    onnx.save(model, str(dst))


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 1, 1, 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def step_feeds(
    pkg: OnnxSeq2Seq, rows: int, past_len: int = 10, src_len: int = 24, seed: int = 0
) -> dict:
    rng = np.random.default_rng(seed)
    d = pkg.config.dims
    ids = rng.integers(4, d.vocab_size, (rows, src_len))
    mask = np.ones_like(ids)
    cross = pkg.encode(ids, mask)
    past = [
        rng.normal(0, 0.5, (rows, d.n_heads, past_len, d.head_dim)).astype(np.float32)
        for _ in range(2 * d.n_decoder_layers)
    ]
    values = [
        rng.integers(4, d.vocab_size, (rows, 1)),
        np.array([past_len]),
        mask,
        *past,
        *cross,
        np.array([1]),
    ]
    return dict(zip(pkg.dec_in_names, values))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="models/es-en", help="package with an fp32 variant")
    p.add_argument(
        "--dev", default="data/bible/dev.tsv", help="source<TAB>target file for the agreement check"
    )
    p.add_argument(
        "--dev-sentences", type=int, default=100, help="dev sentences for the agreement check"
    )
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated candidates")
    p.add_argument(
        "--repeats",
        type=int,
        default=40,
        help="timed steps per candidate and row count (interleaved)",
    )
    p.add_argument("--out", default=None, help="write the Markdown table here too")
    args = p.parse_args()

    model = Path(args.model)
    work = Path(tempfile.mkdtemp())
    fp32 = OnnxSeq2Seq(model, "fp32")
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    lines = [
        line.split("\t")[0]
        for line in Path(args.dev).read_text(encoding="utf-8").splitlines()[: args.dev_sentences]
    ]
    src = encode_sources(tok, lines, fp32.config.special_tokens.eos_id, fp32.config.dims.max_len)
    ref = ort_greedy(fp32, src)
    feeds = {rows: step_feeds(fp32, rows) for rows in (1, 16, 128)}
    sessions, rows_out = {"fp32": session(model / fp32.config.variants["fp32"].decoder)}, {}
    for kind in args.candidates.split(","):
        sessions[kind], rows_out[kind] = _candidate(kind, model, work / kind, src, ref, feeds[128])
    med = _step_medians(sessions, feeds, args.repeats)
    text = "\n".join(_table(med, rows_out, args.repeats, len(src))) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    shutil.rmtree(work)


def _candidate(kind: str, model: Path, pkg: Path, src, ref, feeds_128: dict):
    """The package re-quantized with one scheme: its decoder session, and its next-token
    agreement with fp32, whether a row alone equals the same row in a batch of 128, its size."""
    shutil.copytree(model, pkg)
    for graph in ("encoder", "decoder"):
        quantize(kind, model / f"{graph}.onnx", pkg / f"{graph}.int8.onnx")
    write_manifest(pkg)
    agreement = forced_token_agreement(OnnxSeq2Seq(pkg, "int8"), src, ref)
    sess = session(pkg / "decoder.int8.onnx")
    batch = sess.run(["log_probs"], feeds_128)[0]
    alone = sess.run(
        ["log_probs"],
        {k: v[:1] if k in feeds_128 and v.ndim > 1 else v for k, v in feeds_128.items()},
    )[0]
    size = sum((pkg / f).stat().st_size for f in ("encoder.int8.onnx", "decoder.int8.onnx"))
    info = {
        "agreement": agreement,
        "invariant": bool(np.array_equal(alone[0], batch[0])),
        "size": size,
    }
    print(
        f"{kind}: agreement {100 * agreement:.2f}%, row alone == in batch: {info['invariant']}",
        file=sys.stderr,
        flush=True,
    )
    return sess, info


def _step_medians(sessions: dict, feeds: dict, repeats: int) -> dict:
    """Median ms of a decoder step per scheme and row count, the sessions interleaved."""
    times = {k: {r: [] for r in feeds} for k in sessions}
    for _ in range(repeats):
        for rows, f in feeds.items():
            for kind, s in sessions.items():
                t0 = time.perf_counter()
                s.run(["top_ids"], f)
                times[kind][rows].append(time.perf_counter() - t0)
    return {k: {r: 1e3 * statistics.median(v) for r, v in t.items()} for k, t in times.items()}


def _table(med: dict, rows_out: dict, repeats: int, n_dev: int) -> list[str]:
    lines = [
        f"int8 levers on {cpu_summary()}, onnxruntime {ort.__version__}; "
        f"decoder step ms (1 thread, median of {repeats}), "
        f"next-token agreement with fp32 on {n_dev} dev sentences",
        "",
        "| scheme | step 1 row | step 16 rows | step 128 rows | row alone == in batch | agreement "
        "| int8 size |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in med:
        r = rows_out.get(kind)
        extra = (
            f"{'yes' if r['invariant'] else 'no'} | {100 * r['agreement']:.2f}% "
            f"| {r['size'] / 1e6:.1f} MB"
            if r
            else "yes | - | -"
        )
        lines.append(
            f"| {kind} | {med[kind][1]:.3f} | {med[kind][16]:.3f} | {med[kind][128]:.3f} "
            f"| {extra} |"
        )
    return lines


if __name__ == "__main__":
    main()
