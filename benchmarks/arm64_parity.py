"""The same sentences translated on x86 (this machine) and on aarch64 (any command that runs an
aarch64 Python with traductor, e.g. qemu-aarch64 as `make test-arm64` sets it up), through
`traductor translate --json` on each side, compared.

For every variant and beam size: how many translations are identical, BLEU on each side (with
references), and every difference with its margin: at the first token where the two sides part,
x86's log-probability of its own token minus that of aarch64's token, after the shared prefix (a
near-tie is a margin near 0). Translations are kept in --out and reused with --reuse.

    python benchmarks/arm64_parity.py --arm64 "$(make -s arm64-python)" --model models/es-en \
        --data data/bible/test.tsv --variants int8,fp32 --beams 1,4 --threads 1 \
        --report benchmarks/results/arm64_parity.md

--trace N shows where the two sides part on sentence N: the encoder's and the decoder's first
step's every node output, computed on both sides from the same inputs, and the nodes that differ
first (their inputs equal, their output not).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TRANSLATE = "from traductor.cli import main; raise SystemExit(main())"
NEAR_TIE_BOUNDS = (0.001, 0.01, 0.05, 0.1)  # nats, for the report's near-tie counts


def read_sources(args) -> tuple[list[str], list[str] | None]:
    if args.data:
        rows = [line.rstrip("\n").split("\t") for line in open(args.data, encoding="utf-8")]
        rows = rows[: args.limit or None]
        return [r[0] for r in rows], [r[1] for r in rows]
    lines = Path(args.sources).read_text(encoding="utf-8").splitlines()
    return lines[: args.limit or None], None


def translate(python: list[str], args, variant: str, beam: int, src: Path, out: Path):
    """One side's translations (JSON lines) -> wall seconds."""
    cmd = python + ["-c", TRANSLATE, "translate", "--model", args.model, "--variant", variant]
    cmd += ["--beam", str(beam), "--json", "--input", str(src), "--output", str(out)]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=Path.cwd())
    return time.time() - t0


def margin(tr, text: str, a: list[str], b: list[str]) -> tuple[int, float] | None:
    """(first differing position, x86 log-prob of a's token there minus b's) after the shared
    prefix, decoding `text` on x86; None where the runtime split the text into several parts."""
    from traductor.runtime.decoder import OnnxStepDecoder, pad_sources
    from traductor.runtime.translator import TranslationOptions

    segments = [s for s in tr._segments([text], TranslationOptions()) if s.ids]
    if len(segments) != 1:
        return None
    tok, st = tr.target_tokenizer, tr.config.special_tokens
    ids_a = [tok.token_to_id(t) for t in a] + [st.eos_id]
    ids_b = [tok.token_to_id(t) for t in b] + [st.eos_id]
    t = next(i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y)
    ids, mask = pad_sources([segments[0].ids], st.pad_id, tr.config.decoding.source_pad_multiple)
    dec = OnnxStepDecoder(tr.model, ids, mask)
    token = st.bos_id
    for step in range(t + 1):
        log_probs = np.asarray(dec.step(np.array([token], dtype=np.int64)))[0]
        if step == t:
            return t, float(log_probs[ids_a[t]] - log_probs[ids_b[t]])
        token = ids_a[step]
    return None


def earlier_seconds(work: Path, variant: str, beam: int) -> dict:
    """The wall times an earlier run in `work` recorded (parity.json), for reused translations."""
    path = work / "parity.json"
    rows = json.loads(path.read_text()) if path.is_file() else []
    return next((r["seconds"] for r in rows if (r["variant"], r["beam"]) == (variant, beam)), {})


