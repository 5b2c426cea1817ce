"""Can one decoder batch hold sentences at different steps? A check for continuous batching.

    .venv/bin/python benchmarks/per_row_positions.py [--model models/es-en] [--variant int8]

Continuous (in-flight) batching lets a request join the running decoder batch at the next step
instead of waiting for the batch to finish. Then the rows of one step sit at different positions:
each needs its own positional encoding and its own cache length. The exporter writes the decoder
graph so that `position` may hold one entry per row (export/fused.py; the package's
`runtime.continuous` uses it); this script checks that directly on the package's graph.

It decodes three sentences greedily, each alone, and the same three in one batch where they start at different steps (a sentence joins the running batch at step 0 while the others are at
steps 4 and 7): the self-attention caches are right-padded to the longest, the cross K/V padded to
a common source width. It prints whether every row's log-probabilities are bit-identical to the
same sentence decoded alone, at every step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "es-en"))
    p.add_argument("--variant", default="int8")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from traductor.runtime import Translator
    from traductor.runtime.decoder import pad_sources

    tr = Translator(args.model, variant=args.variant, intra_threads=1)
    m = tr.model
    dec = m.decoder
    names, outs, n_layers = (
        [i.name for i in dec.get_inputs()],
        [o.name for o in dec.get_outputs()],
        m.n_layers,
    )
    bos, pad = m.config.special_tokens.bos_id, m.config.special_tokens.pad_id

    def step(tokens, pos, mask, past, cross):
        o = dec.run(
            outs,
            dict(
                zip(
                    names,
                    [
                        tokens.reshape(-1, 1),
                        pos,
                        mask,
                        *past,
                        *cross,
                        np.array([1], dtype=np.int64),
                    ],
                )
            ),
        )
        return o[0], o[1 : 1 + 2 * n_layers]

    texts = [
        "En el principio crió Dios los cielos y la tierra.",
        "Jesús lloró.",
        "Y dijo Dios: Sea la luz: y fué la luz, y vió Dios que la luz era buena.",
    ]
    start = [4, 7, 0]  # steps each sentence has already taken when the batch runs together
    together = 8
    alone = []  # per sentence: mask, cross K/V, and per step (token, log-probs)
    for text, s in zip(texts, start):
        ids, mask = pad_sources(
            [tr.tokenizer.encode(text).ids], pad, m.config.decoding.source_pad_multiple
        )
        cross, past, tok, hist = m.encode(ids, mask), m.empty_past(1), np.array([bos]), []
        for t in range(s + together):  # the package's own decoder graph, one row
            lp, past = m.step(tok.reshape(1, 1), t, mask, past, cross)
            hist.append((tok, lp[0]))
            tok = np.array([int(lp[0].argmax())])
        alone.append((mask, cross, hist))

    # The batch: each row starts from its own state after `start` steps, re-decoded here in the batch.
    width = max(a[0].shape[1] for a in alone) + 8  # wider than any own padding
    mask = np.zeros((len(texts), width), dtype=np.int64)
    cross = [
        np.zeros((len(texts), *c.shape[1:2], width, c.shape[3]), dtype=np.float32)
        for c in alone[0][1]
    ]
    for r, (mk, cr, _) in enumerate(alone):
        mask[r, : mk.shape[1]] = mk[0]
        for c, x in zip(cross, cr):
            c[r, :, : x.shape[2]] = x[0]
    # Self K/V of each row at its start, rebuilt by running it alone (the cache layout is right-padded).
    past_rows = []
    for r, (mk, cr, hist) in enumerate(alone):
        past = m.empty_past(1)
        for t in range(start[r]):
            _, past = m.step(hist[t][0].reshape(1, 1), t, mk, past, cr)
        past_rows.append(past)
    pos = np.array(start, dtype=np.int64)
    cap = int(pos.max())
    past = [
        np.zeros((len(texts), p.shape[1], cap, p.shape[3]), dtype=np.float32) for p in past_rows[0]
    ]
    for r, pr in enumerate(past_rows):
        for c, x in zip(past, pr):
            c[r, :, : x.shape[2]] = x[0]
    identical = 0
    for k in range(together):
        tokens = np.array([alone[r][2][pos[r]][0][0] for r in range(len(texts))], dtype=np.int64)
        lp, present = step(tokens, pos, mask, past, cross)
        for r in range(len(texts)):
            same = np.array_equal(lp[r], alone[r][2][pos[r]][1])
            identical += same
            if not same:
                print(
                    f"step {k}, row {r} (position {pos[r]}): differs by {np.abs(lp[r] - alone[r][2][pos[r]][1]).max():.3g}"
                )
        past, pos = present, pos + 1  # each row's new K/V went in at its own position
    n = together * len(texts)
    print(
        f"{args.variant}: {identical} of {n} row-steps bit-identical to the sentence decoded alone "
        f"(rows at positions {start} -> {pos.tolist()} in one batch, caches right-padded, sources padded to {width})"
    )
    return 0 if identical == n else 1


if __name__ == "__main__":
    sys.exit(main())
