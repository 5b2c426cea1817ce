"""Glossary methods measured: on the test verses that contain a glossary term, the share of
translations that carry every required target term, and BLEU with and without the glossary.

    .venv/bin/python benchmarks/glossary.py --model models/es-en --data data/bible/test.tsv

data/bible/test.tsv comes from `make data`. The glossary is the test books' names and words,
each mapped to the spelling the reference (World English Bible) uses; docs/glossary.md has the
figures and the choice they led to.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import sacrebleu

from traductor.runtime import Translator
from traductor.runtime.documents.base import Paragraph, Run
from traductor.runtime.documents.glossary import GLOSSARY_METHODS, term_spans
from traductor.runtime.documents.translate import translate_paragraphs

# Source term -> the reference's word (names as the World English Bible spells them).
GLOSSARY = {
    "Noemi": "Naomi",
    "Booz": "Boaz",
    "Mahalón": "Mahlon",
    "Chelión": "Chilion",
    "Orpha": "Orpah",
    "Beth-lehem": "Bethlehem",
    "Sión": "Zion",
    "Nínive": "Nineveh",
    "Jehová": "Yahweh",
    "Espíritu": "Spirit",
    "Señor": "Lord",
    "Cristo": "Christ",
    "Jesucristo": "Jesus Christ",
    "varón": "man",
    "Padre": "Father",
    "Hijo": "Son",
}


def carries(text: str, term: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(term) + r"(?!\w)", text) is not None


def run(translator, pairs, glossary, method, options) -> dict:
    paragraphs = [Paragraph([Run(src)]) for src, _ in pairs]
    t0 = time.perf_counter()
    out = translate_paragraphs(
        translator, paragraphs, glossary=glossary, glossary_method=method, **options
    )
    seconds = time.perf_counter() - t0
    hyps = ["".join(r.text for r in runs) for runs in out]
    required = [{t for _, _, t in term_spans(src, GLOSSARY)} for src, _ in pairs]
    hits = sum(all(carries(h, t) for t in req) for h, req in zip(hyps, required))
    refs = [ref for _, ref in pairs]
    return {
        "method": method if glossary else "no glossary",
        "sentences": len(pairs),
        "carry_terms": round(hits / len(pairs), 4),
        "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/es-en", help="model name or directory")
    ap.add_argument("--data", default="data/bible/test.tsv", help="source<TAB>reference file")
    ap.add_argument("--beam", type=int, default=None, help="beam size (default: the model's)")
    ap.add_argument("--limit", type=int, default=0, help="first N sentences with a term (0: all)")
    args = ap.parse_args()
    pairs = []
    with open(args.data, encoding="utf-8") as f:
        for line in f:
            src, ref = line.rstrip("\n").split("\t")[:2]
            if term_spans(src, GLOSSARY):
                pairs.append((src, ref))
    pairs = pairs[: args.limit or None]
    translator = Translator(args.model)
    options = {"beam_size": args.beam}
    rows = [run(translator, pairs, None, "align", options)]
    rows += [run(translator, pairs, GLOSSARY, m, options) for m in GLOSSARY_METHODS]
    print("| method | sentences | carry every term | BLEU | chrF | seconds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['sentences']} | {100 * r['carry_terms']:.1f}% | {r['bleu']} "
            f"| {r['chrf']} | {r['seconds']} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
