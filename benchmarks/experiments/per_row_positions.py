"""Can one decoder batch hold sentences at different steps? A check for continuous batching.

    .venv/bin/python benchmarks/experiments/per_row_positions.py [--model DIR] [--variant int8]

Continuous (in-flight) batching lets a request join the running decoder batch at the next step
instead of waiting for the batch to finish. Then the rows of one step sit at different positions:
each needs its own positional encoding and its own cache length. The exporter writes the decoder
graph so that `position` may hold one entry per row (export/fused.py; the package's
`runtime.continuous` uses it); this script checks that directly on the package's graph.

It decodes three sentences greedily, each alone, and the same three in one batch where they start
at different steps (a sentence joins the running batch at step 0 while the others are at steps 4
and 7): the self-attention caches are right-padded to the longest, the cross K/V padded to a common
source width. It prints whether every row's log-probabilities are bit-identical to the same
sentence decoded alone, at every step (exit status 1 if not); it writes no file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from traductor.runtime import Translator
from traductor.runtime.decoder import pad_sources

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "En el principio crió Dios los cielos y la tierra.",
    "Jesús lloró.",
    "Y dijo Dios: Sea la luz: y fué la luz, y vió Dios que la luz era buena.",
]
START = [4, 7, 0]  # steps each sentence has already taken when the batch runs together
TOGETHER = 8  # steps the three then take in one batch


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=str(ROOT / "models" / "es-en"), help="model package")
    p.add_argument("--variant", default="int8", help="the variant whose decoder graph is checked")
    args = p.parse_args()
    tr = Translator(args.model, variant=args.variant, intra_threads=1)
    m = tr.model
    # per sentence: mask, cross K/V, and per step (token, log-probs)
    alone = [_decode_alone(m, tr.tokenizer, text, s + TOGETHER) for text, s in zip(TEXTS, START)]
    # The batch: each row starts from its own state after START steps, re-decoded in the batch.
    width = max(a[0].shape[1] for a in alone) + 8  # wider than any own padding
    mask, cross = _batch_sources(alone, width)
    past = _batch_past(m, alone)
    identical, pos = _decode_together(m, alone, mask, past, cross)
    n = TOGETHER * len(TEXTS)
    print(
        f"{args.variant}: {identical} of {n} row-steps bit-identical to the sentence decoded "
        f"alone (rows at positions {START} -> {pos.tolist()} in one batch, caches right-padded, "
        f"sources padded to {width})"
    )
    return 0 if identical == n else 1


def _decode_alone(m, tokenizer, text: str, steps: int):
    """One sentence greedily through the package's own decoder graph, one row: its source mask,
    its cross K/V and, per step, the input token and the log-probs."""
    st = m.config.special_tokens
    ids, mask = pad_sources(
        [tokenizer.encode(text).ids], st.pad_id, m.config.decoding.source_pad_multiple
    )
    cross, past, tok, hist = m.encode(ids, mask), m.empty_past(1), np.array([st.bos_id]), []
    for t in range(steps):
        lp, past = m.step(tok.reshape(1, 1), t, mask, past, cross)
        hist.append((tok, lp[0]))
        tok = np.array([int(lp[0].argmax())])
    return mask, cross, hist


def _batch_sources(alone, width: int):
    """Every row's source mask and cross K/V, right-padded to one width."""
    mask = np.zeros((len(alone), width), dtype=np.int64)
    cross = [
        np.zeros((len(alone), *c.shape[1:2], width, c.shape[3]), dtype=np.float32)
        for c in alone[0][1]
    ]
    for r, (mk, cr, _) in enumerate(alone):
        mask[r, : mk.shape[1]] = mk[0]
        for c, x in zip(cross, cr):
            c[r, :, : x.shape[2]] = x[0]
    return mask, cross


def _batch_past(m, alone):
    """Self K/V of each row at its start, rebuilt by running it alone, right-padded to the longest
    (the cache layout is right-padded)."""
    past_rows = []
    for r, (mk, cr, hist) in enumerate(alone):
        past = m.empty_past(1)
        for t in range(START[r]):
            _, past = m.step(hist[t][0].reshape(1, 1), t, mk, past, cr)
        past_rows.append(past)
    cap = max(START)
    past = [
        np.zeros((len(alone), p.shape[1], cap, p.shape[3]), dtype=np.float32) for p in past_rows[0]
    ]
    for r, pr in enumerate(past_rows):
        for c, x in zip(past, pr):
            c[r, :, : x.shape[2]] = x[0]
    return past


def _decode_together(m, alone, mask, past, cross):
    """TOGETHER steps of the three rows in one batch, each at its own position; counts the
    row-steps whose log-probs equal the sentence decoded alone, bit for bit."""
    dec, n_layers = m.decoder, m.n_layers
    names, outs = [i.name for i in dec.get_inputs()], [o.name for o in dec.get_outputs()]
    pos = np.array(START, dtype=np.int64)
    identical = 0
    for k in range(TOGETHER):
        tokens = np.array([alone[r][2][pos[r]][0][0] for r in range(len(alone))], dtype=np.int64)
        feeds = [tokens.reshape(-1, 1), pos, mask, *past, *cross, np.array([1], dtype=np.int64)]
        o = dec.run(outs, dict(zip(names, feeds)))
        lp, present = o[0], o[1 : 1 + 2 * n_layers]
        for r in range(len(alone)):
            want = alone[r][2][pos[r]][1]
            same = np.array_equal(lp[r], want)
            identical += same
            if not same:
                print(
                    f"step {k}, row {r} (position {pos[r]}): differs by "
                    f"{np.abs(lp[r] - want).max():.3g}"
                )
        past, pos = present, pos + 1  # each row's new K/V went in at its own position
    return identical, pos


if __name__ == "__main__":
    sys.exit(main())
