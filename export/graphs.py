"""Every graph of a package: the encoder traced by torch.onnx, the decoder step built by fused.py,
the alignment graph, and their int8 versions (quantize.py)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from traductor.runtime.package import INT8_ROWS, IONames, Variant
from traductor.training.model import Transformer

from .fused import alignment_layer, build_decoder
from .quantize import quantize_int8

# The files of each variant a package can hold.
FP32 = Variant("encoder.onnx", "decoder.onnx", align="align.onnx")
INT8 = Variant(
    "encoder.int8.onnx", "decoder.int8.onnx", quantization=INT8_ROWS, align="align.int8.onnx"
)


def quiet_exporters() -> None:
    """The exporter and the quantizer log advice meant for other model families; keep the output
    ours."""
    for name in ("torch.onnx", "torch._export", "torch.onnx._internal.exporter._registration", ""):
        logging.getLogger(name).setLevel(logging.ERROR)


def build_variants(
    model: Transformer, out_dir: Path, io: IONames, int8: bool
) -> dict[str, Variant]:
    """Write the graphs of fp32 (and of int8, quantized from them) into out_dir -> the variants."""
    export_graphs(model, out_dir, io, FP32.encoder, FP32.decoder)
    export_alignment(model, out_dir / FP32.align, io)
    if not int8:
        return {"fp32": FP32}
    quantize_int8(out_dir / FP32.encoder, out_dir / INT8.encoder)
    quantize_int8(out_dir / FP32.decoder, out_dir / INT8.decoder)
    # The alignment graph with an int8 embedding table, then its products quantized like the others.
    staged = out_dir / "align.int8-embedding.onnx"
    export_alignment(model, staged, io, int8_embedding=True)
    quantize_int8(staged, out_dir / INT8.align)
    staged.unlink()
    return {"fp32": FP32, "int8": INT8}


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


class AlignmentGraph(nn.Module):
    """The decoder over a whole target sequence, teacher-forced, returning its cross-attention.

    target_ids (batch, tgt_len): the start token then the tokens of a translation; attention_mask
    (batch, src_len); the encoder's cross K/V per layer -> alignment_weights (batch, layers, heads,
    tgt_len, src_len): row p is the attention while predicting target token p (the end token last).
    `layers` runs up to the alignment layer (config.json `alignment.layer`): the layers above it
    cannot change its weights, so they are not computed. Run only when alignments are asked for
    and the decoding did not record them (beam search), so the decoding graphs stay as they are.
    """

    def __init__(self, model: Transformer, int8_embedding: bool = False):
        super().__init__()
        self.model = model
        # For the int8 package: the target embedding as int8 rows with a scale each (a quarter of
        # the bytes; attention weights move by ~1e-3, argmax alignments not at all in our checks).
        self.table = _Int8Embedding(model.target_embed.weight) if int8_embedding else None

    def forward(self, target_ids: Tensor, attention_mask: Tensor, *cross: Tensor) -> Tensor:
        from traductor.training.model import causal_bias, source_bias

        m = self.model
        positions = torch.arange(target_ids.shape[1], device=target_ids.device)
        x = m.embed_tokens(target_ids, positions, self.table or m.target_embed)
        self_bias = causal_bias(target_ids.shape[1], 0, target_ids.device)
        src_bias = source_bias(attention_mask != 0)
        weights = []
        for i, layer in enumerate(m.decoder_layers[: alignment_layer(len(m.decoder_layers)) + 1]):
            layer.cross_attn.keep_weights = True
            try:
                x, _ = layer(x, None, (cross[2 * i], cross[2 * i + 1]), self_bias, src_bias)
                weights.append(layer.cross_attn.weights)
            finally:
                layer.cross_attn.keep_weights = False
        return torch.stack(weights, dim=1)


class _Int8Embedding(nn.Module):
    def __init__(self, weight: Tensor):
        super().__init__()
        scale = weight.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
        self.register_buffer("q", torch.round(weight.detach() / scale).to(torch.int8))
        self.register_buffer("scale", scale)

    def forward(self, ids: Tensor) -> Tensor:
        return self.q[ids].to(torch.float32) * self.scale[ids]


def export_alignment(
    model: Transformer, out_path: Path, io: IONames, int8_embedding: bool = False
) -> None:
    """The alignment graph through torch.onnx (dynamo), with the package's cross K/V input names."""
    model = model.eval()
    n = model.cfg.n_decoder_layers
    src_ids, src_mask = _example_inputs(model)
    with torch.no_grad():
        cross = [t for kv in model.cross_kv(model.encode(src_ids, src_mask != 0)) for t in kv]
    tgt = torch.randint(4, model.cfg.output_vocab_size, (src_ids.shape[0], 5))
    B = torch.export.Dim("batch", min=1, max=4096)
    S = torch.export.Dim("src_len", min=1, max=model.cfg.max_len)
    T = torch.export.Dim("tgt_len", min=1, max=model.cfg.max_len + 1)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            AlignmentGraph(model, int8_embedding),
            (tgt, src_mask, *cross),
            str(out_path),
            input_names=["target_ids", io.attention_mask, *io.encoder_outputs(n)],
            output_names=["alignment_weights"],
            dynamic_shapes=({0: B, 1: T}, {0: B, 1: S}, tuple({0: B, 2: S} for _ in cross)),
            dynamo=True,
            optimize=True,
            verbose=False,
            external_data=False,
        )
    _strip_debug_info(out_path)


def _strip_debug_info(path: Path) -> None:
    """Drop what torch.onnx records for debugging on each node (stack traces with the exporting
    machine's file paths, module names): the package then holds no local paths, and rebuilding it
    from the same weights anywhere gives the same bytes."""
    import onnx

    m = onnx.load(str(path))
    graphs = [m.graph, *m.functions]
    while graphs:
        g = graphs.pop()
        for node in g.node:
            del node.metadata_props[:]
            node.doc_string = ""
            graphs += [a.g for a in node.attribute if a.HasField("g")] + [
                x for a in node.attribute for x in a.graphs
            ]
        if hasattr(g, "metadata_props"):
            del g.metadata_props[:]
    onnx.save(m, str(path))


def _example_inputs(model: Transformer, batch: int = 2, src_len: int = 7):
    """Batch 2 and an odd length: an example of size 1 would fix that axis to 1."""
    ids = torch.randint(4, model.cfg.vocab_size, (batch, src_len))
    return ids, torch.ones(batch, src_len, dtype=torch.long)


def export_graphs(
    model: Transformer, out_dir: Path, io: IONames, encoder_file: str, decoder_file: str
) -> None:
    """The encoder through torch.onnx (dynamo); the decoder step written directly (see fused.py)."""
    import onnx

    model = model.eval()
    n = model.cfg.n_decoder_layers
    src_ids, src_mask = _example_inputs(model)
    B = torch.export.Dim("batch", min=1, max=4096)
    S = torch.export.Dim("src_len", min=1, max=model.cfg.max_len)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            EncoderGraph(model),
            (src_ids, src_mask),
            str(out_dir / encoder_file),
            input_names=[io.input_ids, io.attention_mask],
            output_names=io.encoder_outputs(n),
            dynamic_shapes=({0: B, 1: S}, {0: B, 1: S}),
            dynamo=True,
            optimize=True,
            verbose=False,
            external_data=False,
        )
        _strip_debug_info(out_dir / encoder_file)
        onnx.save(build_decoder(model, io), str(out_dir / decoder_file))