def compare(args, variant: str, beam: int, texts, refs, work: Path) -> dict:
    from traductor.runtime import Translator

    src = work / "sources.txt"
    files, seconds = {}, earlier_seconds(work, variant, beam) if args.reuse else {}
    for side, python in (("x86", [sys.executable]), ("arm64", shlex.split(args.arm64))):
        files[side] = work / f"{side}-{variant}-beam{beam}.jsonl"
        if not (args.reuse and files[side].is_file()):
            seconds[side] = translate(python, args, variant, beam, src, files[side])
    x86, arm = ([json.loads(line) for line in open(files[s])] for s in ("x86", "arm64"))
    assert len(x86) == len(arm) == len(texts), "both sides translate every sentence"
    diffs = []
    threads = args.threads or None
    tr = Translator(args.model, variant=variant, intra_threads=threads) if args.margins else None
    for i, (a, b) in enumerate(zip(x86, arm)):
        if a["tokens"] == b["tokens"] and a["translation"] == b["translation"]:
            continue
        m = margin(tr, texts[i], a["tokens"], b["tokens"]) if tr else None
        diffs.append(
            {
                "line": i + 1,
                "position": m[0] if m else None,
                "margin": m[1] if m else None,
                "score_gap": a["score"] - b["score"],
                "x86": a["translation"],
                "arm64": b["translation"],
            }
        )
    row = {
        "model": args.model,
        "variant": variant,
        "beam": beam,
        "sentences": len(texts),
        "identical": len(texts) - len(diffs),
        "seconds": seconds,
        "differences": diffs,
    }
    if refs:
        import sacrebleu

        for side, results in (("x86", x86), ("arm64", arm)):
            hyps = [r["translation"] for r in results]
            row[f"bleu_{side}"] = sacrebleu.corpus_bleu(hyps, [refs]).score
    return row


def near_ties(r: dict) -> str:
    """One line: how many differences part at a near-tie, by |margin| and by |score gap| (nats;
    with a beam the score gap of the finished hypotheses is the closer measure of a tie)."""
    parts = []
    for key in ("margin", "score_gap"):
        m = sorted(abs(d[key]) for d in r["differences"] if d[key] is not None)
        if m:
            counts = ", ".join(f"{sum(x < b for x in m)} below {b}" for b in NEAR_TIE_BOUNDS)
            parts.append(
                f"|{key.replace('_', ' ')}| {counts}; median {m[len(m) // 2]:.4f}, "
                f"largest {m[-1]:.4f}"
            )
    n = len(r["differences"])
    return f"- {r['variant']} beam {r['beam']}, {n} differences: " + "; ".join(parts) + "."


