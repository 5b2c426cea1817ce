"""Beam search's step outputs: fresh arrays from session.run, or buffers bound through IOBinding.

The beam step decoder (runtime.decoder.OnnxStepDecoder) runs the decoder with `session.run`: every
step ONNX Runtime returns each layer's present self K/V (rows, heads, t + 1, head_dim) as new numpy
arrays, ~53 MB a step at 128 rows and 16 past tokens on the OPUS-MT-size model, which `keep` then
gathers into its reused buffers. The alternative timed here binds the present outputs (and the
top-k outputs) to a second set of reused buffers, so a step allocates nothing: past buffers ->
(graph) -> present buffers -> (keep's gather) -> past buffers.

Same package, same batches, same beam reorders; tokens are compared, speed alternates per round:

    .venv/bin/python benchmarks/experiments/beam_outputs.py --repeats 5 \\
        [--out benchmarks/results/beam_outputs.md]

Needs benchmarks/marian_shortlist.py's --work folder (its shortlisted packages).
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import benchmark_sources, emit, parser, shortlisted_packages  # noqa: E402


def bound_decoder_class():
    import onnxruntime as ort

    from traductor.runtime.decoder import OnnxStepDecoder

    class BoundOutputs(OnnxStepDecoder):
        """OnnxStepDecoder whose step binds its outputs to reused buffers."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self._present: list[np.ndarray] | None = None

        def step(self, tokens, top_k=None):
            m = self.model
            rows, t = self.rows, self.position
            d = m.config.dims
            shape = (rows, d.n_heads, t + 1, d.head_dim)
            size = int(np.prod(shape))
            if self._present is None or self._present[0].size < size:
                self._present = [np.empty(2 * size, np.float32) for _ in self.past]
            present = [b[:size].reshape(shape) for b in self._present]
            session = m.decoder_for(rows)
            io = session.io_binding()
            val = ort.OrtValue.ortvalue_from_numpy
            feeds = [
                tokens.reshape(-1, 1).astype(np.int64),
                np.array([t], np.int64),
                self.mask,
                *self.past,
                *self.cross,
                np.array([top_k or 1], np.int64),
            ]
            keep = list(feeds)
            for name, a in zip(m.dec_in_names, feeds):
                io.bind_ortvalue_input(name, val(np.ascontiguousarray(a)))
            c = self.candidates
            if m.candidate_names:
                for name, a in zip(m.candidate_names, (c.ids, c.rows, c.bias)):
                    io.bind_ortvalue_input(name, val(a))
                    keep.append(a)
            pending = bool(m.state_names) and c is not None and self._state.values is None
            if m.state_names and self._state.values is not None:
                for name, v in zip(m.state_names, self._state.values):
                    io.bind_ortvalue_input(name, val(v))
            for name, p in zip(m.dec_out_names[1 : 1 + len(self.past)], present):
                io.bind_ortvalue_output(name, val(p))
            vals = np.empty((rows, top_k), np.float32)
            ids = np.empty((rows, top_k), np.int64)
            io.bind_ortvalue_output(m.config.io.top_log_probs, val(vals))
            io.bind_ortvalue_output(m.config.io.top_ids, val(ids))
            if pending:
                for name in m.state_out_names:
                    io.bind_output(name, "cpu")
            session.run_with_iobinding(io)
            if pending:
                self._state.values = io.copy_outputs_to_cpu()[-len(m.state_out_names) :]
            self.past = present
            self.position += 1
            return vals, ids

    return BoundOutputs


def run_beam(model, sources, candidates_of, decoder_cls, beam=4, steps=32, seed=0):
    """32 steps of beam 4 with the search's own reorders -> (seconds, tokens per step)."""
    from traductor.runtime.decoder import pad_sources
    from traductor.runtime.search import BeamSearch

    st = model.config.special_tokens
    ids, mask = pad_sources(sources, st.pad_id, model.config.decoding.source_pad_multiple)
    t0 = time.perf_counter()
    dec = decoder_cls(model, ids, mask, beam, candidates_of(sources))
    hyps = BeamSearch(st.bos_id, st.eos_id, beam).search(dec, [steps] * len(sources))
    return time.perf_counter() - t0, [h[0].tokens for h in hyps]


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args()
    from traductor.runtime import Translator
    from traductor.runtime.decoder import OnnxStepDecoder

    bound = bound_decoder_class()
    rows = []
    for variant in args.variants.split(","):
        pkg = shortlisted_packages(args.work)[variant]
        tr = Translator(pkg, variant=variant, intra_threads=1)
        model = tr.model
        src = benchmark_sources(tr.tokenizer, model.config.special_tokens.eos_id, args.sentences)
        batches = [src[i : i + 32] for i in range(0, len(src), 32)]

        cands = functools.partial(tr._candidates, width=9)  # the sentences' shortlist candidates

        kinds = {"session.run": OnnxStepDecoder, "bound outputs": bound}
        times = {k: [] for k in kinds}
        tokens = {}
        for r in range(args.repeats):
            order = list(kinds) if r % 2 == 0 else list(kinds)[::-1]
            for k in order:
                total, toks = 0.0, []
                for b in batches:
                    s, t = run_beam(model, b, cands, kinds[k])
                    total, toks = total + s, toks + t
                times[k].append(total)
                tokens[k] = toks
        same = sum(a == b for a, b in zip(tokens["session.run"], tokens["bound outputs"]))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((variant, med["session.run"], med["bound outputs"], same, len(src), times))
    import platform

    lines = [
        f"Beam 4, batches of 32, {len(src)} benchmark sources, 32 steps, one thread, medians of "
        f"{args.repeats} alternating rounds (order reversed every round); {platform.machine()}.",
        "",
        "| variant | session.run s | bound outputs s | speed ratio | same tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for v, a, b, same, n, _ in rows:
        lines.append(f"| {v} | {a:.2f} | {b:.2f} | {a / b:.3f} | {same}/{n} |")
    lines.append("")
    for v, *_, times in rows:
        per_round = {k: [round(x, 2) for x in t] for k, t in times.items()}
        lines.append(f"- {v}, seconds per round: {per_round}")
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
