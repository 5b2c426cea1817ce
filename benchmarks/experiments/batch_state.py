"""What does feeding the shortlist head's per-batch state back give? The same shortlisted
package twice, alternately in one process, the order rotated each round (tokens/s, medians): once
as the runtime runs it (the first step of a batch gathers the candidates' weight rows and the
rest of the state, later steps read it back), once with the state never fed (every step gathers
and transposes the same rows again, as decoders shortlisted before 2026-12-07 did). The graph is
the same, so the tokens must be too.

Made for the OPUS-MT-size shortlisted packages of benchmarks/marian_shortlist.py (its --work
folder; run that first, it rebuilds them with this checkout's head).

    .venv/bin/python benchmarks/experiments/batch_state.py --repeats 5
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import (  # noqa: E402
    WORKLOADS,
    benchmark_sources,
    parser,
    shortlisted_packages,
    time_rotated,
)


def main() -> int:
    args = parser(__doc__).parse_args()

    from traductor.runtime import Translator

    packages = shortlisted_packages(args.work)
    rows = []
    for variant in args.variants.split(","):
        fed = Translator(packages[variant], variant=variant, intra_threads=1)
        if not fed.model.state_names:
            raise SystemExit(f"{packages[variant]}: no state inputs; run marian_shortlist.py first")
        gathered = Translator(packages[variant], variant=variant, intra_threads=1)
        gathered.model.state_names, gathered.model.state_out_names = [], []  # never fed
        trs = {"state fed back": fed, "gathered every step": gathered}
        src = benchmark_sources(fed.tokenizer, fed.config.special_tokens.eos_id)
        speed, tokens = time_rotated(trs, src, args.repeats)
        for w in WORKLOADS:
            new, old = (statistics.median(speed[(n, w)]) for n in trs)
            a, b = (tokens[(n, w)] for n in trs)
            same = sum(x == y for x, y in zip(a, b))
            rows.append(
                f"| {variant} | {w} | {old:.1f} | {new:.1f} | {new / old:.3f} | {same}/{len(a)} |"
            )
    print(
        "| variant | workload | tokens/s, gathered every step | tokens/s, state fed back | ratio"
        " | same tokens |"
    )
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
