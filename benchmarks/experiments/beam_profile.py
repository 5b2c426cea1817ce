"""Where a beam 4 b32 run's kernel time goes at OPUS-MT size, by operator type, per decoder step.

    .venv/bin/python benchmarks/experiments/beam_profile.py [--variant int8] [--beam 4] \\
        [--batch 32] [--out benchmarks/results/beam_profile.md]

Runs benchmarks/marian_shortlist.py's shortlisted package (its --work folder) over the 64
benchmark sources (at most 32 tokens each, one thread) once to warm the machine up, then once more
in new sessions under ONNX Runtime's profiler, and prints the encoder's and the decoder's kernel
time per operator type (ms in all, and ms per decoder step). The shortlist head runs inside an
If: its time is the If's, and the nodes of its branches are left out of the sums so nothing counts
twice. The profiler adds its own
cost to every kernel, so read the shares, not the totals; `keep` (the beam cache reorder) and
the search's Python are outside the sessions and not in these figures.
"""

from __future__ import annotations

import collections
import glob
import json
import sys
import tempfile
import time
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import benchmark_sources, emit, parser, shortlisted_packages  # noqa: E402


def _branch_nodes(path: Path) -> set[str]:
    """Names of the nodes inside the subgraphs (If branches) of an ONNX file."""
    names: set[str] = set()

    def walk(graph, top: bool) -> None:
        for node in graph.node:
            if not top:
                names.add(node.name)
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g, False)

    walk(onnx.load(str(path), load_external_data=False).graph, True)
    return names


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--variant", default="int8")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", help="also write the report to this markdown file")
    args = p.parse_args()
    import onnxruntime as ort

    import traductor.runtime.onnx_model as onnx_model
    from traductor.runtime import TranslationOptions, Translator

    folder = tempfile.mkdtemp(prefix="beam-profile-")

    class Profiled(ort.SessionOptions):
        def __init__(self):
            super().__init__()
            self.enable_profiling = True
            self.profile_file_prefix = f"{folder}/session"

    pkg = shortlisted_packages(args.work)[args.variant]
    opts = TranslationOptions(beam_size=args.beam, batch_size=args.batch, max_length=32)
    warm = Translator(pkg, variant=args.variant, intra_threads=1)
    src = benchmark_sources(warm.tokenizer, warm.config.special_tokens.eos_id, 64)
    warm.translate_ids(src, opts)
    plain = onnx_model.ort.SessionOptions
    onnx_model.ort.SessionOptions = Profiled  # the runtime's sessions, profiled
    try:
        tr = Translator(pkg, variant=args.variant, intra_threads=1)
    finally:
        onnx_model.ort.SessionOptions = plain
    t0 = time.perf_counter()
    tr.translate_ids(src, opts)
    seconds = time.perf_counter() - t0
    import gc

    files = [s.end_profiling() for s in gc.get_objects() if isinstance(s, ort.InferenceSession)]
    branch = set()
    for f in glob.glob(str(pkg / "*.onnx")):
        branch |= _branch_nodes(Path(f))
    lines = [
        f"{args.variant} + list, beam {args.beam}, batches of {args.batch}, {len(src)} sources, "
        f"at most 32 tokens, one thread, under ONNX Runtime's profiler: {seconds:.2f} s.",
        "",
    ]
    for f in files:
        if not f or not Path(f).is_file():
            continue
        events = json.loads(Path(f).read_text())
        runs = sum(e.get("cat") == "Session" and e["name"] == "model_run" for e in events)
        by_op: collections.Counter = collections.Counter()
        for e in events:
            if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
                continue
            node = e["name"][: -len("_kernel_time")]
            if node.split("/")[0] in branch:
                continue
            by_op[e["args"]["op_name"]] += e["dur"] / 1e3
        if not by_op:
            continue
        total = sum(by_op.values())
        kind = "decoder" if "GroupQueryAttention" in by_op else "encoder"
        lines += [
            f"{kind}: {runs} runs, {total:.0f} ms of kernels ({total / runs:.2f} ms a run)",
            "",
            "| operator | ms | ms a run | share |",
            "|---|---:|---:|---:|",
        ]
        for op, ms in by_op.most_common(14):
            lines.append(f"| {op} | {ms:.0f} | {ms / runs:.2f} | {ms / total:.1%} |")
        lines.append("")
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
