"""The lexical vocabulary shortlist of a package: the table, built from a parallel corpus, and the
decoder graph edit that lets a step score only each sentence's candidates.

Table: for each source token s, the `per_token` target tokens t ranked first by a score, plus the
`frequent` most frequent target tokens (and the end token), which every sentence may produce and
which are therefore not spent on any source token's list. Two scores (`METHODS`):

- "alignment" (the default): p(t | s) from word alignment, IBM Model 1 (Brown et al. 1993, section
  4) trained by EM over the subword tokens, with a NULL source token; Marian's and Bergamot's
  shortlists rank by the same table (fast_align's lex.s2t). Each target token's probability mass is
  shared among the source tokens of its sentence, so frequent words do not fill every list.
- "cooccurrence": p(t | s) = (sentence pairs holding s and t) / (sentence pairs holding s).

The gate compares translations with and without the shortlist, i.e. what the model produces, not
the references; `model_translations` gives the package's own translations of the corpus' sources,
which add_shortlist aligns together with the references (self_translations=True).

Graph: the decoder's output head (from the output projection to log_probs and the top-k) moves
into the `then` branch of an If, unchanged; the `else` branch, taken when candidate_ids is not
empty, gathers the candidates' weight rows (fp32, or the int8 rows with their scales), computes
their logits in one product, gathers each row's own candidates (candidate_rows), normalizes and
takes the top-k (runtime/shortlist.py says why a row's result is then batch invariant).

Normalizer: Marian and CTranslate2 normalize over the list alone, which raises each hypothesis'
log-probability by minus the log of the mass its list holds, differently for each: beam search
then ranks hypotheses otherwise than with the whole vocabulary (on the shipped model 12-13% of
test verses changed with a list of 42% of the vocabulary, from label smoothing's floor on tokens
no list holds). So the normalizer adds an estimate of the mass outside the row's list: the outside
logits taken as normal, n * exp(mean + var / 2), with their exact mean and variance, from sums over
the whole vocabulary (one (d, d + 2) product per row, `outside_statistics`) minus the row's own
logits. Greedy choices do not change (one normalizer per row); beam search agreed on 96.8% of the
test verses at that size (87.0% normalizing over the list) and 98.9% at 52% of the vocabulary.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from traductor.runtime.package import IONames
from traductor.runtime.shortlist import WIDTH_MULTIPLE, Shortlist

HEAD_PRODUCTS = ("MatMul", "MatMulIntegerToFloat")
# The gate: with the shortlist, at least this share of test sentences translate exactly as with the
# whole vocabulary, and BLEU moves by at most this much, for every variant, greedy and beam 4.
MIN_AGREEMENT = 0.98
MAX_BLEU_CHANGE = 0.2
GATE_SEARCHES = (1, 4)
# Table size: Marian's customary one (--shortlist lex.s2t 100 100). On the shipped model (vocabulary
# 8,000) the gate passes from 1,000 + 1,000 (docs/performance.md, "Vocabulary shortlist").
PER_TOKEN = 100
FREQUENT = 100


METHODS = ("alignment", "cooccurrence")
# The decoder's (d, d + 2) matrix of sums over the vocabulary (outside_statistics): a head that has
# it estimates the mass outside each row's list; an earlier one normalized over the list alone.
OUTSIDE_MATRIX = "shortlist_outside_m"
# Bumped when the list head's graph changes, so that benchmarks make their shortlisted packages
# again (3: the per-row gather index and token ids in the per-batch state, 2026-12-07).
HEAD_REVISION = 3
MODEL1_ITERATIONS = 5


def build_table(
    sources: list[list[int]],
    targets: list[list[int]],
    source_vocab: int,
    target_vocab: int,
    per_token: int = 100,
    frequent: int = 100,
    always: tuple[int, ...] = (),
    never: tuple[int, ...] = (),
    method: str = "alignment",
) -> Shortlist:
    """sources[i], targets[i]: token ids of sentence pair i. always: tokens every sentence may
    produce (the end token); never: tokens never listed (padding, the start token). method: one of
    METHODS. With "alignment" a source token's own id is listed too (a copied name or number)."""
    if method not in METHODS:
        raise ValueError(f"invalid method={method!r}: one of {', '.join(METHODS)}")
    common = frequent_tokens(targets, target_vocab, frequent, always, never)
    banned = np.zeros(target_vocab, dtype=bool)
    banned[common] = True
    banned[list(never)] = True
    if method == "cooccurrence":
        keys, scores = _cooccurrences(sources, targets, target_vocab, banned)
        copies = None
    else:
        keys, scores = translation_probabilities(sources, targets, source_vocab, target_vocab)
        copies = np.arange(min(source_vocab, target_vocab))
        copies = copies[~banned[copies]]
    return _ranked_table(
        keys, scores, source_vocab, target_vocab, per_token, banned, common, copies
    )


