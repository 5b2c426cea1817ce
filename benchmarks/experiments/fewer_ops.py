"""Would a batched decoder step with fewer graph ops be faster? Issue 32's third lever, measured on
the OPUS-MT-size shortlisted packages of benchmarks/marian_shortlist.py (its --work folder).

The step of a shortlisted int8 decoder runs ~350 kernels after ONNX Runtime's fusions, most of
them small: per product a per-row quantization of its input (Abs, ReduceMax, Mul, QuantizeLinear)
and a bias Add. Three rewrites of the decoder graph, each timed against the package as exported,
alternately in one process, the order rotated each round (tokens/s, medians), with the package's
own shortlist:

- folded: the one rewrite that keeps every output bit: the cross-attention's 1/sqrt(head_dim)
  (a power of two for head_dim 64) folded into the query projection's column scales (int8) or
  weights (fp32) and bias; 6 Muls fewer. Must give the same tokens.
- no bias: the bias Adds after the body's products removed (36 kernels). Wrong outputs: a ceiling,
  what the step would gain if every bias were free.
- one quantization (int8): every product reads the first product's per-row scale, so the other
  34 Abs / ReduceMax / Mul chains go. Wrong outputs: a ceiling for a fused per-row quantization.

    .venv/bin/python benchmarks/experiments/fewer_ops.py --repeats 5
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import (  # noqa: E402
    WORKLOADS,
    benchmark_sources,
    parser,
    shortlisted_packages,
    time_rotated,
)

PRODUCTS = ("MatMul", "MatMulIntegerToFloat")


def _producers(graph) -> dict:
    return {o: n for n in graph.node for o in n.output}


def _rename_input(graph, old: str, new: str) -> None:
    """Every reader of `old`, in the graph and in its If branches (which read outer names), reads
    `new` instead."""
    for node in graph.node:
        for i, x in enumerate(node.input):
            if x == old:
                node.input[i] = new
        for a in node.attribute:
            if a.type == a.GRAPH:
                _rename_input(a.g, old, new)


def _used_names(graph) -> set[str]:
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for a in node.attribute:
            if a.type == a.GRAPH:
                used |= _used_names(a.g)
    return used


def _drop_dead(graph) -> None:
    """Nodes none of whose outputs is read, repeatedly, then unread initializers."""
    while True:
        used = _used_names(graph)
        keep = [n for n in graph.node if any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    used = _used_names(graph)
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def fold_cross_scale(model) -> int:
    """Mul(Add(product(x, W), b), s) with s a power of two -> product with W (or its column scales)
    and b times s: the same bits. Returns how many Muls went."""
    from onnx import numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    prod = _producers(g)
    done = 0
    for mul in [n for n in g.node if n.op_type == "Mul" and n.input[1] in inits]:
        s = numpy_helper.to_array(inits[mul.input[1]])
        add = prod.get(mul.input[0])
        if s.size != 1 or add is None or add.op_type != "Add" or add.input[1] not in inits:
            continue
        mm = prod.get(add.input[0])
        if mm is None or mm.op_type not in PRODUCTS:
            continue
        mant, _ = np.frexp(s.item())
        if mant != 0.5:
            continue  # not a power of two: folding would round differently
        w_slot = 3 if mm.op_type == "MatMulIntegerToFloat" else 1  # column scales / weights
        for node, slot in ((mm, w_slot), (add, 1)):
            name = node.input[slot]
            scaled = (numpy_helper.to_array(inits[name]) * s).astype(np.float32)
            t = numpy_helper.from_array(scaled, f"{name}_x{s.item()}")
            g.initializer.append(t)
            inits[t.name] = t
            node.input[slot] = t.name
        _rename_input(g, mul.output[0], add.output[0])
        done += 1
    _drop_dead(g)
    return done


def drop_bias(model) -> int:
    """Ceiling, wrong outputs: remove the Add of a constant after each body product."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    prod = _producers(g)
    gone = 0
    for add in [n for n in g.node if n.op_type == "Add" and n.input[1] in inits]:
        mm = prod.get(add.input[0])
        if mm is not None and mm.op_type in PRODUCTS and mm.input[1] in inits:
            _rename_input(g, add.output[0], add.input[0])
            gone += 1
    _drop_dead(g)
    return gone


def one_quantization(model) -> int:
    """Ceiling, wrong outputs: every QuantizeLinear and product of the body reads the first
    per-row scale, so the other scales' Abs / ReduceMax / Mul chains are dead."""
    g = model.graph
    qs = [n for n in g.node if n.op_type == "QuantizeLinear"]
    if not qs:
        return 0
    first = qs[0].input[1]
    before = len(g.node)
    for q in qs[1:-1]:  # the last is the head's, on (rows, d): it keeps its own
        _rename_input(g, q.input[1], first)
    _drop_dead(g)
    return before - len(g.node)


REWRITES = {"folded": fold_cross_scale, "no bias": drop_bias, "one quantization": one_quantization}


def rewritten(base: Path, variant: str, name: str, work: Path) -> tuple[Path, int, int]:
    """A copy of package `base` whose `variant` decoder has rewrite `name` -> (package, node
    count after, how many nodes went)."""
    import onnx

    from traductor.runtime.package import read_config, write_manifest

    pkg = work / f"{base.name}-{name.replace(' ', '-')}"
    shutil.rmtree(pkg, ignore_errors=True)
    shutil.copytree(base, pkg)
    path = pkg / read_config(pkg).variants[variant].decoder
    model = onnx.load(str(path))
    before = len(model.graph.node)
    REWRITES[name](model)
    onnx.save(model, str(path))
    write_manifest(pkg)
    return pkg, len(model.graph.node), before - len(model.graph.node)


def kernels(path: Path) -> int:
    """Nodes of the main graph after ONNX Runtime's optimizations (what one step launches, the If
    counted once)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(Path(d) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return len(onnx.load(so.optimized_model_filepath, load_external_data=False).graph.node)


def main() -> int:
    args = parser(__doc__).parse_args()

    from traductor.runtime import Translator
    from traductor.runtime.package import read_config

    bases = shortlisted_packages(args.work)
    scratch = Path(tempfile.mkdtemp(prefix="fewer-ops-"))
    rows = []
    for variant in args.variants.split(","):
        base = bases[variant]
        names = ["folded", "no bias"] + (["one quantization"] if variant == "int8" else [])
        pkgs = {"as exported": base}
        info = {"as exported": (kernels(base / read_config(base).variants[variant].decoder), 0)}
        for n in names:
            pkg, _, gone = rewritten(base, variant, n, scratch)
            pkgs[n] = pkg
            info[n] = (kernels(pkg / read_config(pkg).variants[variant].decoder), gone)
        trs = {n: Translator(p, variant=variant, intra_threads=1) for n, p in pkgs.items()}
        tok = trs["as exported"].tokenizer
        src = benchmark_sources(tok, trs["as exported"].config.special_tokens.eos_id)
        speed, tokens = time_rotated(trs, src, args.repeats)
        for w in WORKLOADS:
            ref = statistics.median(speed[("as exported", w)])
            for n in pkgs:
                med = statistics.median(speed[(n, w)])
                same = sum(a == b for a, b in zip(tokens[(n, w)], tokens[("as exported", w)]))
                k, gone = info[n]
                rows.append(
                    f"| {variant} | {w} | {n} | {gone} | {k} | {med:.1f} | {med / ref:.3f}"
                    f" | {same}/{len(tokens[(n, w)])} |"
                )
    print(
        "| variant | workload | decoder | nodes removed | kernels after ORT | tokens/s"
        " | ratio to as exported | same tokens |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
