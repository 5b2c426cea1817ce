"""int8 quality on this CPU, through the runtime alone (no torch), so it also runs under emulation:

    .venv/bin/python benchmarks/experiments/int8_check.py --model models/es-en
    qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/experiments/int8_check.py \\
        --cpu "qemu -cpu Haswell (AVX2, no AVX-512, no VNNI)"

Prints the int8 variant's next-token agreement with fp32 (teacher-forced on fp32's greedy output, as
the exporter's gate) on dev sentences, and test BLEU/chrF of the chosen variants and beams.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tokenizers import Tokenizer

from traductor.runtime import Translator
from traductor.runtime.machine import cpu_summary
from traductor.runtime.onnx_model import OnnxSeq2Seq
from traductor.runtime.quality import encode_sources, forced_token_agreement, ort_greedy


def read_pairs(path: Path, limit: int) -> tuple[list[str], list[str]]:
    rows = [
        line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line
    ]
    rows = rows[:limit] if limit else rows
    return [r[0] for r in rows], [r[1] for r in rows]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="models/es-en", help="package with fp32 and int8 variants")
    p.add_argument(
        "--dev", default="data/bible/dev.tsv", help="source<TAB>target file for the agreement check"
    )
    p.add_argument(
        "--dev-sentences",
        type=int,
        default=100,
        help="dev sentences (the exporter's gate uses 100)",
    )
    p.add_argument(
        "--test",
        default="data/bible/test.tsv",
        help="source<TAB>reference file for BLEU ('' = skip)",
    )
    p.add_argument("--test-sentences", type=int, default=0, help="test sentences (0 = all)")
    p.add_argument("--variants", default="int8,fp32", help="variants whose BLEU is measured")
    p.add_argument("--beams", default="1,4", help="beam sizes for BLEU")
    p.add_argument(
        "--cpu", default=None, help="CPU label for the report (default: from /proc/cpuinfo)"
    )
    p.add_argument(
        "--no-agreement", action="store_true", help="skip the agreement check (BLEU only)"
    )
    p.add_argument("--out", default=None, help="also write the report as JSON here")
    args = p.parse_args()

    model = Path(args.model)
    report = {"cpu": args.cpu or cpu_summary(), "model": str(model), "bleu": []}
    print(f"cpu: {report['cpu']}", flush=True)
    if not args.no_agreement:
        report.update(_agreement(model, Path(args.dev), args.dev_sentences))
    if args.test:
        sources, refs = read_pairs(Path(args.test), args.test_sentences)
        for variant in args.variants.split(","):
            beams = [int(b) for b in args.beams.split(",")]
            report["bleu"] += _bleu(Translator(model, variant=variant), sources, refs, beams)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


def _agreement(model: Path, dev: Path, n: int) -> dict:
    """int8's next-token agreement with fp32, teacher-forced on fp32's greedy output (the
    exporter's gate), and how many greedy outputs are identical."""
    fp32, int8 = OnnxSeq2Seq(model, "fp32"), OnnxSeq2Seq(model, "int8")
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    cfg = fp32.config
    sources, _ = read_pairs(dev, n)
    src = encode_sources(tok, sources, cfg.special_tokens.eos_id, cfg.dims.max_len)
    ref = ort_greedy(fp32, src)
    got = ort_greedy(int8, src)
    out = {
        "agreement": forced_token_agreement(int8, src, ref),
        "greedy_identical": f"{sum(a == b for a, b in zip(ref, got))}/{len(src)}",
    }
    print(
        f"int8 next-token agreement with fp32: {100 * out['agreement']:.2f}% "
        f"({len(src)} dev sentences); "
        f"greedy identical {out['greedy_identical']}",
        flush=True,
    )
    return out


def _bleu(tr: Translator, sources: list[str], refs: list[str], beams: list[int]) -> list[dict]:
    """Test BLEU and chrF of one variant at each beam size."""
    import sacrebleu

    rows = []
    for beam in beams:
        t0 = time.time()
        hyps = tr.translate(sources, beam_size=beam)
        bleu, chrf = (
            sacrebleu.corpus_bleu(hyps, [refs]).score,
            sacrebleu.corpus_chrf(hyps, [refs]).score,
        )
        rows.append(
            {
                "variant": tr.variant,
                "beam": beam,
                "bleu": round(bleu, 2),
                "chrf": round(chrf, 2),
                "sentences": len(sources),
            }
        )
        print(
            f"{tr.variant} beam {beam}: BLEU {bleu:.2f} chrF {chrf:.2f} "
            f"({len(sources)} sentences, {time.time() - t0:.0f} s)",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
