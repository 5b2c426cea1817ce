"""Which shortlist table covers what the shipped model says (issue 32), measured without building
packages: for int8 greedy, a shortlisted translation equals the whole-vocabulary one exactly when
every token of the whole-vocabulary translation is in the sentence's list (the argmax over the list
is the argmax over the vocabulary when it lies in the list), so the share of such verses is the
gate's int8 greedy agreement (checked: 58.1% and 99.1% both ways on the test books).

    nice -n 19 .venv/bin/python benchmarks/experiments/shortlist_tables.py [--split dev]

Translates data/bible/train.tsv's sources once with the shipped model (int8 greedy, ~12 minutes
on the shared 2-core machine; cached in --cache), then prints, for each table, the mean list size
per verse (of 8,000) and the share of verses of --split covered. Result: docs/performance.md,
"Vocabulary shortlist".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from traductor.export.shortlist import (
    _cooccurrences,
    _ranked_table,
    frequent_tokens,
    model_translations,
    read_pairs,
    translation_probabilities,
)
from traductor.runtime import Translator

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/es-en"
VOCAB = 8000
TABLES = [  # (method, corpus, per_token, frequent)
    ("cooccurrence", "references", 100, 100),
    ("cooccurrence", "references", 300, 300),
    ("alignment", "references", 100, 300),
    ("alignment", "references", 200, 300),
    ("alignment", "self only", 200, 300),
    ("alignment", "+ self", 100, 300),
    ("alignment", "+ self", 200, 300),
    ("alignment", "+ self", 300, 300),
    ("alignment", "+ self", 300, 1000),
    ("alignment", "+ self", 500, 600),
    ("alignment", "+ self", 800, 1000),
]


def cached_translations(cache: Path, corpus: Path):
    path = cache / f"{corpus.stem}.int8-greedy.json"
    if not path.is_file():
        path.write_text(json.dumps(model_translations(MODEL, corpus)))
    return json.loads(path.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="test", help="data/bible split measured (dev or test)")
    p.add_argument("--cache", type=Path, default=Path("/tmp/shortlist-tables"), help="cache dir")
    args = p.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    src, ref = read_pairs(ROOT / "data/bible/train.tsv", tok, tok)
    self_src, self_out = cached_translations(args.cache, ROOT / "data/bible/train.tsv")
    measured_src, said = cached_translations(args.cache, ROOT / f"data/bible/{args.split}.tsv")
    eos = Translator(MODEL).config.special_tokens.eos_id
    probabilities = {}
    print("| method | corpus | per token | frequent | list per verse | int8 greedy identical |")
    print("|---|---|---|---|---|---|")
    for method, corpus, per_token, frequent in TABLES:
        s, t = {
            "references": (src, ref),
            "self only": (self_src, self_out),
            "+ self": (src + self_src, ref + self_out),
        }[corpus]
        common = frequent_tokens(t, VOCAB, frequent, (eos,), (0, 1))
        banned = np.zeros(VOCAB, dtype=bool)
        banned[common] = True
        banned[[0, 1]] = True
        if method == "cooccurrence":
            keys, scores = _cooccurrences(s, t, VOCAB, banned)
            copies = None
        else:
            if corpus not in probabilities:
                probabilities[corpus] = translation_probabilities(s, t, VOCAB, VOCAB)
            keys, scores = probabilities[corpus]
            copies = np.flatnonzero(~banned)
        table = _ranked_table(keys, scores, VOCAB, VOCAB, per_token, banned, common, copies)
        lists = [table.sentence(x + [eos]) for x in measured_src]
        covered = np.mean([np.isin(o, c).all() for o, c in zip(said, lists)])
        size = np.mean([c.size for c in lists])
        print(f"| {method} | {corpus} | {per_token} | {frequent} | {size:,.0f} | {covered:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
