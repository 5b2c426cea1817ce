"""The decoder step graph, written node by node on ONNX Runtime's fused CPU operators.

A decoding step does little arithmetic per operator, so at small batches its time is the number of
kernels ONNX Runtime launches. The graph torch.onnx produces for the same step has ~210 nodes after
ORT's own fusions (head reshapes, transposes, the past -> present Concat, masks, softmax); this one
has ~130 (4 layers), because self-attention and its cache are one com.microsoft kernel:

- self-attention: GroupQueryAttention (kv_num_heads = num_heads, i.e. plain multi-head attention)
  on the packed Q|K|V projection. It appends the new key/value to the cache itself, and when the
  caller binds the same buffer as `past` input and `present` output (a preallocated cache of some
  capacity) it writes them in place at `position`, so nothing is copied per step. Given a cache of
  exactly past_len entries and no shared buffer, it returns past_len + 1 entries like a Concat.
- cross-attention: plain MatMul / Softmax / MatMul on the encoder's K/V, already split into heads
  (batch, heads, src_len, head_dim), with the source padding mask as an additive bias built once
  per step. Rows are grouped by sentence (the beams of a sentence share its cross K/V): the group's
  queries are the rows of one small matrix product per sentence and head. ORT's MultiHeadAttention
  does the same arithmetic, but measured inside a step (the K/V of four layers no longer in cache)
  it took 2.4x as long as these standard ops at 16 rows of one sentence each, and as long at 32
  sentences x 4 beams (benchmarks/experiments/cross_attention.py).
- residual + LayerNorm: two Adds (the projection's bias, the stream) and a LayerNormalization; ORT's
  fused SkipLayerNormalization is as fast at one row but ~4x slower at 128 rows (see _skip_norm).

The graph keeps the decoder contract of `runtime.package.IONames`. Initializer names follow the
PyTorch parameter names (`.weight_t` = a Linear weight stored transposed for MatMul; `qkv` = the
three self-attention projections side by side), so the weights can be read back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from traductor.runtime.package import IONames
from traductor.training.model import Transformer, sinusoidal_positions

MS = "com.microsoft"
OPSET = 18  # ReduceMax takes its axes as an input (as in the int8 graphs, opset 21)


class _Graph:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def init(self, name: str, array) -> str:
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(
        self,
        op_type: str,
        inputs: list[str],
        n_out: int = 1,
        outputs: list[str] | None = None,
        domain: str = "",
        **attrs,
    ) -> list[str]:
        self._n += 1
        name = f"{op_type.lower()}_{self._n}"
        outputs = outputs or [f"{name}_out{i}" for i in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, inputs, outputs, name=name, domain=domain or None, **attrs)
        )
        return outputs

    def one(self, op_type: str, inputs: list[str], **attrs) -> str:
        return self.op(op_type, inputs, **attrs)[0]


def _linear_t(g: _Graph, prefix: str, linear: torch.nn.Linear) -> tuple[str, str]:
    return g.init(f"{prefix}.weight_t", linear.weight.T), g.init(f"{prefix}.bias", linear.bias)


TOP_K_BLOCK = 64  # vocabulary entries per block in the two-stage top-k


def _top_k_block(vocab: int) -> int:
    """TOP_K_BLOCK, or a block size near it that divides the vocabulary: padding copies every row
    (at 64 rows of a 65,001-token vocabulary the Pad alone is most of the top-k's time)."""
    if vocab % TOP_K_BLOCK == 0:
        return TOP_K_BLOCK
    larger, smaller = range(TOP_K_BLOCK + 1, 161), range(TOP_K_BLOCK - 1, 31, -1)  # 65..160, 63..32
    return next((b for b in (*larger, *smaller) if vocab % b == 0), TOP_K_BLOCK)


def _top_k(g: _Graph, scores: str, k: str, vocab: int, outputs: list[str]) -> None:
    """outputs = (values, ids) of the k best of each row of scores (rows, vocab), best first; equal
    values in vocabulary order, exactly as one TopK over the row.

    ONNX Runtime's TopK scans a row element by element (~6 us per row of 8,000 on one core), while
    ReduceMax is vectorized. So the row is cut into blocks of ~TOP_K_BLOCK: the k best entries lie
    in the k blocks with the highest maxima (a block ranked below k has k blocks whose maxima are
    higher or equal and come first), those blocks are gathered in vocabulary order, and one TopK
    over their k blocks' entries finishes. Ties keep TopK's rule (the lower index first): a tied
    entry's block ranks no lower than the blocks of the tied entries after it. A vocabulary that is
    not a multiple of the block is padded with -inf, which never outranks a real entry.
    """
    b = _top_k_block(vocab)
    if vocab < 4 * b:  # a small vocabulary: one TopK is as fast
        g.op("TopK", [scores, k], outputs=outputs, axis=-1, largest=1, sorted=1)
        return
    n_blocks = -(-vocab // b)
    if n_blocks * b != vocab:
        pads = g.init("top_k_pads", np.array([0, 0, 0, n_blocks * b - vocab], dtype=np.int64))
        scores = g.one(
            "Pad", [scores, pads, g.init("top_k_pad_value", np.array(-np.inf, dtype=np.float32))]
        )
    blocks = g.one(
        "Reshape",
        [scores, g.init("top_k_blocks_shape", np.array([0, n_blocks, b], dtype=np.int64))],
    )
    axis2 = g.init("top_k_axis_2", np.array([2], dtype=np.int64))
    peaks = g.one("ReduceMax", [blocks, axis2], keepdims=0)  # (rows, n_blocks)
    n_best = g.one("Min", [k, g.init("top_k_n_blocks", np.array([n_blocks], dtype=np.int64))])
    best = g.op("TopK", [peaks, n_best], n_out=2, axis=-1, largest=1, sorted=1)[1]
    # the block ids, ascending
    best = g.op("TopK", [best, n_best], n_out=2, axis=-1, largest=0, sorted=1)[0]
    # (rows, n_best, b)
    picked = g.one("GatherND", [blocks, g.one("Unsqueeze", [best, axis2])], batch_dims=1)
    flat = g.one("Reshape", [picked, g.init("top_k_flat_shape", np.array([0, -1], dtype=np.int64))])
    where = g.op(
        "TopK", [flat, k], outputs=[outputs[0], "top_k_where"], axis=-1, largest=1, sorted=1
    )[1]
    size = g.init("top_k_block", np.array(b, dtype=np.int64))
    block = g.one("GatherElements", [best, g.one("Div", [where, size])], axis=1)
    g.op("Add", [g.one("Mul", [block, size]), g.one("Mod", [where, size])], outputs=[outputs[1]])


def alignment_layer(n_decoder_layers: int) -> int:
    """The decoder layer whose cross-attention gives word alignments (config.json `alignment`).
    Measured on the shipped model (benchmarks/results/alignment_names.md): the middle layer, mean of
    its heads, links 96% of Bible names (the last layer 91%, the first 59%)."""
    return n_decoder_layers // 2


def build_decoder(model: Transformer, io: IONames) -> onnx.ModelProto:
    """The decoder step of `model` as an ONNX graph (see the module docstring)."""
    cfg = model.cfg
    aligned = alignment_layer(cfg.n_decoder_layers)
    g = _Graph()
    step = _step_tensors(g, io, cfg)
    x, pe, embed_name = _embedding(g, model, io)

    # Pre-LN: `h` is the normalized input of the next sublayer, `x` the residual stream, and the
    # feed-forward output of a layer is added to the stream by the next layer's (or the final) norm.
    # Post-LN: the residual stream is normalized after each sublayer, h == x.
    ffn_out = ffn_bias = ""
    for i, layer in enumerate(model.decoder_layers):
        p = f"decoder_layers.{i}"
        ln = [
            _norm(g, layer.self_block.norm, f"{p}.self_block.norm"),
            _norm(g, layer.cross_block.norm, f"{p}.cross_block.norm"),
            _norm(g, layer.ffn_block.norm, f"{p}.ffn_block.norm"),
        ]
        if cfg.pre_norm and i == 0:
            h, x = _skip_norm(g, x, pe, ln[0], None)  # pe (1, 1, d) broadcasts over the rows
        elif cfg.pre_norm:
            h, x = _skip_norm(g, ffn_out, x, ln[0], ffn_bias)
        elif i == 0:
            x = h = g.one("Add", [x, pe])
        o, bias = _self_attention_block(g, layer.self_attn, h, i, p, io, step, cfg.n_heads)
        h, x = _residual(g, cfg.pre_norm, o, bias, x, ln[0], ln[1])
        o, bias = _cross_attention_block(g, layer.cross_attn, h, i, p, io, step, i == aligned)
        h, x = _residual(g, cfg.pre_norm, o, bias, x, ln[1], ln[2])
        o, bias = _feed_forward_block(g, layer.ffn, h, p, cfg.activation)
        if cfg.pre_norm:
            ffn_out, ffn_bias = o, bias
        else:
            x = h = _skip_norm(g, o, x, ln[2], bias)[0]

    if cfg.pre_norm:  # the final norm takes the last residual add
        h, _ = _skip_norm(g, ffn_out, x, _norm(g, model.decoder_norm, "decoder_norm"), ffn_bias)
    _output_head(g, model, h, embed_name, io)
    return _model(g, io, cfg)


@dataclass(frozen=True)
class _StepTensors:
    """Names of the tensors every layer reads, built once per step."""

    seqlens_k: str  # (rows,) each row's past length: where its new K/V go
    total: str  # (1,) the self-attention's total length: the largest position + 1
    grouped: str  # the shape (batch, group, heads, head_dim): a sentence's rows side by side
    per_row: str  # the shape (rows, 1, d)
    mask_bias: str  # (batch, 1, 1, src_len): 0 at a source token, the lowest float32 at padding
    score_scale: str  # 1 / sqrt(head_dim), applied to the cross-attention queries


def _step_tensors(g: _Graph, io: IONames, cfg) -> _StepTensors:
    # `position` is (1,) for a batch whose rows are all at one step, or (rows,) for rows at
    # different steps (continuous batching: a sentence joins a running batch at its step 0). Each
    # row's own position picks its positional encoding and where its new K/V go; the caches are
    # right-padded and the attention's total length is the largest position + 1.
    pos32 = g.one("Cast", [io.position], to=TensorProto.INT32)  # (1,) or (rows,)
    total = g.one(
        "Add",
        [g.one("ReduceMax", [pos32], keepdims=1), g.init("one_i32", np.array([1], dtype=np.int32))],
    )  # past + new
    rows = g.one("Shape", [io.input_ids], end=1)
    seqlens_k = g.one("Expand", [pos32, rows])  # (rows,) index of the new token = past length
    batch = g.one("Shape", [io.attention_mask], end=1)
    grouped = g.one(
        "Concat",
        [batch, g.init("group_heads", np.array([-1, cfg.n_heads, cfg.head_dim], dtype=np.int64))],
        axis=0,
    )
    per_row = g.init("row_1_d", np.array([-1, 1, cfg.d_model], dtype=np.int64))
    # exp() of the lowest float32 is exactly 0: padding gets no attention at all
    real = g.one("Cast", [io.attention_mask], to=TensorProto.BOOL)
    lowest = np.array(np.finfo(np.float32).min, dtype=np.float32)
    mask_bias = g.one(
        "Unsqueeze",
        [
            g.one(
                "Where",
                [real, g.init("zero_f", np.array(0, dtype=np.float32)), g.init("lowest_f", lowest)],
            ),
            g.init("axes_1_2", np.array([1, 2], dtype=np.int64)),
        ],
    )
    scale = np.array(1.0 / math.sqrt(cfg.head_dim), dtype=np.float32)
    score_scale = g.init("cross_scale", scale)
    return _StepTensors(seqlens_k, total, grouped, per_row, mask_bias, score_scale)


def _embedding(g: _Graph, model: Transformer, io: IONames) -> tuple[str, str, str]:
    """-> (the token embeddings (rows, 1, d), the positional encodings (1 or rows, 1, d), the name
    of the embedding table). The table is the shared one, or a converted model's separate decoder
    vocabulary."""
    cfg, d = model.cfg, model.cfg.d_model
    embed_name = "decoder_embed.weight" if model.decoder_embed is not None else "embed.weight"
    emb = g.one("Gather", [g.init(embed_name, model.target_embed.weight), io.input_ids])
    if cfg.scale_embedding:
        emb = g.one("Mul", [emb, g.init("embed_scale", np.array(math.sqrt(d), dtype=np.float32))])
    # Computed in float64: the exported table is then the same bytes on whichever CPU exports it.
    table = sinusoidal_positions(
        torch.arange(cfg.max_len + 1), d, cfg.positions, torch.float64
    ).float()
    pe = g.one("Gather", [g.init("positions", table.reshape(-1, 1, d)), io.position])
    return emb, pe, embed_name


def _norm(g: _Graph, layer_norm: torch.nn.LayerNorm, prefix: str) -> tuple[str, str, float]:
    return (
        g.init(f"{prefix}.weight", layer_norm.weight),
        g.init(f"{prefix}.bias", layer_norm.bias),
        layer_norm.eps,
    )


def _skip_norm(
    g: _Graph, x: str, skip: str, ln: tuple[str, str, float], bias: str | None
) -> tuple[str, str]:
    """-> (LayerNorm(x + skip + bias), x + skip + bias). Two Adds and a LayerNormalization: ORT's
    fused SkipLayerNormalization is as fast at one row but ~4x slower at 128 rows (1 thread)."""
    total = g.one("Add", [g.one("Add", [x, bias]), skip]) if bias else g.one("Add", [x, skip])
    return g.one("LayerNormalization", [total, ln[0], ln[1]], axis=-1, epsilon=ln[2]), total


def _residual(g: _Graph, pre_norm: bool, o: str, bias: str, x: str, ln: tuple, ln_next: tuple):
    """A sublayer's output `o` (+ bias) added to the stream `x` -> (next sublayer's input, stream).
    Pre-LN: the next sublayer's norm takes the add; post-LN: this sublayer's norm, h == x."""
    if pre_norm:
        return _skip_norm(g, o, x, ln_next, bias)
    h = _skip_norm(g, o, x, ln, bias)[0]
    return h, h


def _self_attention_block(
    g: _Graph, sa, h: str, i: int, p: str, io: IONames, step: _StepTensors, n_heads: int
) -> tuple[str, str]:
    """GroupQueryAttention over the cache, on the packed Q|K|V projection -> (the output
    projection's product (rows, 1, d), its bias, added by the residual)."""
    w = torch.cat([sa.q_proj.weight, sa.k_proj.weight, sa.v_proj.weight]).T
    b = torch.cat([sa.q_proj.bias, sa.k_proj.bias, sa.v_proj.bias])
    qkv = g.one(
        "Add",
        [
            g.one("MatMul", [h, g.init(f"{p}.self_attn.qkv.weight_t", w)]),
            g.init(f"{p}.self_attn.qkv.bias", b),
        ],
    )
    past = [io.layer("past_key_self", i), io.layer("past_value_self", i)]
    present = [io.layer("present_key_self", i), io.layer("present_value_self", i)]
    attn = g.op(
        "GroupQueryAttention",
        [qkv, "", "", *past, step.seqlens_k, step.total],
        outputs=[f"{p}.self_attn.out", *present],
        domain=MS,
        num_heads=n_heads,
        kv_num_heads=n_heads,
    )[0]
    wo, bo = _linear_t(g, f"{p}.self_attn.out_proj", sa.out_proj)
    return g.one("MatMul", [attn, wo]), bo


def _cross_attention_block(
    g: _Graph, ca, h: str, i: int, p: str, io: IONames, step: _StepTensors, aligned: bool = False
) -> tuple[str, str]:
    """Attention over the encoder's K/V: the rows of a sentence are the queries of one product per
    head -> (the output projection's product (rows, 1, d), its bias). aligned: this layer's
    attention weights are also the graph output `alignment_attention`, so a greedy search reads
    word alignments off its own steps instead of a second pass through the alignment graph."""
    wq, bq = _linear_t(g, f"{p}.cross_attn.q_proj", ca.q_proj)
    q = g.one("Mul", [g.one("Add", [g.one("MatMul", [h, wq]), bq]), step.score_scale])
    # (batch, heads, group, head_dim)
    q = g.one("Transpose", [g.one("Reshape", [q, step.grouped])], perm=[0, 2, 1, 3])
    # ORT folds the Transpose into the MatMul
    k_t = g.one("Transpose", [io.layer("key_cross", i)], perm=[0, 1, 3, 2])
    # (batch, heads, group, src_len)
    scores = g.one("Add", [g.one("MatMul", [q, k_t]), step.mask_bias])
    # (batch, heads, group, head_dim)
    if aligned:
        weights = g.op("Softmax", [scores], outputs=[io.alignment_attention], axis=-1)[0]
    else:
        weights = g.one("Softmax", [scores], axis=-1)
    c = g.one("MatMul", [weights, io.layer("value_cross", i)])
    c = g.one("Reshape", [g.one("Transpose", [c], perm=[0, 2, 1, 3]), step.per_row])  # (rows, 1, d)
    wo, bo = _linear_t(g, f"{p}.cross_attn.out_proj", ca.out_proj)
    return g.one("MatMul", [c, wo]), bo


def _feed_forward_block(g: _Graph, ffn, h: str, p: str, activation: str) -> tuple[str, str]:
    """-> (the second product (rows, 1, d), its bias)."""
    w1, b1 = _linear_t(g, f"{p}.ffn.fc1", ffn.fc1)
    w2, b2 = _linear_t(g, f"{p}.ffn.fc2", ffn.fc2)
    f = _activation(g, g.one("Add", [g.one("MatMul", [h, w1]), b1]), activation)
    return g.one("MatMul", [f, w2]), b2


def _activation(g: _Graph, x: str, kind: str) -> str:
    if kind == "relu":
        return g.one("Relu", [x])
    if kind == "swish":  # x * sigmoid(x)
        return g.one("Mul", [x, g.one("Sigmoid", [x])])
    return g.one("Gelu", [x], domain=MS)  # erf form, as torch's default gelu


def _output_head(g: _Graph, model: Transformer, h: str, embed_name: str, io: IONames) -> None:
    """h (rows, 1, d) -> log-probs (rows, vocab) and the top-k outputs."""
    cfg = model.cfg
    h2 = g.one("Reshape", [h, g.init("row_d", np.array([-1, cfg.d_model], dtype=np.int64))])
    # Tied output projection: MatMul with the transposed embedding (ORT folds the Transpose at load;
    # the int8 export gives it its own quantized initializer).
    logits = g.one("MatMul", [h2, g.one("Transpose", [embed_name], perm=[1, 0])])
    if cfg.final_logits_bias:
        logits = g.one("Add", [logits, g.init("final_logits_bias", model.final_logits_bias)])
    if cfg.suppress_ids:  # never generated: -inf after the softmax (Model.log_probs)
        mask = np.zeros(cfg.output_vocab_size, dtype=np.float32)
        mask[list(cfg.suppress_ids)] = -np.inf
        g.op(
            "Add",
            [g.one("LogSoftmax", [logits], axis=-1), g.init("suppress", mask)],
            outputs=[io.log_probs],
        )
    else:
        g.op("LogSoftmax", [logits], outputs=[io.log_probs], axis=-1)
    _top_k(g, io.log_probs, io.top_k, cfg.output_vocab_size, [io.top_log_probs, io.top_ids])


def _model(g: _Graph, io: IONames, cfg) -> onnx.ModelProto:
    """The nodes and initializers of `g` with the decoder contract's inputs and outputs, checked."""
    n_layers, shape_self = cfg.n_decoder_layers, ["rows", cfg.n_heads, "past_len", cfg.head_dim]
    f32, vi = TensorProto.FLOAT, helper.make_tensor_value_info
    inputs = [
        vi(io.input_ids, TensorProto.INT64, ["rows", 1]),
        vi(io.position, TensorProto.INT64, ["positions"]),
        vi(io.attention_mask, TensorProto.INT64, ["batch", "src_len"]),
    ]
    inputs += [
        vi(io.layer(t, i), f32, shape_self)
        for i in range(n_layers)
        for t in ("past_key_self", "past_value_self")
    ]
    inputs += [
        vi(io.layer(t, i), f32, ["batch", cfg.n_heads, "src_len", cfg.head_dim])
        for i in range(n_layers)
        for t in ("key_cross", "value_cross")
    ]
    inputs.append(vi(io.top_k, TensorProto.INT64, [1]))
    outputs = [vi(io.log_probs, f32, ["rows", cfg.output_vocab_size])]
    outputs += [
        vi(io.layer(t, i), f32, ["rows", cfg.n_heads, "present_len", cfg.head_dim])
        for i in range(n_layers)
        for t in ("present_key_self", "present_value_self")
    ]
    outputs += [
        vi(io.top_log_probs, f32, ["rows", "top_k"]),
        vi(io.top_ids, TensorProto.INT64, ["rows", "top_k"]),
        vi(io.alignment_attention, f32, ["batch", cfg.n_heads, "group", "src_len"]),
    ]
    graph = helper.make_graph(g.nodes, "traductor_decoder_step", inputs, outputs, g.inits)
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
        producer_name="traductor",
    )
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m
