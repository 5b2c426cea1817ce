"""Which cross-attention gives the best word alignments? Names as a gold standard.

    .venv/bin/python benchmarks/experiments/alignment_names.py --model models/es-en \\
        --out benchmarks/results/alignment_names.md

Bible names are spelled differently in the two languages (Booz / Boaz, Jonás / Jonah, Nínive /
Nineveh) but must link to each other. For every test verse whose source contains a Spanish name and
whose translation contains its English form, an alignment "links" the name when it pairs the two
words. The script translates the test books once (the package's default decoding), runs the
alignment graph once per verse, and scores every decoder layer with the mean of its heads and with
each head alone, plus the rate at which the first English name word links to *any* source name.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from traductor.runtime import Translator
from traductor.runtime.align import align_words, target_words

# Spanish (Reina-Valera 1909) -> English (World English Bible) names of the test books and beyond.
NAMES = {
    "booz": "boaz",
    "noemi": "naomi",
    "noemí": "naomi",
    "rut": "ruth",
    "orpha": "orpah",
    "elimelech": "elimelech",
    "mahalón": "mahlon",
    "chelión": "chilion",
    "moab": "moab",
    "moabita": "moabitess",
    "belén": "bethlehem",
    "judá": "judah",
    "isaí": "jesse",
    "david": "david",
    "obed": "obed",
    "jonás": "jonah",
    "nínive": "nineveh",
    "tarsis": "tarshish",
    "jope": "joppa",
    "amittai": "amittai",
    "miqueas": "micah",
    "jerusalem": "jerusalem",
    "samaria": "samaria",
    "sión": "zion",
    "israel": "israel",
    "jacob": "jacob",
    "pablo": "paul",
    "timoteo": "timothy",
    "epafrodito": "epaphroditus",
    "cristo": "christ",
    "jesús": "jesus",
    "abraham": "abraham",
    "isaac": "isaac",
    "elías": "elijah",
    "job": "job",
    "rahab": "rahab",
    "caín": "cain",
    "egipto": "egypt",
    "asiria": "assyria",
    "babilonia": "babylon",
    "filipos": "philippi",
    "macedonia": "macedonia",
    "evodia": "euodia",
    "síntique": "syntyche",
    "clemente": "clement",
    "césar": "caesar",
    "benjamín": "benjamin",
    "hebreos": "hebrews",
    "hebreo": "hebrew",
    "bashán": "bashan",
    "carmelo": "carmel",
    "galaad": "gilead",
    "asur": "assyria",
    "nimrod": "nimrod",
    "balac": "balak",
    "balaam": "balaam",
    "beor": "beor",
    "sittim": "shittim",
    "gilgal": "gilgal",
    "aarón": "aaron",
    "moisés": "moses",
    "maría": "miriam",
    "samaría": "samaria",
    "lachîs": "lachish",
    "gath": "gath",
    "efrata": "ephrathah",
}
_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


def word(w: str) -> str:
    return _PUNCT.sub("", w).lower()


def cases(tr: Translator, sources: list[str], beam: int):
    """Per verse: (weights (layers, heads, tokens, src), source word of each source id, target word
    of each token, source words, target words)."""
    results = tr.translate_batch(sources, beam_size=beam)
    for src, r in zip(sources, results):
        segs = tr._segments([src], tr._options({"return_alignments": True}))
        if len(segs) != 1 or not segs[0].ids:
            continue  # long verses split into parts: skipped here for simplicity
        seg = segs[0]
        tokens = [tr.target_tokenizer.token_to_id(t) for t in r.hypotheses[0].tokens]
        st = tr.config.special_tokens
        target = np.array([[st.bos_id] + tokens], dtype=np.int64)
        ids, mask = tr._pad([seg.ids])
        w = tr.model.alignment_weights(ids, mask, target)[0][:, :, : len(tokens), : len(seg.ids)]
        yield w, seg.words, target_words(tr.target_tokenizer, tokens), src.split(), r.text.split()


def score(items, choose) -> tuple[int, int]:
    linked = eligible = 0
    for w, src_words, tgt_words, s_words, t_words in items:
        pairs = set(align_words(choose(w), src_words, tgt_words))
        t_norm = [word(x) for x in t_words]
        for si, sw in enumerate(s_words):
            en = NAMES.get(word(sw))
            if en is None:
                continue
            targets = [ti for ti, tw in enumerate(t_norm) if tw == en]
            if not targets:
                continue
            eligible += 1
            linked += any((si, ti) in pairs for ti in targets)
    return linked, eligible


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/es-en")
    p.add_argument("--variant", default=None)
    p.add_argument(
        "--test",
        default="data/bible/test.tsv",
        help="source<TAB>reference (only the source is used)",
    )
    p.add_argument("--beam", type=int, default=None, help="decoding beam (default: the package's)")
    p.add_argument("--out")
    args = p.parse_args()
    tr = Translator(args.model, variant=args.variant)
    sources = [
        line.split("\t")[0]
        for line in Path(args.test).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    items = list(cases(tr, sources, args.beam or tr.defaults.beam_size))
    layers, heads = items[0][0].shape[:2]
    rows = []
    for layer in range(layers):
        linked, eligible = score(items, lambda w, L=layer: w[L].mean(axis=0))
        rows.append((f"layer {layer}, mean of heads", linked, eligible))
        for h in range(heads):
            linked, eligible = score(items, lambda w, L=layer, H=h: w[L, H])
            rows.append((f"layer {layer}, head {h}", linked, eligible))
    linked, eligible = score(items, lambda w: w.mean(axis=(0, 1)))
    rows.append(("all layers and heads", linked, eligible))
    best = max(rows, key=lambda r: r[1])
    chosen = tr.config.alignment
    lines = [
        f"Name links on {len(items)} test verses ({args.test}), {tr.variant}, "
        f"beam {args.beam or tr.defaults.beam_size}; a name counts when its Spanish form is in the "
        "source and its English form in the translation.",
        "",
        "| attention | names linked | rate |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {linked}/{eligible} | {100 * linked / max(eligible, 1):.1f}% |"
        for name, linked, eligible in rows
    ]
    lines += [
        "",
        f"best: {best[0]} ({100 * best[1] / max(best[2], 1):.1f}%); "
        f"the package uses layer {chosen.layer}, "
        f"heads {'all' if chosen.heads is None else chosen.heads}",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
