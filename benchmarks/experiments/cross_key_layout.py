"""Cross-attention keys stored pre-transposed: would the decoder step be faster?

The decoder reads each layer's cross-attention keys as the encoder returns them, (batch, heads,
src_len, head_dim), and transposes them inside the product (ONNX Runtime fuses the Transpose into
a FusedMatMul with transB). Alone, one layer's cross-attention at 32 sentences x 4 beams, 8 heads of
64, was 1.27x faster at src_len 48 and 1.13x at 64 with the keys already (batch, heads, head_dim,
src_len), the same bits; at 16 sentences x 1 row it rounds differently (largest difference 2.3e-6).

Storing them so would change the package's encoder/decoder contract (the encoder's outputs, the
continuous batcher's padding of them, the browser page). Before that, this measures what it gives
end to end: copies of benchmarks/marian_shortlist.py's shortlisted OPUS-MT-size packages whose
decoders read the keys pre-transposed (the Transpose removed, the input's last two axes swapped),
run through the Translator with the encoder's keys transposed in numpy once per batch (a cost the
real change would move into the encoder graph), against the packages as they are. Alternating,
order rotated each round; tokens compared:

    .venv/bin/python benchmarks/experiments/cross_key_layout.py --repeats 5 \\
        [--out benchmarks/results/cross_key_layout.md]
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import (  # noqa: E402
    WORKLOADS,
    benchmark_sources,
    emit,
    parser,
    shortlisted_packages,
    time_rotated,
)


def pretransposed_copy(pkg: Path, out: Path) -> int:
    """A copy of pkg whose decoders take key_cross_i as (batch, heads, head_dim, src_len); the
    manifest is written again for the changed files. -> Transposes removed per decoder."""
    import onnx

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(pkg, out)
    removed = 0
    for path in sorted(out.glob("decoder*.onnx")):
        model = onnx.load(str(path))
        graph = model.graph
        keys = {i.name for i in graph.input if i.name.startswith("key_cross")}
        drop = [
            n
            for n in graph.node
            if n.op_type == "Transpose"
            and n.input[0] in keys
            and list(n.attribute[0].ints) == [0, 1, 3, 2]
        ]
        renamed = {n.output[0]: n.input[0] for n in drop}

        def rename(g, renamed=renamed):  # subgraphs (the head's If branches) too
            for n in g.node:
                n.input[:] = [renamed.get(x, x) for x in n.input]
                for a in n.attribute:
                    if a.g.node:
                        rename(a.g)

        for n in drop:
            graph.node.remove(n)
        rename(graph)
        for i in graph.input:
            if i.name in keys:
                dims = i.type.tensor_type.shape.dim
                a, b = onnx.TensorShapeProto.Dimension(), onnx.TensorShapeProto.Dimension()
                a.CopyFrom(dims[2])
                b.CopyFrom(dims[3])
                dims[2].CopyFrom(b)
                dims[3].CopyFrom(a)
        onnx.save(model, str(path))
        removed = len(drop)
    manifest = json.loads((out / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return removed


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--out", help="also write the report to this markdown file")
    args = p.parse_args()
    from traductor.runtime import Translator

    workloads = {k: WORKLOADS[k] for k in ("greedy b16", "beam4 b32")}
    lines = []
    for variant in args.variants.split(","):
        pkg = shortlisted_packages(args.work)[variant]
        copy = Path(args.work) / f"{pkg.name}-pretransposed-keys"
        removed = pretransposed_copy(pkg, copy)
        base = Translator(pkg, variant=variant, intra_threads=1)
        keyed = Translator(copy, variant=variant, intra_threads=1)
        encode = keyed.model.encode

        def transposed_keys(ids, mask, encode=encode):  # outputs: key_cross_0, value_cross_0, ...
            return [
                np.ascontiguousarray(o.transpose(0, 1, 3, 2)) if i % 2 == 0 else o
                for i, o in enumerate(encode(ids, mask))
            ]

        keyed.model.encode = transposed_keys
        trs = {"as exported": base, "keys pre-transposed": keyed}
        src = benchmark_sources(base.tokenizer, base.config.special_tokens.eos_id, by_length=False)
        speed, tokens = time_rotated(trs, src, args.repeats, workloads)
        for w in workloads:
            a, b = (statistics.median(speed[(n, w)]) for n in trs)
            x, y = (tokens[(n, w)] for n in trs)
            same = sum(s == t for s, t in zip(x, y))
            lines.append(
                f"| {variant} | {w} | {removed} | {a:.1f} | {b:.1f} | {b / a:.3f} | "
                f"{same}/{len(x)} |"
            )
    head = [
        f"OPUS-MT-size shortlisted packages, one thread, medians of {args.repeats} rounds (order "
        f"rotated each round), 32 tokens per sentence; {platform.machine()}.",
        "",
        "| variant | workload | Transposes removed | tokens/s as exported | tokens/s keys "
        "pre-transposed | ratio | same tokens |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    emit("\n".join(head + lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