def frequent_tokens(targets, target_vocab: int, frequent: int, always=(), never=()) -> np.ndarray:
    """The `frequent` target tokens seen most often (never those in `never`), plus `always`."""
    counts = np.zeros(target_vocab, dtype=np.int64)
    for t in targets:
        np.add.at(counts, np.asarray(t, dtype=np.int64), 1)
    counts[list(never)] = -1
    by_count = np.argsort(-counts, kind="stable")
    top = by_count[:frequent]
    return np.union1d(top[counts[top] > 0], list(always)).astype(np.int64)


def _ranked_table(keys, scores, source_vocab, target_vocab, per_token, banned, common, copies):
    """(keys s * target_vocab + t, scores) -> per source token the per_token best-scored targets
    not banned (ties to the lower target id), plus copies (source id = target id) where given."""
    src_of, tgt_of = keys // target_vocab, keys % target_vocab
    keep = (src_of < source_vocab) & ~banned[tgt_of]  # the NULL source token has no list
    src_of, tgt_of, scores = src_of[keep], tgt_of[keep], scores[keep]
    order = np.lexsort((tgt_of, -scores, src_of))
    src_of, tgt_of = src_of[order], tgt_of[order]
    starts = np.searchsorted(src_of, np.arange(source_vocab + 1))
    rank = np.arange(src_of.size) - starts[src_of]
    src_of, tgt_of = src_of[rank < per_token], tgt_of[rank < per_token]
    if copies is not None:
        src_of, tgt_of = np.concatenate([src_of, copies]), np.concatenate([tgt_of, copies])
    pairs = np.unique(src_of * target_vocab + tgt_of)  # by source, then target ascending
    offsets = np.searchsorted(pairs // target_vocab, np.arange(source_vocab + 1))
    return Shortlist(offsets.astype(np.int64), pairs % target_vocab, common)


def _cooccurrences(sources, targets, target_vocab: int, banned: np.ndarray, chunk: int = 4096):
    """-> (keys source * target_vocab + target, number of sentence pairs holding both), for the
    targets not banned, keys ascending."""
    keys, counts = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in range(0, len(sources), chunk):
        part = []
        for s, t in zip(sources[start : start + chunk], targets[start : start + chunk]):
            s = np.unique(np.asarray(s, dtype=np.int64))
            t = np.unique(np.asarray(t, dtype=np.int64))
            t = t[~banned[t]]
            part.append((s[:, None] * target_vocab + t[None, :]).ravel())
        flat = np.concatenate(part) if part else np.zeros(0, np.int64)
        k, c = np.unique(flat, return_counts=True)
        keys.append(k)
        counts.append(c)
    k, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    c = np.zeros(k.size, dtype=np.int64)
    np.add.at(c, inverse, np.concatenate(counts))
    return k, c


def translation_probabilities(
    sources,
    targets,
    source_vocab: int,
    target_vocab: int,
    iterations: int = MODEL1_ITERATIONS,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """IBM Model 1 by EM -> (keys s * target_vocab + t ascending, p(t | s)), over the pairs seen
    in some sentence pair. Source id source_vocab is NULL, present in every sentence. The sums run
    over chunks of sentence pairs, so memory grows with the distinct pairs, not the corpus."""

    def chunks():
        for start in range(0, len(sources), chunk):
            part = [
                _position_pairs(s, t, source_vocab, target_vocab)
                for s, t in zip(sources[start : start + chunk], targets[start : start + chunk])
            ]
            # each entry's target position, numbered across the chunk
            first = np.cumsum([0] + [n for _, n in part[:-1]])
            where = [
                np.tile(np.arange(n), k.size // max(n, 1)) + f for (k, n), f in zip(part, first)
            ]
            yield np.concatenate([k for k, _ in part]), np.concatenate(where)

    keys = np.unique(np.concatenate([np.unique(k) for k, _ in chunks()] or [np.zeros(0, np.int64)]))
    src_of = keys // target_vocab
    prob = np.ones(keys.size)  # uniform start: the first E step splits each target evenly
    for _ in range(iterations):
        counts = np.zeros(keys.size)
        for k, position in chunks():
            pair = np.searchsorted(keys, k)
            p = prob[pair]
            # E: a target token's alignment to each source token of its sentence, NULL included
            share = p / np.bincount(position, weights=p)[position]
            counts += np.bincount(pair, weights=share, minlength=keys.size)
        prob = counts / np.bincount(src_of, weights=counts)[src_of]  # M: normalize per source
    return keys, prob


def _position_pairs(source, target, null: int, target_vocab: int) -> tuple[np.ndarray, int]:
    """Every (source position or NULL, target position) of one pair as s * target_vocab + t,
    source-major: (len(source) + 1) * len(target) keys, and len(target)."""
    s = np.append(np.asarray(source, dtype=np.int64), null)
    t = np.asarray(target, dtype=np.int64)
    return (s[:, None] * target_vocab + t[None, :]).ravel(), t.size


# -- the decoder graph -----------------------------------------------------------------------------


def _head_product(graph: onnx.GraphProto, log_probs: str) -> onnx.NodeProto:
    """The output projection: the product that log_probs descends from, along first inputs."""
    producers = {o: n for n in graph.node for o in n.output}
    node = producers[log_probs]
    while node.op_type not in HEAD_PRODUCTS:
        node = producers[node.input[0]]
    return node


def _descendants(graph: onnx.GraphProto, start: onnx.NodeProto) -> list[onnx.NodeProto]:
    reached, out = set(start.output), [start]
    for node in graph.node:
        if node is not start and any(i in reached for i in node.input):
            out.append(node)
            reached.update(node.output)
    return out


def outside_statistics(weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The sums over the whole vocabulary that give, for a hidden state h, the sum and the sum of
    squares of all logits x_j = w_j.h + b_j: sum = (h @ M)[d] + total, squares = h.(h @ M)[:d] +
    2 (h @ M)[d + 1] + total_sq, with M = [W^T W | W^T 1 | W^T b] (d, d + 2). weights (vocab, d)."""
    w = weights.astype(np.float64)
    b = bias.astype(np.float64)
    m = np.concatenate([w.T @ w, w.sum(0)[:, None], (w.T @ b)[:, None]], axis=1)
    return m.astype(np.float32), float(b.sum()), float(b @ b)


def _outside_mass(op, const, own, bias, hidden, batch, vocab: int, d: int, stats) -> str:
    """(batch, group, 1): the estimated log of the probability mass (times the normalizer) of each
    row's tokens outside its list, log(n * exp(mean + var / 2)): the tokens' logits taken as normal
    with the mean and variance of the actual outside logits. These come exactly from sums over the
    vocabulary (outside_statistics, one (d, d + 2) product per row) minus the row's own logits.
    -inf when the list is the whole vocabulary."""
    m, total, total_sq = stats  # outside_statistics of the output projection
    spare = const("shortlist_spare_row", np.zeros((1, d), dtype=np.float32))
    h = op("Concat", [hidden, spare], axis=0)  # (see the spare row of the fp32 product)
    p = op(
        "Slice",
        [
            op("MatMul", [h, const(OUTSIDE_MATRIX, m)]),
            const("shortlist_zero_1", np.array([0], dtype=np.int64)),
            const("shortlist_minus_one", np.array([-1], dtype=np.int64)),
            const("shortlist_zero_1", np.array([0], dtype=np.int64)),
        ],
    )
    axis1 = const("shortlist_axis_1", np.array([1], dtype=np.int64))
    axis2 = const("shortlist_axis_2", np.array([2], dtype=np.int64))

    def column(start, stop):
        return op(
            "Slice",
            [
                p,
                const(f"shortlist_at_{start}", np.array([start], dtype=np.int64)),
                const(f"shortlist_at_{stop}", np.array([stop], dtype=np.int64)),
                axis1,
            ],
        )

    def f32(name, value):
        return const(name, np.array(value, dtype=np.float32))

    quad = op("ReduceSum", [op("Mul", [column(0, d), hidden]), axis1], keepdims=1)  # (rows, 1)
    all_sum = op("Add", [column(d, d + 1), f32("shortlist_bias_total", total)])
    all_sq = op(
        "Add",
        [
            op("Add", [quad, op("Mul", [column(d + 1, d + 2), f32("shortlist_two", 2.0)])]),
            f32("shortlist_bias_total_sq", total_sq),
        ],
    )
    per_row = op(
        "Concat",
        [
            batch,
            const("shortlist_minus_one", np.array([-1], dtype=np.int64)),
            const("shortlist_one_1", np.array([1], dtype=np.int64)),
        ],
        axis=0,
    )
    all_sum, all_sq = (op("Reshape", [x, per_row]) for x in (all_sum, all_sq))  # (batch, group, 1)
    listed = op("Exp", [bias])  # 1 at a candidate, 0 at padding
    x = op("Mul", [own, listed])
    n_out = op(
        "Sub", [f32("shortlist_vocab", float(vocab)), op("ReduceSum", [listed, axis2], keepdims=1)]
    )
    n = op("Max", [n_out, f32("shortlist_one", 1.0)])
    mean = op("Div", [op("Sub", [all_sum, op("ReduceSum", [x, axis2], keepdims=1)]), n])
    square = op(
        "Div", [op("Sub", [all_sq, op("ReduceSum", [op("Mul", [x, x]), axis2], keepdims=1)]), n]
    )
    var = op("Max", [op("Sub", [square, op("Mul", [mean, mean])]), f32("shortlist_zero_f", 0.0)])
    return op(
        "Add", [op("Add", [op("Log", [n_out]), mean]), op("Mul", [var, f32("shortlist_half", 0.5)])]
    )


def add_candidate_head(model: onnx.ModelProto, io: IONames | None = None) -> None:
    """Give the decoder step `model` (fp32 or int8) the candidate inputs (IONames.candidate_*), in
    place. Without candidates (empty inputs) it computes exactly what it did."""
    io = io or IONames()
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    product = _head_product(graph, io.log_probs)
    head = _descendants(graph, product)
    outputs = [io.log_probs, io.top_log_probs, io.top_ids]
    made = {o for n in head for o in n.output}
    graph_outputs = {o.name for o in graph.output}
    if (made & graph_outputs) != set(outputs):
        raise ValueError(f"unexpected decoder head outputs: {sorted(made & graph_outputs)}")

    # then: the head as it was, its outputs renamed (an If's outputs are its own names)
    rename = {o: f"full_{o}" for o in outputs}
    for n in head:
        for i, x in enumerate(n.input):
            n.input[i] = rename.get(x, x)
        for i, x in enumerate(n.output):
            n.output[i] = rename.get(x, x)
    vi = helper.make_tensor_value_info
    kinds = [TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.INT64]
    then = helper.make_graph(
        head, "full_vocabulary", [], [vi(rename[o], t, None) for o, t in zip(outputs, kinds)]
    )

    new_inits: list[onnx.TensorProto] = []

    def const(name, array):
        if name not in inits and all(t.name != name for t in new_inits):
            new_inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    # What the list head reads of the output projection, and the per-batch state it gathers.
    ids = io.candidate_ids
    if product.op_type == "MatMul":  # fp32: MatMul(h, Transpose(table (vocab, d)))
        producers = {o: n for n in graph.node for o in n.output}
        transpose = producers.get(product.input[1])
        if transpose is None or transpose.op_type != "Transpose" or transpose.input[0] not in inits:
            raise ValueError("the fp32 output projection is not MatMul(h, Transpose(table))")
        table = transpose.input[0]
        vocab, d = inits[table].dims
        weights = numpy_helper.to_array(inits[table]).astype(np.float64)
        state_types = [TensorProto.FLOAT]
    else:  # int8: MatMulIntegerToFloat(q, W (d, vocab) int8, row scales, column scales, zero point)
        if len(product.input) > 5 and product.input[5]:
            raise ValueError("the int8 output projection has a weight zero point: not supported")
        weight = numpy_helper.to_array(inits[product.input[1]])
        table = const(f"{product.input[1]}_rows", np.ascontiguousarray(weight.T))
        vocab, d = weight.shape[1], weight.shape[0]
        column_scales = numpy_helper.to_array(inits[product.input[3]]).astype(np.float64)
        weights = weight.T.astype(np.float64) * column_scales[:, None]  # (vocab, d), dequantized
        state_types = [TensorProto.INT8, TensorProto.FLOAT]
    pre_softmax, after = _head_vectors(head, product, inits, vocab)
    logit_bias = np.zeros(vocab)
    for vector in pre_softmax:
        logit_bias += numpy_helper.to_array(inits[vector]).astype(np.float64)
    stats = outside_statistics(weights, logit_bias)
    state_types += [TensorProto.FLOAT] * len(pre_softmax)
    state_types += [TensorProto.INT64, TensorProto.INT64] + [TensorProto.FLOAT] * len(after)
    # weight rows (d, n), int8 scales (n,), pre-softmax vectors (batch, width), the per-row index
    # (batch, group, width), each row's token ids (rows, width), post-softmax vectors (batch, width)
    state_ranks = [2] + [1] * (len(state_types) - 3 - len(pre_softmax) - len(after))
    state_ranks += [2] * len(pre_softmax) + [3, 2] + [2] * len(after)
    state_in = [io.state_input(i) for i in range(len(state_types))]
    state_out = [io.state_output(i) for i in range(len(state_types))]
    empty = [
        const(f"shortlist_empty_{t}_{r}", np.zeros((0,) * r, helper.tensor_dtype_to_np_dtype(t)))
        for t, r in zip(state_types, state_ranks)
    ]

    minus_one = const("shortlist_minus_one", np.array([-1], dtype=np.int64))
    axis1 = const("shortlist_axis_1", np.array([1], dtype=np.int64))

    def fresh_state(b: _Branch) -> list[str]:
        """The batch's state, from candidate_ids and candidate_rows: the gathered weight rows
        (d, n) (int8: and their column scales), the pre-softmax vectors at each sentence's own
        token ids (batch, width), each row's positions of its sentence's candidates in the union
        (batch, group, width: the index of the per-row gather), each row's token ids (rows, width)
        and the post-softmax vectors at the sentence's ids (batch, width). Everything per row is
        gathered here once, not at every step."""
        rows = b.op("Transpose", [b.op("Gather", [table, ids], axis=0)], perm=[1, 0])  # (d, n)
        state = [rows]
        if product.op_type != "MatMul":
            state.append(b.op("Gather", [product.input[3], ids], axis=0))
        own_ids = b.op("Gather", [ids, io.candidate_rows], axis=0)  # (batch, width) token ids
        state += [b.op("Gather", [v, own_ids], axis=0) for v in pre_softmax]
        batch = b.op("Shape", [io.attention_mask], end=1)
        group = b.op("Div", [b.op("Shape", [io.input_ids], end=1), batch])
        width = b.op("Shape", [io.candidate_rows], start=1)
        per_row_shape = b.op("Concat", [batch, group, width], axis=0)
        index = b.op("Expand", [b.op("Unsqueeze", [io.candidate_rows, axis1]), per_row_shape])
        row_ids = b.op(
            "Reshape",
            [
                b.op("Expand", [b.op("Unsqueeze", [own_ids, axis1]), per_row_shape]),
                b.op("Concat", [minus_one, width], axis=0),
            ],
        )
        return [*state, index, row_ids, *(b.op("Gather", [v, own_ids], axis=0) for v in after)]

    def list_head(b: _Branch, state: list[str]) -> list[str]:
        """log_probs, top log-probs and top ids over each row's own candidates, from the state."""
        rows, state = state[0], state[1:]
        if product.op_type == "MatMul":
            # One spare row of zeros: ONNX Runtime multiplies a single row by a non-constant matrix
            # on another kernel (a vector product) whose sums round differently; with two rows or
            # more every row's logits are the same bits whatever the number of rows.
            spare = const("shortlist_spare_row", np.zeros((1, d), dtype=np.float32))
            h = b.op("Concat", [product.input[0], spare], axis=0)
            logits = b.op(
                "Slice",
                [
                    b.op("MatMul", [h, rows]),
                    const("shortlist_zero_1", np.array([0], dtype=np.int64)),
                    const("shortlist_minus_one", np.array([-1], dtype=np.int64)),
                    const("shortlist_zero_1", np.array([0], dtype=np.int64)),
                ],
            )
            hidden = product.input[0]
        else:
            scales, state = state[0], state[1:]
            logits = b.op(
                "MatMulIntegerToFloat",
                [product.input[0], rows, product.input[2], scales, *product.input[4:]],
                domain="com.microsoft",
            )
            # The float hidden state the int8 logits stand for: (q - zero point) * its row scale.
            hidden = b.op("Cast", [product.input[0]], to=TensorProto.FLOAT)
            if len(product.input) > 4 and product.input[4]:
                hidden = b.op(
                    "Sub", [hidden, b.op("Cast", [product.input[4]], to=TensorProto.FLOAT)]
                )
            hidden = b.op("Mul", [hidden, product.input[2]])
        # Vectors over the vocabulary added to the logits before the softmax (a bias such as
        # final_logits_bias) and to the log-probs after it (a converted Marian's <pad> suppression),
        # at each sentence's own token ids.
        before_at = state[: len(pre_softmax)]
        index, row_ids = state[len(pre_softmax)], state[len(pre_softmax) + 1]
        after_at = state[len(pre_softmax) + 2 :]

        # (rows, n) -> (batch, group, n) -> each row's own candidates (batch, group, width)
        batch = b.op("Shape", [io.attention_mask], end=1)
        n_ids = b.op("Shape", [ids])
        width = b.op("Shape", [io.candidate_rows], start=1)
        grouped = b.op("Reshape", [logits, b.op("Concat", [batch, minus_one, n_ids], axis=0)])
        group = b.op("Shape", [grouped], start=1, end=2)
        own = b.op("GatherElements", [grouped, index], axis=2)
        for at_own in before_at:  # (the same sums as adding it to the union's logits)
            own = b.op("Add", [own, b.op("Unsqueeze", [at_own, axis1])])
        bias = b.op("Unsqueeze", [io.candidate_bias, axis1])  # (batch, 1, width): 0 or -inf
        outside = _outside_mass(b.op, const, own, bias, hidden, batch, vocab, d, stats)
        own = b.op("Add", [own, bias])
        # The outside estimate goes first, in a block of WIDTH_MULTIPLE columns of its own, so that
        # the row's own values keep their positions and vector blocks whatever the widest row.
        fill_width = np.array([WIDTH_MULTIPLE - 1], dtype=np.int64)
        filler = b.op(
            "Expand",
            [
                const("shortlist_filler", np.full((1, 1, WIDTH_MULTIPLE - 1), -np.inf, np.float32)),
                b.op("Concat", [batch, group, const("shortlist_filler_width", fill_width)], axis=0),
            ],
        )
        own = b.op("Concat", [outside, filler, own], axis=2)
        flat_shape = b.op("Concat", [minus_one, width], axis=0)
        block = const("shortlist_block", np.array([WIDTH_MULTIPLE], dtype=np.int64))
        wider = b.op("Concat", [minus_one, b.op("Add", [width, block])], axis=0)
        log_probs = b.op("LogSoftmax", [b.op("Reshape", [own, wider])], axis=-1)
        end = const("shortlist_end", np.array([np.iinfo(np.int64).max], dtype=np.int64))
        log_probs = b.op("Slice", [log_probs, block, end, axis1])  # (rows, width): own columns
        if after_at:  # added per sentence: (rows, width) -> (batch, group, width) and back
            grouped_shape = b.op("Concat", [batch, group, width], axis=0)
            log_probs = b.op("Reshape", [log_probs, grouped_shape])
            for x in after_at:
                log_probs = b.op("Add", [log_probs, b.op("Unsqueeze", [x, axis1])])
            log_probs = b.op("Reshape", [log_probs, flat_shape])
        top = b.op("TopK", [log_probs, io.top_k], axis=-1, largest=1, sorted=1)
        b.nodes[-1].output[:] = [top, f"{top}_where"]
        return [log_probs, top, b.op("GatherElements", [row_ids, f"{top}_where"], axis=1)]

    # The list's branch: an If on whether the state was given. Without it (the first step of a
    # batch) the branch gathers it and returns it (state outputs); with it, the step reads it and
    # returns empty state outputs. The runtime feeds a batch's state back until its candidates
    # change, so a step does not gather the same weight rows again.
    fresh, cached = _Branch("shortlist_fresh"), _Branch("shortlist_cached")
    computed = fresh_state(fresh)
    fresh_outputs = [*list_head(fresh, computed), *computed]
    cached_outputs = [*list_head(cached, state_in), *(cached.op("Identity", [e]) for e in empty)]
    types = kinds + state_types

    def branch(b: _Branch, results: list[str], tag: str) -> onnx.GraphProto:
        outs = [f"{tag}_{i}" for i in range(len(results))]
        b.rename(dict(zip(results, outs)))
        return helper.make_graph(b.nodes, tag, [], [vi(o, t, None) for o, t in zip(outs, types)])

    short = _Branch("shortlist_list")
    zero = const("shortlist_zero", np.array(0, dtype=np.int64))
    short.op(
        "If",
        [short.op("Equal", [short.op("Size", [state_in[0]]), zero])],  # no state given
        outputs=[f"short_{o}" for o in [*outputs, *state_out]],
        then_branch=branch(fresh, fresh_outputs, "shortlist_fresh_out"),
        else_branch=branch(cached, cached_outputs, "shortlist_cached_out"),
    )
    otherwise = helper.make_graph(
        short.nodes,
        "candidates",
        [],
        [vi(f"short_{o}", t, None) for o, t in zip([*outputs, *state_out], types)],
    )
    # the whole vocabulary's branch returns empty state outputs too
    then.node.extend(
        helper.make_node("Identity", [e], [f"full_{s}"]) for e, s in zip(empty, state_out)
    )
    then.output.extend(vi(f"full_{s}", t, None) for s, t in zip(state_out, state_types))

    graph.initializer.extend(new_inits)
    size = helper.make_node("Size", [ids], ["shortlist_size"], name="shortlist_size")
    full = helper.make_node(
        "Equal", ["shortlist_size", zero], ["shortlist_off"], name="shortlist_off"
    )
    branch_node = helper.make_node(
        "If",
        ["shortlist_off"],
        [*outputs, *state_out],
        name="shortlist_if",
        then_branch=then,
        else_branch=otherwise,
    )
    kept = [n for n in graph.node if id(n) not in {id(h) for h in head}]
    del graph.node[:]
    graph.node.extend([*kept, size, full, branch_node])
    graph.input.extend(
        [
            vi(io.candidate_ids, TensorProto.INT64, ["candidates"]),
            vi(io.candidate_rows, TensorProto.INT64, ["batch", "width"]),
            vi(io.candidate_bias, TensorProto.FLOAT, ["batch", "width"]),
        ]
    )
    # The state inputs are optional: each defaults to an empty initializer (the first step's case),
    # so callers that never feed it (the browser page, one-off steps) get what they got before.
    for name, t, r in zip(state_in, state_types, state_ranks):
        dims = [f"{name}_{k}" for k in range(r)]
        graph.input.append(vi(name, t, dims))
        graph.initializer.append(
            numpy_helper.from_array(np.zeros((0,) * r, helper.tensor_dtype_to_np_dtype(t)), name)
        )
    for name, t, r in zip(state_out, state_types, state_ranks):
        graph.output.append(vi(name, t, [f"{name}_{k}" for k in range(r)]))
    for o in graph.output:  # (rows, vocab) without candidates, (rows, width) with them
        if o.name == io.log_probs:
            o.type.tensor_type.shape.dim[1].ClearField("dim_value")
            o.type.tensor_type.shape.dim[1].dim_param = "log_probs_width"


class _Branch:
    """Nodes of one branch of the shortlist head, named apart by a prefix."""

    def __init__(self, prefix: str):
        self.prefix, self.nodes = prefix, []

    def op(self, op_type, inputs, domain="", outputs=None, **attrs) -> str:
        name = f"{self.prefix}_{len(self.nodes)}_{op_type.lower()}"
        self.nodes.append(
            helper.make_node(
                op_type, inputs, outputs or [name], name=name, domain=domain or None, **attrs
            )
        )
        return self.nodes[-1].output[0]

    def rename(self, names: dict[str, str]) -> None:
        for n in self.nodes:
            n.output[:] = [names.get(x, x) for x in n.output]
            n.input[:] = [names.get(x, x) for x in n.input]


def _head_vectors(head, product, inits, vocab: int) -> tuple[list[str], list[str]]:
    """The vectors over the vocabulary that the head adds to the logits before its softmax (a bias
    such as final_logits_bias) and to the log-probs after it (a converted Marian's <pad>
    suppression), by initializer name."""
    before, after, softmax_seen = [], [], False
    for n in head:
        if n.op_type == "LogSoftmax":
            softmax_seen = True
        if n.op_type == "Add" and n is not product:
            vector = next(
                (x for x in n.input if x in inits and list(inits[x].dims) == [vocab]), None
            )
            if vector:
                (after if softmax_seen else before).append(vector)
    return before, after


# -- the package -----------------------------------------------------------------------------------


def read_pairs(corpus, source_tokenizer, target_tokenizer) -> tuple[list, list]:
    """A TSV of sentence pairs -> (source ids, target ids) per pair, as the package tokenizes."""
    from traductor.training.data import read_tsv

    pairs, _ = read_tsv(corpus)
    src = [e.ids for e in source_tokenizer.encode_batch([p.source for p in pairs])]
    tgt = [e.ids for e in target_tokenizer.encode_batch([p.target for p in pairs])]
    return src, tgt


def model_translations(model_dir, corpus) -> tuple[list, list]:
    """The package's own greedy translations (default variant, whole vocabulary) of the corpus'
    sources -> (source ids, output ids) per decoded sentence, as the decoder saw and produced them
    (a long source split into sentences gives several; the output's ids are the model's, not a
    re-tokenization of its text)."""
    from traductor.runtime import TranslationOptions, Translator
    from traductor.training.data import read_tsv

    pairs, _ = read_tsv(corpus)
    tr = Translator(model_dir, shortlist=False)
    plan = tr.plan([p.source for p in pairs], beam_size=1)
    hyps = tr.translate_ids(plan.sources, TranslationOptions(beam_size=1))
    eos = tr.config.special_tokens.eos_id
    sources = [s[:-1] if s and s[-1] == eos else s for s in plan.sources]
    return sources, [h[0].tokens for h in hyps]


def gate(model_dir, test_corpus) -> tuple[dict, list[str]]:
    """Translate the test corpus with and without the shortlist, every variant, greedy and beam 4
    -> ({"int8 beam4": {"agreement", "bleu", "bleu_full"}, ...}, the failures as sentences)."""
    from pathlib import Path

    import sacrebleu

    from traductor.runtime import Translator
    from traductor.runtime.package import read_config
    from traductor.training.data import read_tsv

    pairs, _ = read_tsv(test_corpus)
    src, refs = [p.source for p in pairs], [[p.target for p in pairs]]
    figures, problems = {}, []
    for variant in read_config(model_dir).variants:
        if not (Path(model_dir) / read_config(model_dir).variants[variant].decoder).is_file():
            continue
        tr = Translator(model_dir, variant=variant, intra_threads=None)
        for beam in GATE_SEARCHES:
            tr.use_shortlist = False
            full = tr.translate(src, beam_size=beam)
            tr.use_shortlist = True
            short = tr.translate(src, beam_size=beam)
            agreement = sum(a == b for a, b in zip(full, short)) / len(src)
            bleu_full = sacrebleu.corpus_bleu(full, refs).score
            bleu = sacrebleu.corpus_bleu(short, refs).score
            name = f"{variant} beam{beam}"
            figures[name] = {
                "agreement": round(agreement, 4),
                "bleu": round(bleu, 2),
                "bleu_full": round(bleu_full, 2),
            }
            if agreement < MIN_AGREEMENT or abs(bleu - bleu_full) > MAX_BLEU_CHANGE:
                problems.append(
                    f"{name}: {agreement:.1%} of {len(src)} test sentences as with the whole "
                    f"vocabulary (at least {MIN_AGREEMENT:.0%}), BLEU {bleu_full:.2f} -> {bleu:.2f}"
                    f" (at most {MAX_BLEU_CHANGE} apart)"
                )
    return figures, problems


def add_shortlist(
    model_dir,
    corpus,
    per_token: int = PER_TOKEN,
    frequent: int = FREQUENT,
    corpus_name: str | None = None,
    test_corpus=None,
    method: str = "alignment",
    self_translations: bool = False,
) -> Shortlist:
    """Build the shortlist of the package at model_dir from a TSV corpus and add it in place: the
    table, the candidate inputs of every variant's decoder (ORT-format copies keep the whole
    vocabulary), config.json (format 8) and the manifest. Returns the table.

    method: how target tokens are ranked per source token (METHODS). self_translations: also count
    the package's own translations of the corpus' sources (`model_translations`; costs one
    translation of the corpus), what the gate compares against.

    test_corpus: a TSV of held-out pairs for the gate (`gate`). The package is edited in a staged
    copy, and a table that fails is refused with the figures (ExportError); the package is then
    left as it was. The figures are kept in config.json (shortlist.gate)."""
    import shutil
    import tempfile
    from pathlib import Path

    if method not in METHODS:
        raise ValueError(f"invalid method={method!r}: one of {', '.join(METHODS)}")
    table_options = (per_token, frequent, method, self_translations)
    if test_corpus is None:
        return _add_shortlist(model_dir, corpus, table_options, corpus_name)
    from traductor.runtime.package import CONFIG_FILE, read_config, write_manifest

    from .gates import ExportError

    model_dir = Path(model_dir)
    with tempfile.TemporaryDirectory(dir=model_dir.parent) as tmp:
        staged = Path(tmp) / model_dir.name
        shutil.copytree(model_dir, staged)
        table = _add_shortlist(staged, corpus, table_options, corpus_name)
        figures, problems = gate(staged, test_corpus)
        if problems:
            raise ExportError("the shortlist fails its gate: " + "; ".join(problems))
        from dataclasses import replace

        config = read_config(staged)
        config = replace(config, shortlist=replace(config.shortlist, gate=figures))
        (staged / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
        write_manifest(staged)
        for f in staged.iterdir():
            if not (model_dir / f.name).is_file() or _differ(f, model_dir / f.name):
                shutil.copy2(f, model_dir / f.name)
    return table


def _differ(a, b) -> bool:
    return a.stat().st_size != b.stat().st_size or a.read_bytes() != b.read_bytes()


def _add_shortlist(model_dir, corpus, table_options, corpus_name: str | None) -> Shortlist:
    from pathlib import Path

    from tokenizers import Tokenizer

    from traductor.runtime.package import read_config

    per_token, frequent, method, self_translations = table_options
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    source = Tokenizer.from_file(str(model_dir / config.tokenizers.source))
    target = Tokenizer.from_file(str(model_dir / config.tokenizers.target))
    src, tgt = read_pairs(corpus, source, target)
    described = corpus_name or Path(corpus).name
    if self_translations:  # before the decoders change: the whole-vocabulary graphs translate
        more_src, more_tgt = model_translations(model_dir, corpus)
        src, tgt = src + more_src, tgt + more_tgt
        described += " + the model's greedy translations of its sources"
    st = config.special_tokens
    table = build_table(
        src,
        tgt,
        config.dims.vocab_size,
        config.dims.output_vocab_size,
        per_token,
        frequent,
        always=(st.eos_id,),
        never=tuple({st.pad_id, st.bos_id} - {st.eos_id}),
        method=method,
    )
    # ShortlistSettings has no field for the method: the corpus description names it
    install_table(model_dir, table, per_token, frequent, f"{described} ({method})")
    return table


def install_table(model_dir, table: Shortlist, per_token: int, frequent: int, corpus: str) -> None:
    """Put a built table into the package at model_dir: every decoder (ORT-format copies aside)
    gets the candidate inputs (once), then shortlist.npz, config.json `shortlist` (format 8) and
    the manifest. No gate: callers run it (add_shortlist) or say why not."""
    from dataclasses import replace
    from pathlib import Path

    from traductor.runtime.package import (
        CONFIG_FILE,
        FORMAT_VERSION,
        ORT_SUFFIX,
        SHORTLIST_FILE,
        ShortlistSettings,
        read_config,
        write_manifest,
    )

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    for name, variant in config.variants.items():
        path = model_dir / variant.decoder
        if name.endswith(ORT_SUFFIX) or not path.is_file():
            continue
        graph = onnx.load(str(path))
        if any(i.name == config.io.candidate_ids for i in graph.graph.input):
            if not any(t.name == OUTSIDE_MATRIX for t in graph.graph.initializer):
                from .gates import ExportError

                raise ExportError(
                    f"{path.name} has the shortlist head of an earlier traductor, which normalizes"
                    " over the list alone; export or convert the model again, then add the"
                    " shortlist"
                )
            continue  # done before: only the table changes
        add_candidate_head(graph, config.io)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(path))
    table.save(model_dir / SHORTLIST_FILE)
    settings = ShortlistSettings(SHORTLIST_FILE, per_token, frequent, corpus)
    config = replace(config, shortlist=settings, format_version=FORMAT_VERSION)
    (model_dir / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
    write_manifest(model_dir)


def main(args) -> int:
    """`traductor shortlist MODEL --corpus TSV [--test TSV]`."""
    import sys

    table = add_shortlist(
        args.model,
        args.corpus,
        args.per_token,
        args.frequent,
        test_corpus=args.test,
        method=args.method,
        self_translations=args.self_translations,
    )
    from traductor.runtime.package import read_config

    config = read_config(args.model)
    sizes = np.diff(table.offsets)
    print(
        f"{args.model}: shortlist of {table.targets.size} entries ({sizes.mean():.1f} per source "
        f"token, {table.frequent.size} frequent)",
        file=sys.stderr,
    )
    for name, f in config.shortlist.gate.items():
        print(
            f"  {name}: {f['agreement']:.1%} as with the whole vocabulary, BLEU {f['bleu_full']} "
            f"-> {f['bleu']}",
            file=sys.stderr,
        )
    return 0
