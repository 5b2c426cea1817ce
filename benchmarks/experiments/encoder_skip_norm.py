"""Is ONNX Runtime's SkipLayerNormalization fusion slower in the encoder? The same package's
encoder loaded twice, with ORT's fusions as the runtime loads it (Add + LayerNormalization fused
into com.microsoft SkipLayerNormalization) and with `disabled_optimizers=["SkipLayerNormFusion"]`,
one thread, timed alternately over marian_engines.py's greedy b16 batches (the first 64 benchmark
lines in their order, 16 at a time, each batch encoded as the runtime does: rows grouped by padded
length). Prints seconds per pass (median) and the largest difference between the two encoders'
outputs. The decoder is written without the pattern (export/fused.py, _skip_norm); the encoder
is traced, and ORT fuses it.

Made for the OPUS-MT-size packages of benchmarks/marian_shortlist.py (its --work folder).
`--shipped MODEL --data TSV` instead translates a package's test set both ways (greedy and beam 4,
batches of 32): how many translations change, BLEU, and the time of each pass.

    .venv/bin/python benchmarks/experiments/encoder_skip_norm.py --repeats 8
    .venv/bin/python benchmarks/experiments/encoder_skip_norm.py --shipped models/es-en \
        --data data/bible/test.tsv --variants int8,fp32
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import benchmark_sources  # noqa: E402


def both_ways(package: Path, variant: str) -> dict:
    """Two translators of `package`, one thread: the encoder with ORT's SkipLayerNormFusion
    ("fused", as the runtime ran it before 2026-12-07) and without ("not fused", as it runs now)."""
    import onnxruntime as ort

    from traductor.runtime import Translator

    trs = {}
    for name, disabled in (("fused", []), ("not fused", ["SkipLayerNormFusion"])):
        tr = Translator(package, variant=variant, intra_threads=1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.log_severity_level = 3
        path = str(package / tr.model._files.encoder)
        tr.model.encoder = ort.InferenceSession(
            path, so, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )
        trs[name] = tr
    return trs


def translations(package: Path, data: Path, variants: list[str]) -> int:
    import sacrebleu

    pairs = [x.split("\t") for x in data.read_text(encoding="utf-8").splitlines() if x.strip()]
    src, ref = [p[0] for p in pairs], [p[1] for p in pairs]
    print(
        "| variant | search | changed translations | BLEU fused -> not fused"
        " | s fused / not fused |"
    )
    print("|---|---|---:|---|---|")
    for variant in variants:
        trs = both_ways(package, variant)
        for beam in (1, 4):
            hyps, secs = {}, {}
            for n, tr in trs.items():
                t0 = time.perf_counter()
                hyps[n] = tr.translate(src, beam_size=beam, batch_size=32)
                secs[n] = time.perf_counter() - t0
            changed = sum(a != b for a, b in zip(*hyps.values()))
            bleu = [sacrebleu.corpus_bleu(h, [ref]).score for h in hyps.values()]
            search = "greedy" if beam == 1 else f"beam {beam}"
            took = f"{secs['fused']:.1f} / {secs['not fused']:.1f}"
            print(
                f"| {variant} | {search} | {changed}/{len(src)}"
                f" | {bleu[0]:.2f} -> {bleu[1]:.2f} | {took} |"
            )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/marian-bench", help="marian_shortlist.py's --work")
    p.add_argument("--variants", default="int8,fp32")
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--shipped", help="a package: compare its translations of --data instead")
    p.add_argument("--data", default="data/bible/test.tsv")
    args = p.parse_args()
    if args.shipped:
        return translations(Path(args.shipped), Path(args.data), args.variants.split(","))

    from traductor.runtime.decoder import pad_sources

    work = Path(args.work)
    packages = {"int8": work / "traductor-pkg-int8-ungated", "fp32": work / "traductor-pkg"}
    print("| variant | s per pass, fused | s per pass, not fused | ratio | max abs difference |")
    print("|---|---:|---:|---:|---:|")
    for variant in args.variants.split(","):
        trs = both_ways(packages[variant], variant)
        tr = trs["fused"]
        src = benchmark_sources(tr.tokenizer, tr.config.special_tokens.eos_id, by_length=False)
        batches = [
            pad_sources(src[i : i + 16], tr.config.special_tokens.pad_id) for i in (0, 16, 32, 48)
        ]
        outs = {n: [t.model.encode(ids, mask) for ids, mask in batches] for n, t in trs.items()}
        diff = max(
            float(np.abs(a - b).max())
            for x, y in zip(outs["fused"], outs["not fused"])
            for a, b in zip(x, y)
        )
        times = {n: [] for n in trs}
        for r in range(args.repeats):
            for n in list(trs)[:: 1 if r % 2 == 0 else -1]:
                t0 = time.perf_counter()
                for ids, mask in batches:
                    trs[n].model.encode(ids, mask)
                times[n].append(time.perf_counter() - t0)
        fused, unfused = (statistics.median(times[n]) for n in trs)
        print(f"| {variant} | {fused:.3f} | {unfused:.3f} | {fused / unfused:.3f} | {diff:.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
