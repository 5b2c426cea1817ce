"""The two exported graphs as small torch modules over the trained Transformer, and their export."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from traductor.runtime.package import IONames
from traductor.training.model import Transformer


class EncoderGraph(nn.Module):
    """input_ids, attention_mask (batch, src_len) -> cross-attention K/V of every decoder layer.

    The decoder never recomputes them: they are the only thing it needs from the source.
    """

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, ...]:
        mask = attention_mask != 0
        memory = self.model.encode(input_ids, mask)
        return tuple(t for kv in self.model.cross_kv(memory) for t in kv)


class DecoderGraph(nn.Module):
    """One decoding step with a KV cache; the same graph serves step 0 (past_len = 0) and every later step.

    input_ids (rows, 1); position (1,) the absolute position of that token, given explicitly so a
    preallocated cache can be used later; attention_mask (batch, src_len); past self K/V per layer
    (rows, heads, past_len, head_dim); cross K/V per layer (batch, heads, src_len, head_dim).
    rows = batch * group: each run of `group` rows (the beams of one sentence) shares its cross K/V.
    Returns log-probabilities (rows, vocab) and present self K/V (rows, heads, past_len + 1, head_dim).
    """

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, position: Tensor, attention_mask: Tensor, past: tuple[Tensor, ...], cross: tuple[Tensor, ...]):
        n = len(self.model.decoder_layers)
        self_kv = [(past[2 * i], past[2 * i + 1]) for i in range(n)]
        cross_kv = [(cross[2 * i], cross[2 * i + 1]) for i in range(n)]
        logits, present = self.model.decode_step(input_ids, position, attention_mask != 0, self_kv, cross_kv)
        log_probs = logits[:, -1].float().log_softmax(-1)
        return (log_probs, *(t for kv in present for t in kv))


def _example_inputs(model: Transformer, batch: int = 2, src_len: int = 7, past_len: int = 5, group: int = 3):
    """Batch 2, 3 rows per sentence and odd lengths: an example of size 1 would fix that axis to 1."""
    cfg = model.cfg
    ids = torch.randint(4, cfg.vocab_size, (batch, src_len))
    mask = torch.ones(batch, src_len, dtype=torch.long)
    kv = lambda b, t: torch.randn(b, cfg.n_heads, t, cfg.head_dim)  # noqa: E731
    n = cfg.n_decoder_layers
    past = tuple(kv(batch * group, past_len) for _ in range(2 * n))
    cross = tuple(kv(batch, src_len) for _ in range(2 * n))
    return ids, mask, torch.randint(4, cfg.vocab_size, (batch * group, 1)), torch.tensor([past_len]), past, cross


def export_graphs(model: Transformer, out_dir: Path, io: IONames, encoder_file: str, decoder_file: str) -> None:
    model = model.eval()
    n = model.cfg.n_decoder_layers
    src_ids, src_mask, tgt_ids, position, past, cross = _example_inputs(model)
    B = torch.export.Dim("batch", min=1, max=4096)
    R = torch.export.Dim("rows", min=1, max=4096 * 64)  # decoder rows = batch * beams
    S = torch.export.Dim("src_len", min=1, max=model.cfg.max_len)
    T = torch.export.Dim("past_len", min=0, max=4096)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            EncoderGraph(model), (src_ids, src_mask), str(out_dir / encoder_file),
            input_names=[io.input_ids, io.attention_mask], output_names=io.encoder_outputs(n),
            dynamic_shapes=({0: B, 1: S}, {0: B, 1: S}), dynamo=True, optimize=True, verbose=False,
            external_data=False,
        )
        kv_self, kv_cross = {0: R, 2: T}, {0: B, 2: S}
        torch.onnx.export(
            DecoderGraph(model), (tgt_ids, position, src_mask, past, cross), str(out_dir / decoder_file),
            input_names=io.decoder_inputs(n), output_names=io.decoder_outputs(n),
            dynamic_shapes=({0: R}, None, {0: B, 1: S}, tuple(kv_self for _ in past), tuple(kv_cross for _ in cross)),
            dynamo=True, optimize=True, verbose=False, external_data=False,
        )
    add_top_k(out_dir / decoder_file, io)


def add_top_k(path: Path, io: IONames) -> None:
    """Append ONNX TopK to the decoder: searches read the k best tokens per row from the graph
    instead of copying (rows, vocab) log-probabilities out and sorting them in numpy."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    g = model.graph
    g.input.append(helper.make_tensor_value_info(io.top_k, TensorProto.INT64, [1]))
    g.node.append(helper.make_node("TopK", [io.log_probs, io.top_k], [io.top_log_probs, io.top_ids], axis=-1, largest=1, sorted=1, name="top_k"))
    g.output.append(helper.make_tensor_value_info(io.top_log_probs, TensorProto.FLOAT, ["rows", "top_k"]))
    g.output.append(helper.make_tensor_value_info(io.top_ids, TensorProto.INT64, ["rows", "top_k"]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