def report(rows: list[dict], args) -> str:
    from traductor.runtime.machine import cpu_summary

    command = [a for a in sys.argv[1:] if a != "--reuse"]  # a rerun of the report names the run
    lines = [
        f"## {args.model}: x86 ({cpu_summary()}) against aarch64 (`{args.arm64_label}`)",
        "",
        f"{rows[0]['sentences']} sentences ({args.data or args.sources}"
        + (f", first {args.limit}" if args.limit else "")
        + f"). Command: `python benchmarks/arm64_parity.py {shlex.join(command)}`",
        "",
        "| variant | beam | identical | differ (rate) | BLEU x86 | BLEU aarch64 | x86 s "
        "| aarch64 s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n, d = r["sentences"], len(r["differences"])
        bleu = [f"{r[k]:.2f}" if k in r else "-" for k in ("bleu_x86", "bleu_arm64")]
        secs = [f"{r['seconds'][k]:.0f}" if k in r["seconds"] else "-" for k in ("x86", "arm64")]
        lines.append(
            f"| {r['variant']} | {r['beam']} | {r['identical']}/{n} | {d} ({100 * d / n:.1f}%) "
            f"| {bleu[0]} | {bleu[1]} | {secs[0]} | {secs[1]} |"
        )
    lines += [""] + [near_ties(r) for r in rows if r["differences"]]
    for r in rows:
        if not r["differences"]:
            continue
        lines += [
            "",
            f"Differences, {r['variant']} beam {r['beam']} (margin: x86 log-prob of its token "
            "minus aarch64's at the first differing position; score gap: x86 best score minus "
            "aarch64's):",
            "",
            "| line | position | margin | score gap | x86 | aarch64 |",
            "|---|---|---|---|---|---|",
        ]
        for d in r["differences"]:
            m = "n/a (several parts)" if d["margin"] is None else f"{d['margin']:.4f}"
            lines.append(
                f"| {d['line']} | {d['position']} | {m} | {d['score_gap']:.4f} | {d['x86']} | "
                f"{d['arm64']} |"
            )
    return "\n".join(lines) + "\n"


# --trace: run on each side (onnxruntime and numpy only), the graphs with every node output
# exposed, on feeds recorded on x86; optimizations off, so each node is one kernel.
DUMP = """
import sys, numpy as np, onnxruntime as ort
work, side = sys.argv[1], sys.argv[2]
for graph in ("encoder", "decoder"):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 1, 1, 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(f"{work}/{graph}.all.onnx", so, providers=["CPUExecutionProvider"])
    feeds = np.load(f"{work}/{graph}.feeds.npz")
    out = s.run(None, {i.name: feeds[i.name] for i in s.get_inputs()})
    np.savez(f"{work}/{graph}.{side}.npz", *out)
"""


def record_feeds(tr, text: str) -> dict[str, dict[str, np.ndarray]]:
    """The encoder's feeds for `text` and the decoder's at its first step (batch 1), on x86."""
    from traductor.runtime.decoder import OnnxStepDecoder, pad_sources
    from traductor.runtime.translator import TranslationOptions

    feeds = {}
    for graph, session in (("encoder", tr.model.encoder), ("decoder", tr.model.decoder)):
        run = session.run

        def recording(names, inputs, *a, _run=run, _graph=graph, **k):
            feeds.setdefault(_graph, {n: np.array(v) for n, v in inputs.items()})
            return _run(names, inputs, *a, **k)

        session.run = recording
    segment = next(s for s in tr._segments([text], TranslationOptions()) if s.ids)
    st = tr.config.special_tokens
    ids, mask = pad_sources([segment.ids], st.pad_id, tr.config.decoding.source_pad_multiple)
    OnnxStepDecoder(tr.model, ids, mask).step(np.array([st.bos_id], dtype=np.int64))
    return feeds


def trace(args, variant: str, text: str, work: Path) -> str:
    """Where the two sides first part on one sentence: every node output of the encoder and the
    decoder's first step, computed on both sides from the same (x86) inputs, compared."""
    import onnx

    from traductor.runtime import Translator

    tr = Translator(args.model, variant=variant, intra_threads=1)
    files, original = tr.config.variants[variant], {}
    for graph, feeds in record_feeds(tr, text).items():
        np.savez(work / f"{graph}.feeds.npz", **feeds)
        model = onnx.load(str(Path(args.model) / getattr(files, graph)))
        original[graph] = [o.name for o in model.graph.output]
        known = set(original[graph])
        for out in (o for n in model.graph.node for o in n.output if o and o not in known):
            model.graph.output.append(onnx.ValueInfoProto(name=out))
            known.add(out)
        onnx.save(model, str(work / f"{graph}.all.onnx"))
    for side, python in (("x86", [sys.executable]), ("arm64", shlex.split(args.arm64))):
        subprocess.run(python + ["-c", DUMP, str(work), side], check=True)
    command = f"python benchmarks/arm64_parity.py {shlex.join(sys.argv[1:])}"
    lines = [f"Trace, {args.model} {variant}: {text}", "", f"Command: `{command}`", ""]
    for graph in ("encoder", "decoder"):
        g = onnx.load(str(work / f"{graph}.all.onnx")).graph
        lines += trace_graph(g, work, graph, original[graph])
    return "\n".join(lines) + "\n"


def trace_graph(g, work: Path, graph: str, original: list[str]) -> list[str]:
    """Origins (nodes whose inputs are equal on both sides and whose output is not) and how far
    the differences spread, quantized activations and outputs included."""
    x86, arm = (np.load(work / f"{graph}.{side}.npz") for side in ("x86", "arm64"))
    names = [o.name for o in g.output]
    a = {n: x86[f"arr_{i}"] for i, n in enumerate(names)}
    b = {n: arm[f"arr_{i}"] for i, n in enumerate(names)}
    differ, lines = set(), []
    quantized = [0, 0]  # differing values, all values (QuantizeLinear outputs)
    for node in g.node:
        out = node.output[0]
        n = int(np.sum(a[out] != b[out]))
        if node.op_type == "QuantizeLinear":
            quantized = [quantized[0] + n, quantized[1] + a[out].size]
        if not n:
            continue
        differ.add(out)
        if not differ.intersection(node.input):
            gap = np.abs(a[out].astype(np.float64) - b[out]).max()
            lines.append(
                f"- {graph} origin: {node.op_type} `{node.name}`: {n} of {a[out].size} values "
                f"differ, by up to {gap:.3g}"
            )
    lines.append(
        f"- {graph}: {len(differ)} of {len(g.node)} node outputs differ; quantized activations: "
        f"{quantized[0]} of {quantized[1]} differ"
    )
    outputs = [o for o in original if o in a and a[o].dtype.kind == "f"]
    gap = max(float(np.abs(a[o] - b[o]).max()) for o in outputs)
    peak = max(float(np.abs(a[o]).max()) for o in outputs)
    lines.append(f"- {graph} outputs: differ by up to {gap:.3g} (values up to {peak:.3g})")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arm64", required=True, help="the command that runs aarch64 Python")
    p.add_argument("--arm64-label", default="qemu-aarch64 -cpu neoverse-n1", help="for the report")
    p.add_argument("--model", default="models/es-en", help="model package directory")
    p.add_argument("--data", help="source<TAB>reference file (BLEU on both sides)")
    p.add_argument("--sources", default="benchmarks/test-books.es.txt", help="without --data")
    p.add_argument("--limit", type=int, default=0, help="first N sentences only (0 = all)")
    p.add_argument("--variants", default="int8", help="comma-separated")
    p.add_argument("--beams", default="1", help="comma-separated beam sizes")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads on both sides (0 = the runtime's automatic choice); 1 keeps an "
        "emulated run to one core on a shared machine",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="sentences decoded together on both sides (0 = traductor translate's default); the "
        "output is written every 4 batches, so a smaller one leaves more of a stopped run",
    )
    p.add_argument("--out", default=".venv-arm64/parity", help="folder for the translations")
    p.add_argument("--reuse", action="store_true", help="reuse translations already in --out")
    p.add_argument("--no-margins", dest="margins", action="store_false", help="skip margins")
    p.add_argument("--report", help="append the markdown report to this file")
    p.add_argument("--max-differ", type=float, default=1.0, help="fail above this rate")
    p.add_argument("--max-bleu-gap", type=float, default=0.1, help="fail above this BLEU gap")
    p.add_argument(
        "--trace",
        type=int,
        default=0,
        help="instead of comparing, trace sentence N (1-based) of the first variant: which nodes "
        "part first (needs onnx on the x86 side)",
    )
    args = p.parse_args()
    texts, refs = read_sources(args)
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    if args.trace:
        text = trace(args, args.variants.split(",")[0], texts[args.trace - 1], work)
        print(text)
        if args.report:
            with open(args.report, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        return 0
    (work / "sources.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    rows = [
        compare(args, v, int(b), texts, refs, work)
        for v in args.variants.split(",")
        for b in args.beams.split(",")
    ]
    text = report(rows, args)
    print(text)
    (work / "parity.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    if args.report:
        with open(args.report, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    failed = [
        r
        for r in rows
        if len(r["differences"]) / r["sentences"] > args.max_differ
        or abs(r.get("bleu_x86", 0) - r.get("bleu_arm64", 0)) > args.max_bleu_gap
    ]
    for r in failed:
        print(f"FAILED: {r['variant']} beam {r['beam']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
