"""Does a 4-bit output projection (com.microsoft MatMulNBits) pay at batch 1, and what does it cost?

    .venv/bin/python benchmarks/experiments/int4_output.py --model models/es-en \
        --data data/bible/test.tsv --limit 554 --blocks 32,128 --levels 4,0 \
        --out benchmarks/results/int4_output.md

Issue 32 asks for int4 weights in the output projection (the largest product of a step: at OPUS-MT
size 512 x 58,101, ~30 of the ~52 MB a step reads in int8), kept only if it wins, with agreement
and BLEU measured first. For each block size B this writes a copy of the package whose int8 decoder
has its output projection (the MatMulIntegerToFloat over the vocabulary) replaced by MatMulNBits:
4-bit symmetric weights in blocks of B along the model dimension, quantized by ONNX Runtime's own
MatMulNBitsQuantizer from the fp32 weights (the fp32 decoder's, or the dequantized int8 ones where
the package has no fp32 variant), at each accuracy level of --levels (4: int8 products, 0: fp32),
then measures against the package's int8 variant as it is:

- translations of --limit test sentences, greedy: identical share, BLEU (sacrebleu) of both;
- batch invariance: the first 48 of them in random batches of 1-16 against one at a time
  (identical tokens and bit-identical scores; the runtime's promise);
- speed: greedy batch 1 on --b1 sentences and greedy batch 16 on 64, one thread, int8 and the int4
  copies alternating in every repeat, medians of --repeats; tokens/s and ratio to int8.

Random-weight packages (the OPUS-MT-size Marian of benchmarks/marian_engines.py) have no
meaningful translations: pass --speed-only. Copies go to --work (never the repository).
"""

from __future__ import annotations

import argparse
import datetime
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from traductor.runtime import Translator
from traductor.runtime.machine import cpu_summary
from traductor.runtime.package import read_config, write_manifest


def _projection(model: onnx.ModelProto) -> onnx.NodeProto:
    """The MatMulIntegerToFloat with the widest weight: the output projection."""
    inits = {t.name: t for t in model.graph.initializer}
    best = None
    for n in model.graph.node:
        if n.op_type == "MatMulIntegerToFloat" and n.input[1] in inits:
            width = inits[n.input[1]].dims[1]
            if best is None or width > inits[best.input[1]].dims[1]:
                best = n
    if best is None:
        sys.exit("no MatMulIntegerToFloat over an initializer in the int8 decoder")
    return best


def _float_weight(pkg: Path, int8: onnx.ModelProto, node: onnx.NodeProto, fp32: str | None):
    """(K, N) float32 weight of the projection: from the fp32 decoder where there is one (the tied
    embedding, transposed), else the int8 weight times its column scales."""
    inits = {t.name: t for t in int8.graph.initializer}
    base = node.input[1].removesuffix("_s8")
    if fp32 and (pkg / fp32).is_file():
        ref = {t.name: t for t in onnx.load(str(pkg / fp32)).graph.initializer}
        if base in ref:
            return numpy_helper.to_array(ref[base]).astype(np.float32), "fp32"
        untied = base.removesuffix("_transposed")
        if base.endswith("_transposed") and untied in ref:
            return numpy_helper.to_array(ref[untied]).T.astype(np.float32).copy(), "fp32"
    q = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[node.input[3]]).astype(np.float32)
    return q * scale.reshape(1, -1), "dequantized int8"


