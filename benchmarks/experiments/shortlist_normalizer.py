"""How should a shortlisted step normalize, for beam search to rank hypotheses as with the whole
vocabulary? Beam 4 over the whole vocabulary's log-probs (the decoder without candidates), with a
sentence's list applied in numpy, one normalizer per mode:

- full: the whole vocabulary (the reference; must give the runtime's own beam 4 tokens);
- list: over the list alone (Marian, CTranslate2);
- mean: the list plus n * exp(mean) for the n tokens outside it (their mean log-prob);
- var: the list plus n * exp(mean + var / 2), the log-normal estimate (what the decoder does);
- exact: the list plus the actual outside mass (a check: must equal full).

Prints, per mode, the share of test sentences whose best hypothesis equals full's. The table is a
package's shortlist.npz, e.g. from `traductor shortlist COPY --corpus data/bible/train.tsv
--per-token 500 --frequent 600` (no --test: no gate, the table stays).

    .venv/bin/python benchmarks/experiments/shortlist_normalizer.py --table COPY/shortlist.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODES = ("full", "list", "mean", "var", "exact")


class ListedStep:
    """A StepDecoder over another one's whole-vocabulary log-probs, normalized over each row's
    list as `mode` says (rows: `repeat` per sentence, as the beam search keeps them)."""

    def __init__(self, inner, listed: np.ndarray, repeat: int, mode: str):
        self.inner, self.listed, self.mode = inner, listed, mode
        self.sentence = np.repeat(np.arange(len(listed)), repeat)

    def step(self, tokens, top_k=None):
        lp = self.inner.step(tokens, None).astype(np.float64)
        if self.mode != "full":
            m = self.listed[self.sentence]
            inside = np.where(m, lp, -np.inf)
            z = np.exp(inside).sum(1, keepdims=True)
            n = (~m).sum(1, keepdims=True)
            mean = np.where(m, 0.0, lp).sum(1, keepdims=True) / np.maximum(n, 1)
            var = np.where(m, 0.0, (lp - mean) ** 2).sum(1, keepdims=True) / np.maximum(n, 1)
            if self.mode == "mean":
                z = z + n * np.exp(mean)
            elif self.mode == "var":
                z = z + n * np.exp(mean + var / 2)
            elif self.mode == "exact":
                z = z + np.exp(np.where(m, -np.inf, lp)).sum(1, keepdims=True)
            lp = inside - np.log(z)
        lp = lp.astype(np.float32)
        ids = np.argsort(-lp, axis=1, kind="stable")[:, :top_k]
        return np.take_along_axis(lp, ids, 1), ids

    def keep(self, rows):
        self.inner.keep(rows)
        self.sentence = self.sentence[rows]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", required=True, help="a shortlist.npz")
    p.add_argument("--model", default=str(REPO / "models" / "es-en"))
    p.add_argument("--test", default=str(REPO / "data" / "bible" / "test.tsv"))
    p.add_argument("--variant", default="int8")
    p.add_argument("--limit", type=int, default=0, help="first N test sentences (0: all)")
    p.add_argument("--modes", default="full,list,mean,var")
    p.add_argument("--beam", type=int, default=4)
    args = p.parse_args()

    from traductor.runtime import Translator
    from traductor.runtime.decoder import OnnxStepDecoder
    from traductor.runtime.shortlist import Shortlist
    from traductor.training.data import read_tsv

    table = Shortlist.load(Path(args.table))
    tr = Translator(args.model, variant=args.variant, intra_threads=1, shortlist=False)
    pairs, _ = read_tsv(Path(args.test))
    texts = [x.source for x in pairs][: args.limit or None]
    src = tr.plan(texts, beam_size=args.beam).sources
    vocab = tr.config.dims.output_vocab_size
    opts = tr._options(dict(beam_size=args.beam, batch_size=32))
    modes = [m for m in args.modes.split(",") if m]
    if "full" not in modes:
        modes.insert(0, "full")
    got = {}
    for mode in modes:
        t0, out = time.time(), [None] * len(src)
        order = sorted(range(len(src)), key=lambda i: len(src[i]))
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            seqs = [src[i] for i in idx]
            ids, mask = tr._pad(seqs)
            listed = np.zeros((len(seqs), vocab), dtype=bool)
            for r, s in enumerate(seqs):
                listed[r, table.sentence(s)] = True
            inner = OnnxStepDecoder(tr.model, ids, mask, repeat=args.beam)
            step = ListedStep(inner, listed, args.beam, mode)
            limits = [tr._limit(s) for s in seqs]
            for i, h in zip(idx, tr._beam_search(opts).search(step, limits)):
                out[i] = h[0].tokens
        got[mode] = out
        print(f"{mode}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    reference = tr.translate_ids(src, opts)
    same_as_runtime = sum(a == h[0].tokens for a, h in zip(got["full"], reference))
    sizes = [table.sentence(s).size for s in src]
    print(
        f"{args.variant} beam {args.beam}, {len(src)} sentences, list {np.mean(sizes):.0f} of "
        f"{vocab} tokens per sentence; full equals the runtime's beam on {same_as_runtime}"
    )
    print("| normalizer | same best hypothesis as the whole vocabulary |")
    print("|---|---|")
    for mode in modes:
        same = sum(a == b for a, b in zip(got[mode], got["full"]))
        print(f"| {mode} | {same}/{len(src)} ({same / len(src):.1%}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
