"""Beam search without reordering its cache: ONNX Runtime's DecoderMaskedMultiHeadAttention with a
cache indirection table, against GroupQueryAttention in place plus the reorder the runtime does.

    .venv/bin/python benchmarks/experiments/cache_indirection.py \\
        [--out benchmarks/results/cache_indirection.md]

Beam search reorders its self-attention cache at every step: the rows that continue another beam's
hypothesis get that beam's K/V (`CachedStepDecoder.keep` copies the moved rows, every layer, every
cached position). com.microsoft DecoderMaskedMultiHeadAttention (ORT's CPU kernel, float) can skip
that copy: each row writes its new K/V into its own slot, and a table (sentences, beams, capacity)
says, for each row and cached position, which beam's slot holds it, so a reorder only rewrites the
table (what FasterTransformer and ORT's own BeamSearch op do).

This simulates a whole beam decode at OPUS-MT's shape (8 heads of 64, 6 layers) and the shipped
model's (4 heads, 4 layers), both ways, on the same inputs and the same random reorders (at each
step about half of the rows continue another beam, as measured in real beam runs,
docs/performance.md): one thread, the ways alternated, medians over --repeats rounds. It checks
that both ways give the same attention outputs (up to float rounding: the two kernels sum in other
orders) at every step and layer of the first round.

The simulation's reorder moves every cached position of about half the rows at every step; what a
real decode spends in it is measured too (--real): the share of `keep` in beam 4 b32 runs through
the Translator, on benchmarks/marian_shortlist.py's shortlisted int8 package (in place, from its
--work folder) and on the shipped model (its growing cache), one thread, the first 64 benchmark
sources / 128 test verses. --greedy times the same kernel without beams against GroupQueryAttention
in place, greedy search's case.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

MS = "com.microsoft"
SHAPES = {  # name: (heads, head_dim, layers)
    "OPUS-MT size": (8, 64, 6),
    "shipped": (4, 64, 4),
}


def _session(node, inputs, outputs) -> ort.InferenceSession:
    vi = helper.make_tensor_value_info
    g = helper.make_graph(
        [node],
        "attention",
        [vi(n, t, s) for n, t, s in inputs],
        [vi(n, TensorProto.FLOAT, None) for n in outputs],
    )
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


class _Way:
    """One way of running a beam decode's self-attention: step(t, layer) runs one layer's
    attention at past length t; reorder(t, src) makes each row continue row src[row]."""

    def __init__(self, rows: int, heads: int, head_dim: int, layers: int, capacity: int):
        self.rows, self.heads, self.layers = rows, heads, layers
        shape = (rows, heads, capacity, head_dim)
        self.k = [np.zeros(shape, np.float32) for _ in range(layers)]
        self.v = [np.zeros(shape, np.float32) for _ in range(layers)]
        self.out = [np.zeros((rows, 1, heads * head_dim), np.float32) for _ in range(layers)]

    def _bind_cache(self, io, i: int) -> None:
        for name, a in (("past_k", self.k[i]), ("past_v", self.v[i])):
            io.bind_cpu_input(name, a)
        for name, a in (("out", self.out[i]), ("present_k", self.k[i]), ("present_v", self.v[i])):
            io.bind_output(
                name, "cpu", element_type=np.float32, shape=a.shape, buffer_ptr=a.ctypes.data
            )


class InPlace(_Way):
    """GroupQueryAttention on one buffer per layer bound as past and present, then the runtime's
    reorder: moved rows copied, every layer, positions up to the new one."""

    def __init__(self, qkv: list[np.ndarray], *shape):
        super().__init__(*shape)
        rows, heads, head_dim, _, capacity = shape
        d = heads * head_dim
        node = helper.make_node(
            "GroupQueryAttention",
            ["qkv", "", "", "past_k", "past_v", "seqlens", "total"],
            ["out", "present_k", "present_v"],
            domain=MS,
            num_heads=heads,
            kv_num_heads=heads,
        )
        cache = [rows, heads, capacity, head_dim]
        self.session = _session(
            node,
            [
                ("qkv", TensorProto.FLOAT, [rows, 1, 3 * d]),
                ("past_k", TensorProto.FLOAT, cache),
                ("past_v", TensorProto.FLOAT, cache),
                ("seqlens", TensorProto.INT32, [rows]),
                ("total", TensorProto.INT32, []),
            ],
            ["out", "present_k", "present_v"],
        )
        self.seqlens = np.zeros(rows, np.int32)
        self.total = np.zeros((), np.int32)
        self.io = []
        for i in range(self.layers):
            io = self.session.io_binding()
            io.bind_cpu_input("qkv", qkv[i])
            io.bind_cpu_input("seqlens", self.seqlens)
            io.bind_cpu_input("total", self.total)
            self._bind_cache(io, i)
            self.io.append(io)

    def begin(self, t: int) -> None:
        self.seqlens[:] = t
        self.total[...] = t + 1

    def step(self, t: int, i: int) -> None:
        self.session.run_with_iobinding(self.io[i])

    def reorder(self, t: int, src: np.ndarray) -> None:
        moved = np.flatnonzero(src != np.arange(self.rows))
        if moved.size:
            for c in self.k + self.v:
                c[moved, :, : t + 1] = c[src[moved], :, : t + 1]


class Indirect(_Way):
    """DecoderMaskedMultiHeadAttention with beam_width and a cache indirection table: the cache
    never moves; a reorder rewrites the table. beam=None: the kernel without beam inputs (greedy
    search's case), which cannot reorder."""

    def __init__(self, qkv: list[np.ndarray], beam: int | None, *shape):
        super().__init__(*shape)
        rows, heads, head_dim, _, capacity = shape
        d = heads * head_dim
        beams = ["beam", "indirection"] if beam else []
        node = helper.make_node(
            "DecoderMaskedMultiHeadAttention",
            ["q", "k", "v", "", "", "past_k", "past_v", "past_len", *beams],
            ["out", "present_k", "present_v"],
            domain=MS,
            num_heads=heads,
            past_present_share_buffer=1,
        )
        cache = [rows, heads, capacity, head_dim]
        inputs = [
            ("q", TensorProto.FLOAT, [rows, 1, d]),
            ("k", TensorProto.FLOAT, [rows, 1, d]),
            ("v", TensorProto.FLOAT, [rows, 1, d]),
            ("past_k", TensorProto.FLOAT, cache),
            ("past_v", TensorProto.FLOAT, cache),
            ("past_len", TensorProto.INT32, []),
        ]
        if beam:
            inputs += [
                ("beam", TensorProto.INT32, []),
                ("indirection", TensorProto.INT32, [rows // beam, beam, capacity]),
            ]
        self.session = _session(node, inputs, ["out", "present_k", "present_v"])
        self.beam = beam
        self.past_len = np.zeros((), np.int32)
        if beam:
            self.beam_width = np.array(beam, np.int32)
            self.table = np.zeros((rows // beam, beam, capacity), np.int32)
            self.own = np.arange(beam, dtype=np.int32)
        self.io, self._inputs = [], []  # the bound arrays must outlive the bindings
        for i in range(self.layers):
            io = self.session.io_binding()
            self._inputs.append([np.ascontiguousarray(x) for x in np.split(qkv[i], 3, axis=-1)])
            for name, a in zip("qkv", self._inputs[-1]):
                io.bind_cpu_input(name, a)
            io.bind_cpu_input("past_len", self.past_len)
            if beam:
                io.bind_cpu_input("beam", self.beam_width)
                io.bind_cpu_input("indirection", self.table)
            self._bind_cache(io, i)
            self.io.append(io)

    def begin(self, t: int) -> None:
        self.past_len[...] = t

    def step(self, t: int, i: int) -> None:
        self.session.run_with_iobinding(self.io[i])

    def reorder(self, t: int, src: np.ndarray) -> None:
        self.table[:, :, t] = self.own  # each row wrote position t into its own slot
        b = self.beam
        src_beam = (src % b).reshape(-1, b)
        self.table[:, :, : t + 1] = np.take_along_axis(
            self.table[:, :, : t + 1], src_beam[:, :, None], axis=1
        )


def _reorders(rng, sentences: int, beam: int, steps: int, stay: float) -> list[np.ndarray]:
    """Per step, the row each row continues: within its sentence, its own with probability
    `stay`, else any of the sentence's beams."""
    out = []
    for _ in range(steps):
        own = np.arange(sentences * beam)
        other = (own // beam) * beam + rng.integers(0, beam, own.size)
        out.append(np.where(rng.random(own.size) < stay, own, other))
    return out


def run(name: str, sentences: int, beam: int, steps: int, repeats: int) -> str:
    heads, head_dim, layers = SHAPES[name]
    rows, d = sentences * beam, heads * head_dim
    rng = np.random.default_rng(0)
    qkv = [rng.standard_normal((rows, 1, 3 * d), dtype=np.float32) for _ in range(layers)]
    reorders = _reorders(rng, sentences, beam, steps, stay=0.37)
    moved = np.mean([np.mean(s != np.arange(rows)) for s in reorders])
    shape = (rows, heads, head_dim, layers, steps)
    ways = {"in place + reorder": InPlace(qkv, *shape), "indirection": Indirect(qkv, beam, *shape)}
    times = {w: {"attention": [], "reorder": []} for w in ways}
    worst = 0.0
    for r in range(repeats):
        for w in list(ways) if r % 2 == 0 else list(ways)[::-1]:
            way = ways[w]
            for c in way.k + way.v:
                c[...] = 0.0
            attention = reorder = 0.0
            for t in range(steps):
                way.begin(t)
                t0 = time.perf_counter()
                for i in range(layers):
                    way.step(t, i)
                t1 = time.perf_counter()
                way.reorder(t, reorders[t])
                attention += t1 - t0
                reorder += time.perf_counter() - t1
                if r == 0:
                    way.last = getattr(way, "last", {})
                    way.last[t] = [o.copy() for o in way.out]
            times[w]["attention"].append(attention / steps)
            times[w]["reorder"].append(reorder / steps)
        if r == 0:
            a, b = (ways[w].last for w in ways)
            worst = max(float(np.abs(x - y).max()) for t in a for x, y in zip(a[t], b[t]))
    lines = []
    base = None
    for w in ways:
        att = statistics.median(times[w]["attention"]) * 1e3
        reo = statistics.median(times[w]["reorder"]) * 1e3
        total = (
            statistics.median([x + y for x, y in zip(times[w]["attention"], times[w]["reorder"])])
            * 1e3
        )
        base = base or total
        lines.append(
            f"| {name} | {sentences} x {beam} | {w} | {att:.2f} | {reo:.2f} | {total:.2f} | "
            f"{base / total:.2f} |"
        )
    lines.append(
        f"|  |  | (rows moved per step {moved:.0%}; largest output difference {worst:.1e}) "
        "|  |  |  |  |"
    )
    return "\n".join(lines)


def keep_share(package, sources, repeats: int) -> str:
    """-> a table row: a beam 4 b32 run's time and the time spent in the step decoders' `keep`."""
    import traductor.runtime.decoder as dec
    from traductor.runtime import TranslationOptions, Translator

    spent = [0.0]

    def timed(keep):
        def wrapper(self, rows):
            t0 = time.perf_counter()
            keep(self, rows)
            spent[0] += time.perf_counter() - t0

        return wrapper

    originals = {c: c.keep for c in (dec.CachedStepDecoder, dec.OnnxStepDecoder)}
    for c, keep in originals.items():
        c.keep = timed(keep)
    try:
        tr = Translator(package, variant="int8", intra_threads=1)
        src = sources(tr)
        opts = TranslationOptions(beam_size=4, batch_size=32, max_length=32)
        cache = (
            "in place"
            if dec._beam_cache_bytes(tr.model, 4 * 32) >= dec.IN_PLACE_BEAM
            else "growing"
        )
        tr.translate_ids(src, opts)
        totals, keeps = [], []
        for _ in range(repeats):
            spent[0] = 0.0
            t0 = time.perf_counter()
            tr.translate_ids(src, opts)
            totals.append(time.perf_counter() - t0)
            keeps.append(spent[0])
    finally:
        for c, keep in originals.items():
            c.keep = keep
    total, keep = statistics.median(totals), statistics.median(keeps)
    share = f"{keep / total:.1%}"
    return f"| {Path(package).name} | {len(src)} | {cache} | {total:.2f} | {keep:.2f} | {share} |"


def real(args) -> str:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    from interleaved import benchmark_sources, shortlisted_packages

    lines = [
        f"Beam 4, batches of 32, at most 32 tokens, int8, one thread, medians of {args.repeats} "
        "runs: the time spent reordering the cache (`keep`).",
        "",
        "| package | sentences | beam cache | run s | keep s | keep share |",
        "|---|---:|---|---:|---:|---:|",
    ]
    opus = shortlisted_packages(args.work)["int8"]
    if opus.exists():
        lines.append(
            keep_share(
                opus,
                lambda tr: benchmark_sources(tr.tokenizer, tr.config.special_tokens.eos_id, 64),
                args.repeats,
            )
        )
    else:
        print(
            f"{opus} not found: run benchmarks/marian_shortlist.py --prepare-only", file=sys.stderr
        )

    def verses(tr):
        texts = [
            x.split("\t")[0]
            for x in Path(args.data).read_text(encoding="utf-8").splitlines()
            if x.strip()
        ][:128]
        eos = tr.config.special_tokens.eos_id
        return sorted((tr.tokenizer.encode(t).ids + [eos] for t in texts), key=len)

    lines.append(keep_share(args.shipped, verses, args.repeats))
    return "\n".join(lines) + "\n"


def greedy(repeats: int) -> str:
    """The same kernel without beams (greedy search's case) against GroupQueryAttention in place:
    6 layers of OPUS-MT size, microseconds a step, medians of `repeats` steps."""
    heads, head_dim, layers = SHAPES["OPUS-MT size"]
    d = heads * head_dim
    lines = [
        f"Greedy search's self-attention, no beams, in place, 6 layers of OPUS-MT size, one "
        f"thread, us a step (every layer), medians of {repeats} steps.",
        "",
        "| rows | capacity | past | GroupQueryAttention | DecoderMaskedMultiHeadAttention | "
        "largest difference |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, capacity in ((1, 256), (16, 256), (16, 64)):
        rng = np.random.default_rng(0)
        qkv = [rng.standard_normal((rows, 1, 3 * d), dtype=np.float32) for _ in range(layers)]
        gqa = InPlace(qkv, rows, heads, head_dim, layers, capacity)
        plain = Indirect(qkv, None, rows, heads, head_dim, layers, capacity)
        for past in (4, 16, 30):
            tg, td = [], []
            for _ in range(repeats):
                gqa.begin(past)
                t0 = time.perf_counter()
                for i in range(layers):
                    gqa.step(past, i)
                tg.append(time.perf_counter() - t0)
                plain.begin(past)
                t0 = time.perf_counter()
                for i in range(layers):
                    plain.step(past, i)
                td.append(time.perf_counter() - t0)
            worst = max(float(np.abs(a - b).max()) for a, b in zip(gqa.out, plain.out))
            lines.append(
                f"| {rows} | {capacity} | {past} | {statistics.median(tg) * 1e6:.0f} | "
                f"{statistics.median(td) * 1e6:.0f} | {worst:.1e} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=32, help="new tokens (the cache's capacity)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batches", default="32,4", help="sentences per batch, beam 4 each")
    p.add_argument("--out", help="also write the report to this markdown file")
    p.add_argument("--real", action="store_true", help="the share of keep in real beam runs")
    p.add_argument("--work", default="/tmp/marian-bench", help="marian_shortlist.py's --work")
    p.add_argument("--shipped", default="models/es-en")
    p.add_argument("--data", default="data/bible/test.tsv")
    p.add_argument("--greedy", action="store_true", help="the kernel without beams, greedy's case")
    args = p.parse_args()
    if args.real or args.greedy:
        text = real(args) if args.real else greedy(max(args.repeats, 100))
        print(text, end="")
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        return 0
    lines = [
        f"Self-attention of a beam 4 decode, {args.steps} steps, one thread, medians of "
        f"{args.repeats} alternating rounds; ms per step (every layer).",
        "",
        "| model | sentences x beams | way | attention | reorder | step total | speed |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name in SHAPES:
        for sentences in (int(x) for x in args.batches.split(",")):
            lines.append(run(name, sentences, 4, args.steps, args.repeats))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
