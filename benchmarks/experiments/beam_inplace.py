"""Beam search's cache: growing (past -> present, then a gather into reused buffers) or in place.

Beam search reorders its rows every step. runtime.decoder.make_step_decoder gives it one of two
host caches:

- growing (OnnxStepDecoder): the graph copies the past into a present one position longer, and
  `keep` gathers every row of it into reused buffers: two copies of the whole cache a step;
- in place (CachedStepDecoder): one buffer per layer (rows, heads, capacity, head_dim) bound as
  both past and present, the graph writing only the new position; `keep` copies only the rows that
  moved. But attention then reads each row's cache from strided blocks no copy has just touched.

Which is faster depends on the size of the cache, so make_step_decoder picks by the batch's bytes
per position (IN_PLACE_BEAM). This times both through the same Translator, the choice forced each
way, alternating, order reversed every round; tokens are compared:

    .venv/bin/python benchmarks/experiments/beam_inplace.py --repeats 7   # OPUS-MT size
    .venv/bin/python benchmarks/experiments/beam_inplace.py --repeats 7 --batch 4
    .venv/bin/python benchmarks/experiments/beam_inplace.py --repeats 7 \\
        --package models/es-en --data data/bible/test.tsv --sentences 128 --variants int8

Default: benchmarks/marian_shortlist.py's shortlisted OPUS-MT-size packages in --work (64 sources,
32 tokens each).
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import beam_parser, emit, package_sources  # noqa: E402


def main() -> int:
    p = beam_parser(__doc__)
    args = p.parse_args()
    import traductor.runtime.decoder as dec
    from traductor.runtime import TranslationOptions

    threshold = dec.IN_PLACE_BEAM
    forced = {"growing": 1 << 62, "in place": 0}  # IN_PLACE_BEAM that forces each
    lines = []
    for variant in args.variants.split(","):
        pkg, tr, src = package_sources(args, variant)
        opts = TranslationOptions(beam_size=4, batch_size=args.batch, max_length=32)
        per_position = dec._beam_cache_bytes(tr.model, 4 * min(args.batch, len(src)))
        times: dict[str, list[float]] = {k: [] for k in forced}
        hyps = {}
        for r in range(args.repeats):
            for name in list(forced) if r % 2 == 0 else list(forced)[::-1]:
                dec.IN_PLACE_BEAM = forced[name]
                t0 = time.perf_counter()
                hyps[name] = tr.translate_ids(src, opts)
                times[name].append(time.perf_counter() - t0)
        dec.IN_PLACE_BEAM = threshold
        a, b = hyps["growing"], hyps["in place"]
        same = sum([h.tokens for h in x] == [h.tokens for h in y] for x, y in zip(a, b))
        med = {k: statistics.median(v) for k, v in times.items()}
        lines.append(
            f"| {variant} | {pkg.name} | {args.batch} | {per_position / 2**20:.2f} | "
            f"{same}/{len(src)} | {med['growing']:.2f} | {med['in place']:.2f} | "
            f"{med['growing'] / med['in place']:.3f} |"
        )
        lines.append(
            "|  | seconds per round |  |  |  | "
            + " ".join(f"{x:.2f}" for x in times["growing"])
            + " | "
            + " ".join(f"{x:.2f}" for x in times["in place"])
            + " |  |"
        )
    head = [
        f"Beam 4, at most 32 tokens, one thread, medians of {args.repeats} alternating rounds "
        f"(order reversed every round); {platform.machine()}. MB a position: the batch's "
        f"self-attention cache per position (make_step_decoder keeps it in place from "
        f"{threshold / 2**20:g} MB).",
        "",
        "| variant | package | batch | MB a position | same tokens | growing s | in place s | "
        "in place speed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    emit("\n".join(head + lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