def _nbits_node(weight: np.ndarray, block: int, level: int, name: str):
    """MatMulNBits for x @ weight as ONNX Runtime's quantizer writes it: (node, initializers)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")],
        "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])],
        [numpy_helper.from_array(weight, "w")],
    )
    one = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    q = MatMulNBitsQuantizer(one, bits=4, block_size=block, is_symmetric=True, accuracy_level=level)
    q.process()
    out = q.model.model
    (node,) = [x for x in out.graph.node if x.op_type == "MatMulNBits"]
    rename = {t.name: f"{name}_{t.name}" for t in out.graph.initializer}
    inits = []
    for t in out.graph.initializer:
        t.name = rename[t.name]
        inits.append(t)
    node.input[:] = [rename.get(i, i) for i in node.input]
    node.name = name
    return node, inits


def _drop_dead(graph: onnx.GraphProto) -> None:
    """Remove nodes whose outputs nothing reads (the projection's activation quantization)."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        for n in graph.node:  # subgraphs (If branches) read outer names too
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    used |= {i for m in a.g.node for i in m.input}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _weight_shape(pkg: Path) -> tuple[int, int]:
    model = onnx.load(
        str(pkg / read_config(pkg).variants["int8"].decoder), load_external_data=False
    )
    inits = {t.name: t for t in model.graph.initializer}
    return tuple(inits[_projection(model).input[1]].dims)


def make_copy(pkg: Path, dst: Path, block: int, level: int) -> str:
    """dst: pkg with its int8 decoder's output projection in 4 bits. Returns where the float weights
    came from."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(pkg, dst)
    config = read_config(pkg)
    variant = config.variants["int8"]
    fp32 = config.variants["fp32"].decoder if "fp32" in config.variants else None
    model = onnx.load(str(pkg / variant.decoder))
    node = _projection(model)
    weight, origin = _float_weight(pkg, model, node, fp32)
    producers = {o: n for n in model.graph.node for o in n.output}
    quantize = producers[node.input[0]]  # QuantizeLinear(x, row scale, zero point)
    if quantize.op_type != "QuantizeLinear":
        sys.exit(f"the projection's activation comes from {quantize.op_type}, not QuantizeLinear")
    nbits, inits = _nbits_node(weight, block, level, f"proj_int4_b{block}")
    nbits.input[0] = quantize.input[0]
    nbits.output[:] = [node.output[0]]
    at = list(model.graph.node).index(node)
    model.graph.node.remove(node)
    model.graph.node.insert(at, nbits)
    model.graph.initializer.extend(inits)
    _drop_dead(model.graph)
    onnx.save(model, str(dst / variant.decoder))
    write_manifest(dst)
    return origin


def op_rows(weight_shape: tuple[int, int], block: int, level: int, seed: int = 0) -> list[int]:
    """MatMulNBits alone, random weights of the projection's shape: how many of row 0's outputs
    differ (bitwise) when it runs in a batch of 2, 4 and 16 rows instead of alone."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    k, n = weight_shape
    node, inits = _nbits_node(rng.normal(0, 0.05, (k, n)).astype(np.float32), block, level, "p")
    node.input[0], node.output[:] = "x", ["y"]
    graph = helper.make_graph(
        [node],
        "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])],
        inits,
    )
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(
        helper.make_model(graph, opset_imports=opsets).SerializeToString(),
        so,
        providers=["CPUExecutionProvider"],
    )
    x = rng.normal(0, 1, (16, k)).astype(np.float32)
    alone = sess.run(None, {"x": x[:1]})[0]
    return [int((sess.run(None, {"x": x[:m]})[0][:1] != alone).sum()) for m in (2, 4, 16)]


def _sentences(path: Path, limit: int) -> tuple[list[str], list[str]]:
    src, ref = [], []
    for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
        s, t = line.split("\t")[:2]
        src.append(s)
        ref.append(t)
    return src, ref


def _tokens(results) -> list[tuple]:
    return [(tuple(r.hypotheses[0].tokens), r.hypotheses[0].score) for r in results]


def quality(translators: dict, src: list[str], ref: list[str]) -> dict:
    import sacrebleu

    out = {}
    base = translators["int8"].translate_batch(src, beam_size=1)
    for name, tr in translators.items():
        got = base if name == "int8" else tr.translate_batch(src, beam_size=1)
        out[name] = {
            "identical": sum(a.text == b.text for a, b in zip(got, base)),
            "bleu": sacrebleu.corpus_bleu([r.text for r in got], [ref]).score,
        }
    return out


def invariance(tr: Translator, src: list[str], seed: int = 0) -> tuple[int, int]:
    """(sentences whose batched result equals the sentence alone, sentences)."""
    alone = [_tokens(tr.translate_batch([s], beam_size=1, return_scores=True))[0] for s in src]
    rng = random.Random(seed)
    order = list(range(len(src)))
    rng.shuffle(order)
    batched: dict[int, tuple] = {}
    i = 0
    while i < len(order):
        idx = order[i : i + rng.randint(1, 16)]
        got = _tokens(tr.translate_batch([src[j] for j in idx], beam_size=1, return_scores=True))
        batched.update(zip(idx, got))
        i += len(idx)
    return sum(batched[j] == alone[j] for j in range(len(src))), len(src)


def speed(translators: dict, src: list[str], b1: int, repeats: int) -> dict:
    workloads = {"greedy b1": (src[:b1], 1), "greedy b16": (src[:64], 16)}
    times = {w: {n: [] for n in translators} for w in workloads}
    tokens = {w: {} for w in workloads}
    for tr in translators.values():
        tr.translate_batch(src[:4], beam_size=1)  # warm-up
    for rep in range(repeats):
        names = list(translators)
        if rep % 2:
            names.reverse()
        for w, (sents, batch) in workloads.items():
            for name in names:
                tr = translators[name]
                start = time.perf_counter()
                res = tr.translate_batch(sents, beam_size=1, batch_size=batch)
                times[w][name].append(time.perf_counter() - start)
                tokens[w][name] = sum(len(r.hypotheses[0].tokens) for r in res)
    return {
        w: {n: tokens[w][n] / statistics.median(t) for n, t in per.items()}
        for w, per in times.items()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/es-en"))
    p.add_argument("--data", type=Path, default=Path("data/bible/test.tsv"))
    p.add_argument("--limit", type=int, default=554)
    p.add_argument("--blocks", default="32,128", help="block sizes along the model dimension")
    p.add_argument(
        "--levels", default="4,0", help="MatMulNBits accuracy levels (4: int8 products, 0: fp32)"
    )
    p.add_argument("--b1", type=int, default=24, help="sentences for greedy batch 1")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--speed-only", action="store_true", help="random weights: skip quality")
    p.add_argument("--work", type=Path, default=Path("/tmp/int4-output"))
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    translators = {"int8": Translator(args.model, variant="int8", intra_threads=1)}
    origins = {}
    for block in [int(b) for b in args.blocks.split(",")]:
        for level in [int(x) for x in args.levels.split(",")]:
            name = f"int4-b{block}-l{level}"
            dst = args.work / f"{args.model.name}-{name}"
            origins[name] = make_copy(args.model, dst, block, level)
            translators[name] = Translator(dst, variant="int8", intra_threads=1)
    if args.speed_only:
        src = [
            " ".join(line.split()[:40])
            for line in (Path(__file__).parent.parent / "test-books.es.txt")
            .read_text(encoding="utf-8")
            .splitlines()
            if line.strip()
        ][: max(64, args.b1)]
        ref = None
    else:
        src, ref = _sentences(args.data, args.limit)
    shape = _weight_shape(args.model)
    ops = {
        n: op_rows(shape, int(n.split("-b")[1].split("-")[0]), int(n.split("-l")[1]))
        for n in translators
        if n != "int8"
    }
    qual = quality(translators, src, ref) if ref is not None else None
    inv = {n: invariance(tr, src[:48]) for n, tr in translators.items()}
    sp = speed(translators, src, args.b1, args.repeats)

    lines = [
        f"{cpu_summary()}, {datetime.date.today()}, {args.model} (int8 variant), one thread; "
        f"int4-bB-lL: output projection as MatMulNBits, 4-bit symmetric, blocks of B, "
        f"accuracy level L, weights from {', '.join(sorted(set(origins.values())))}.",
        "",
        "| variant | identical (greedy) | BLEU | batch invariant | greedy b1 tok/s | ratio | "
        "greedy b16 tok/s | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in translators:
        q = qual[n] if qual else None
        same = f"{q['identical']}/{len(src)}" if q else "-"
        bleu = f"{q['bleu']:.2f}" if q else "-"
        b1, b16 = sp["greedy b1"], sp["greedy b16"]
        lines.append(
            f"| {n} | {same} | {bleu} | {inv[n][0]}/{inv[n][1]} | {b1[n]:.1f} | "
            f"{b1[n] / b1['int8']:.3f} | {b16[n]:.1f} | {b16[n] / b16['int8']:.3f} |"
        )
    lines += [
        "",
        f"MatMulNBits alone, a random ({shape[0]} x {shape[1]}) weight: outputs of row 0 that "
        "differ bitwise in a batch of 2 / 4 / 16 rows from row 0 alone:",
        "",
    ]
    lines += [f"- {n}: {' / '.join(str(c) for c in ops[n])} of {shape[1]}" for n in ops]
    cmd = "Command: `.venv/bin/python benchmarks/experiments/int4_output.py " + " ".join(
        sys.argv[1:]
    )
    lines += ["", cmd + "`", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
