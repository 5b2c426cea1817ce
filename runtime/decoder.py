"""The KV-cache step decoder that the searches drive, on top of the ONNX graphs."""

from __future__ import annotations

import numpy as np

from .onnx_model import OnnxSeq2Seq


class OnnxStepDecoder:
    """Holds the running batch's cache: cross K/V (from the encoder, once) and self K/V (grows).

    `keep(rows)` selects/reorders rows with one gather on the batch axis per cache tensor: this is
    how finished sentences leave the batch and how beam search reorders its beams.
    """

    def __init__(self, model: OnnxSeq2Seq, input_ids: np.ndarray, attention_mask: np.ndarray, repeat: int = 1):
        """input_ids/attention_mask (batch, src_len); repeat > 1 gives each sentence `repeat` rows (beams)."""
        self.model = model
        cross = model.encode(input_ids, attention_mask)
        if repeat > 1:
            # Expanded once for the whole search; reordering later only touches the self-attention cache
            # and the rows of finished sentences.
            cross = [np.repeat(c, repeat, axis=0) for c in cross]
            attention_mask = np.repeat(attention_mask, repeat, axis=0)
        self.cross = cross  # per layer key, value: (rows, heads, src_len, head_dim)
        self.mask = attention_mask  # (rows, src_len)
        self.past = model.empty_past(attention_mask.shape[0])  # (rows, heads, past_len, head_dim)
        self.position = 0
        self.repeat = repeat

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    def step(self, tokens: np.ndarray) -> np.ndarray:
        log_probs, self.past = self.model.step(tokens.reshape(-1, 1), self.position, self.mask, self.past, self.cross)
        self.position += 1
        return log_probs

    def keep(self, rows: np.ndarray) -> None:
        self.past = [p[rows] for p in self.past]
        # Beam reorders within a sentence leave cross K/V unchanged (all beams of a sentence share
        # them), so only gather them when the set of sentences changes.
        if self.repeat > 1 and _same_blocks(rows, self.repeat, self.rows):
            return
        self.cross = [c[rows] for c in self.cross]
        self.mask = self.mask[rows]


def _same_blocks(rows: np.ndarray, k: int, n_rows: int) -> bool:
    """True when rows keeps every sentence block (row // k) in place: a pure beam reorder."""
    return rows.size == n_rows and bool(np.all(rows // k == np.arange(n_rows) // k))
