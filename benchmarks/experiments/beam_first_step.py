"""Beam search's first step on one row per sentence, its outputs repeated to the k beams, against
all k rows computed (runtime.decoder.OnnxStepDecoder as it is).

At step 0 the k beams of a sentence hold the same start token over the same empty cache, so the
step computes the same numbers k times; CTranslate2 and fairseq run that step once per sentence and
expand the beams after it. This runs beam 4 both ways through the same Translator: the hypotheses'
tokens and scores must be identical, and the time is compared alternately (order reversed every
round), medians of the rounds:

    .venv/bin/python benchmarks/experiments/beam_first_step.py --repeats 5 \\
        [--out benchmarks/results/beam_first_step.md]
    # the shipped model: --package models/es-en --data data/bible/test.tsv --sentences 256

Default: benchmarks/marian_shortlist.py's shortlisted OPUS-MT-size packages in --work (batches of
32 of its benchmark sources, 32 tokens each).
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import beam_parser, emit, package_sources  # noqa: E402


def expanded_class():
    """OnnxStepDecoder with beam search's step 0 on one row per sentence, repeated to the k rows."""
    from traductor.runtime.decoder import OnnxStepDecoder

    class Expanded(OnnxStepDecoder):
        def step(self, tokens, top_k=None):
            k = self.repeat
            first = self.position == 0 and k > 1 and tokens.size == self.rows
            if not (
                first and np.array_equal(tokens.reshape(-1, k), np.repeat(tokens[::k, None], k, 1))
            ):
                return super().step(tokens, top_k)
            out, past = self.model.step(
                tokens[::k].reshape(-1, 1),
                0,
                self.mask,
                [p[::k] for p in self.past],
                self.cross,
                top_k,
                self.candidates,
                self._state,
            )
            self.past = [np.repeat(p, k, axis=0) for p in past]
            self.position += 1
            if isinstance(out, tuple):
                return tuple(np.repeat(o, k, axis=0) for o in out)
            return np.repeat(out, k, axis=0)

    return Expanded


def main() -> int:
    p = beam_parser(__doc__)
    args = p.parse_args()
    import traductor.runtime.decoder as dec
    from traductor.runtime import TranslationOptions

    all_rows, expand = dec.OnnxStepDecoder, expanded_class()
    opts_kw = dict(beam_size=4, batch_size=args.batch)
    lines = []
    for variant in args.variants.split(","):
        pkg, tr, src = package_sources(args, variant)
        # the benchmark sources run 32 tokens each, as marian_shortlist.py runs them
        opts = TranslationOptions(**opts_kw, **({} if args.data else {"max_length": 32}))
        times = {"expanded after step 0": [], "all rows at step 0": []}
        hyps = {}
        classes = {"expanded after step 0": expand, "all rows at step 0": all_rows}
        for r in range(args.repeats):
            for name in list(classes) if r % 2 == 0 else list(classes)[::-1]:
                dec.OnnxStepDecoder = classes[name]
                t0 = time.perf_counter()
                hyps[name] = tr.translate_ids(src, opts)
                times[name].append(time.perf_counter() - t0)
        dec.OnnxStepDecoder = all_rows
        a, b = hyps["expanded after step 0"], hyps["all rows at step 0"]
        same = sum([h.tokens for h in x] == [h.tokens for h in y] for x, y in zip(a, b))
        same_scores = sum([h.score for h in x] == [h.score for h in y] for x, y in zip(a, b))
        gap = max(abs(h.score - g.score) for x, y in zip(a, b) for h, g in zip(x, y))
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["all rows at step 0"] / med["expanded after step 0"]
        lines.append(
            f"| {variant} | {pkg.name} | {len(src)} | {same}/{len(src)} | "
            f"{same_scores}/{len(src)} ({gap:.2g}) | "
            f"{med['all rows at step 0']:.2f} | {med['expanded after step 0']:.2f} | {ratio:.3f} |"
        )
        lines.append(
            "|  | seconds per round |  |  |  | "
            + " ".join(f"{x:.2f}" for x in times["all rows at step 0"])
            + " | "
            + " ".join(f"{x:.2f}" for x in times["expanded after step 0"])
            + " |  |"
        )
    head = [
        f"Beam 4, batches of {args.batch}, one thread, medians of {args.repeats} alternating "
        f"rounds (order reversed every round); {platform.machine()}, numpy {np.__version__}.",
        "",
        "| variant | package | sentences | same tokens | same scores (largest difference) | "
        "all rows s | expanded s | speed ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    text = "\n".join(head + lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
