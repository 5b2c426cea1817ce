"""The int8 variant: per-row int8 activations x per-column int8 weights, scaled back to float inside
one com.microsoft MatMulIntegerToFloat per product. Two graph edits come first.

Why per row: DynamicQuantizeLinear / DynamicQuantizeMatMul take one scale for the whole tensor,
padding and every other sentence of the batch included, so a sentence's translation changed with
its neighbours. Here every activation row (a decoder row, an encoder source position) gets its own
scale, s = max|x_row| / 127, and q = round(x / s) + 128 (u8, zero point 128; rows that follow a
Relu are >= 0 and use 0..255 with zero point 0). The integer product is exact, so a row's output
depends on that row alone.

Why 7-bit weights: on x86 CPUs with AVX2 but no VNNI, ONNX Runtime's u8 x s8 kernel adds pairs of
u8*s8 products in 16 bits and saturates (ORT's quantization docs; the tiny test model fell to 80%
agreement there). Weights in [-63, 63] keep every pair within 2 * 255 * 63 = 32,130 < 32,767, so the
product is exact on AVX2, AVX-512 and VNNI alike (and without AVX). The other candidates, measured
side by side in benchmarks/experiments/int8_levers.py: u8 x u8 MatMulInteger (also exact) with
the scales built from standard ops, and MatMulNBits with 8-bit weights, were slower; MatMulNBits
was not batch invariant at every block size either.

1. The tied output projection is written as MatMul(h, Transpose(embedding)). It gets its own
   pre-transposed initializer so that it is quantized too (the largest product of a step).
2. Embedding lookups (Gather) are stored as fp16 with a Cast after them: half the bytes, and far
   closer to fp32 than an int8 Gather.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _untie_output_projection(model: onnx.ModelProto) -> int:
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    changed = 0
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        src = producers.get(node.input[1])
        if src is None or src.op_type != "Transpose" or src.input[0] not in inits:
            continue
        weight = numpy_helper.to_array(inits[src.input[0]])
        perm = next((list(a.ints) for a in src.attribute if a.name == "perm"), None)
        name = f"{src.input[0]}_transposed"
        if name not in inits:
            t = numpy_helper.from_array(
                np.ascontiguousarray(weight.transpose(perm) if perm else weight.T), name
            )
            graph.initializer.append(t)
            inits[name] = t
        node.input[1] = name
        changed += 1
    _drop_unused(graph)
    return changed


# Small lookup tables stay fp32: the decoder's sinusoidal position table is 256 KB.
FP16_MIN_TABLE_BYTES = 1 << 20


def _gathers_to_fp16(model: onnx.ModelProto) -> int:
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    changed = 0
    new_nodes = []
    converted: set[str] = set()
    for node in graph.node:
        new_nodes.append(node)
        if (
            node.op_type != "Gather"
            or node.input[0] not in inits
            or inits[node.input[0]].data_type != TensorProto.FLOAT
        ):
            continue
        if 4 * int(np.prod(inits[node.input[0]].dims)) < FP16_MIN_TABLE_BYTES:
            continue
        name = node.input[0]
        if name not in converted:
            half = numpy_helper.from_array(
                numpy_helper.to_array(inits[name]).astype(np.float16), f"{name}_fp16"
            )
            graph.initializer.append(half)
            converted.add(name)
        out = node.output[0]
        node.input[0] = f"{name}_fp16"
        node.output[0] = f"{out}_fp16"
        new_nodes.append(
            helper.make_node(
                "Cast", [node.output[0]], [out], to=TensorProto.FLOAT, name=f"{node.name}_to_fp32"
            )
        )
        changed += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused(graph)
    return changed


def _drop_unused(graph: onnx.GraphProto) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    live = [n for n in graph.node if any(o in used for o in n.output)]
    if len(live) != len(graph.node):
        del graph.node[:]
        graph.node.extend(live)
        _drop_unused(graph)


MS = "com.microsoft"
# Weights use 7 bits (see the module docstring); activations 8.
WEIGHT_MAX = 63
ACT_MAX = 127
MIN_OPSET = 21  # QuantizeLinear with a block as long as the row (block_size) is opset 21
# Each column's range is clipped to the fraction of its largest |weight| that gives the smallest
# squared error: with 127 levels, one outlier weight would otherwise coarsen the whole column.
CLIP_RATIOS = np.linspace(0.5, 1.0, 26)


def _quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, N) float -> int8 in [-WEIGHT_MAX, WEIGHT_MAX] and one scale per column (N,)."""
    peak = np.abs(w).max(axis=0)
    peak = np.where(peak > 0, peak, 1.0)
    best_err = np.full(w.shape[1], np.inf)
    scale = peak / WEIGHT_MAX
    for ratio in CLIP_RATIOS:
        s = (ratio * peak / WEIGHT_MAX).astype(np.float32)
        err = ((np.clip(np.round(w / s), -WEIGHT_MAX, WEIGHT_MAX) * s - w) ** 2).sum(axis=0)
        better = err < best_err
        best_err, scale = np.where(better, err, best_err), np.where(better, s, scale)
    scale = scale.astype(np.float32)
    q = np.clip(np.round(w / scale), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return q, scale


class _RowQuantizer:
    """Rewrites each MatMul(x, W) of a graph, W a 2-D float initializer, as
    quantize(x) per row -> MatMulIntegerToFloat(q, W as int8, row scales, column scales)."""

    def __init__(self, model: onnx.ModelProto):
        self.shapes = _symbolic_shapes(model)
        self.zero_points: dict[
            tuple, str
        ] = {}  # leading shape -> a zero-point tensor of that shape
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.producers = {o: n for n in self.graph.node for o in n.output}
        self.quantized: dict[str, tuple[str, str, str]] = {}  # activation -> (q, scale, zero point)
        self.nodes: list[onnx.NodeProto] = []

    def const(self, name: str, array: np.ndarray) -> str:
        if name not in self.inits:
            t = numpy_helper.from_array(array, name)
            self.graph.initializer.append(t)
            self.inits[name] = t
        return name

    def weight(self, node: onnx.NodeProto) -> np.ndarray | None:
        t = self.inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if t is None or len(t.dims) != 2 or t.data_type != TensorProto.FLOAT:
            return None
        return numpy_helper.to_array(t)

    def activation(self, x: str, k: int) -> tuple[str, str, str]:
        """Quantize x (..., k) once per row, however many products read it -> (q, scale, zero
        point)."""
        if x in self.quantized:
            return self.quantized[x]
        p = f"rowq{len(self.quantized)}_{x.replace('/', '_')}"
        src = self.producers.get(x)
        nonneg = src is not None and src.op_type == "Relu"  # 0..255 with zero point 0
        peak_in = x if nonneg else self._node("Abs", [x], f"{p}_abs")
        peak = self._node(
            "ReduceMax",
            [peak_in, self.const("rowq_last_axis", np.array([-1], np.int64))],
            f"{p}_peak",
            keepdims=1,
        )
        levels = 2 * ACT_MAX + 1 if nonneg else ACT_MAX
        # A row of zeros gets scale 0: QuantizeLinear's output is then irrelevant, times 0 below.
        scale = self._node(
            "Mul",
            [peak, self.const(f"rowq_inv{levels}", np.array(1 / levels, np.float32))],
            f"{p}_scale",
        )
        if nonneg:
            zp_name = ""
            q = self._node(
                "QuantizeLinear",
                [x, scale],
                f"{p}_q",
                axis=-1,
                block_size=k,
                output_dtype=TensorProto.UINT8,
            )
        else:
            zp_name = self.const("rowq_zero_point", np.array(ACT_MAX + 1, np.uint8))
            # QuantizeLinear wants a zero point shaped like the scale: made once per leading shape.
            shape = self.shapes.get(x)
            # None: unknown, not shared
            lead = shape[:-1] if shape is not None and None not in shape[:-1] else None
            zp = self.zero_points.get(lead) if lead is not None else None
            if zp is None:
                zp = self._node(
                    "Expand", [zp_name, self._node("Shape", [scale], f"{p}_shape")], f"{p}_zp"
                )
                if lead is not None:
                    self.zero_points[lead] = zp
            q = self._node("QuantizeLinear", [x, scale, zp], f"{p}_q", axis=-1, block_size=k)
        self.quantized[x] = (q, scale, zp_name)
        return self.quantized[x]

    def _node(self, op: str, inputs: list[str], out: str, domain: str = "", **attrs) -> str:
        self.nodes.append(
            helper.make_node(op, inputs, [out], name=out, domain=domain or None, **attrs)
        )
        return out

    def run(self) -> None:
        for node in self.graph.node:
            w = self.weight(node)
            if w is None:
                self.nodes.append(node)
                continue
            q, scale, zp = self.activation(node.input[0], w.shape[0])
            wq, wscale = _quantize_weight(w)
            base = node.input[1]
            inputs = [
                q,
                self.const(f"{base}_s8", wq),
                scale,
                self.const(f"{base}_scale", wscale),
            ] + ([zp] if zp else [])
            # A bias Add after the product stays separate: ORT 1.32's MatMulIntegerToFloat scales
            # its bias input along with the product when the A scale is per row (measured: wrong
            # results).
            self.nodes.append(
                helper.make_node(
                    "MatMulIntegerToFloat",
                    inputs,
                    [node.output[0]],
                    name=f"{node.name or node.output[0]}_int8",
                    domain=MS,
                )
            )
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        _drop_unused(self.graph)


def _symbolic_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Tensor name -> shape with named dims ('rows', 'src_len'), from onnxruntime's symbolic shape
    inference, which knows the com.microsoft attention operators. {} if it cannot run."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    # Only the inputs of the products matter: infer over the nodes up to the last MatMul (what comes
    # after, the decoder's top-k, uses operators the inference does not follow).
    model = _up_to_last_matmul(model)
    try:
        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # an unknown operator or shape: fall back to one zero point per quantization
        return {}
    shapes = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = tuple(
            d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in dims
        )
    return shapes


def _up_to_last_matmul(model: onnx.ModelProto) -> onnx.ModelProto:
    nodes = list(model.graph.node)
    last = max((i for i, n in enumerate(nodes) if n.op_type == "MatMul"), default=len(nodes) - 1)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:], out.graph.output[:]
    out.graph.node.extend(nodes[: last + 1])
    out.graph.output.append(helper.make_empty_tensor_value_info(nodes[last].output[0]))
    return out


def _require_opsets(model: onnx.ModelProto) -> None:
    """Per-row QuantizeLinear needs opset 21; the ops these graphs use mean the same from 17 to
    21."""
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and o.version < MIN_OPSET:
            o.version = MIN_OPSET
    if not any(o.domain == MS for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS, 1))
    model.ir_version = max(model.ir_version, 10)


def quantize_int8(src: Path, dst: Path, per_row: bool = True) -> None:
    """Write the int8 variant of the graph at src to dst.

    per_row=False is the previous scheme, kept to measure against
    (benchmarks/experiments/int8_levers.py) and to show that the batch-invariance test catches it:
    onnxruntime's quantize_dynamic, one activation scale per tensor, full-range int8 weights per
    column.
    """
    model = onnx.load(str(src))
    _untie_output_projection(model)
    _gathers_to_fp16(model)
    if not per_row:
        _quantize_per_tensor(model, dst)
        return
    _require_opsets(model)
    _RowQuantizer(model).run()
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _quantize_per_tensor(model: onnx.ModelProto, dst: Path) -> None:
    import logging
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's generic pre-processing advice
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "staged.onnx"
        onnx.save(model, str(staged))
        quantize_dynamic(
            staged,
            dst,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
