"""Export of the two graphs: the encoder traced by torch.onnx, the decoder step built by fused.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from traductor.runtime.package import IONames
from traductor.training.model import Transformer

from .fused import build_decoder


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


def _example_inputs(model: Transformer, batch: int = 2, src_len: int = 7):
    """Batch 2 and an odd length: an example of size 1 would fix that axis to 1."""
    ids = torch.randint(4, model.cfg.vocab_size, (batch, src_len))
    return ids, torch.ones(batch, src_len, dtype=torch.long)


def export_graphs(model: Transformer, out_dir: Path, io: IONames, encoder_file: str, decoder_file: str) -> None:
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
            EncoderGraph(model), (src_ids, src_mask), str(out_dir / encoder_file),
            input_names=[io.input_ids, io.attention_mask], output_names=io.encoder_outputs(n),
            dynamic_shapes=({0: B, 1: S}, {0: B, 1: S}), dynamo=True, optimize=True, verbose=False,
            external_data=False,
        )
        onnx.save(build_decoder(model, io), str(out_dir / decoder_file))
