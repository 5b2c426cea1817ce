"""A lexical vocabulary shortlist: each sentence's candidate target tokens, and the decoder inputs
that score only them.

The table (shortlist.npz, built by export/shortlist.py) holds, for each source token, the target
tokens likeliest to appear in its translations, plus the most frequent target tokens. A sentence's
candidates are the frequent tokens and those of its own source tokens: they depend on nothing else
in the batch (Bergamot's shortlist is the union over a batch, which makes a sentence's translation
depend on its neighbours). The decoder step computes the logits of the union of the batch's
candidates (one product over gathered weight rows), then gathers each row's own candidates into
their own positions, ascending, padded to a multiple of WIDTH_MULTIPLE with -inf, and normalizes
over them (as Marian does: log-probs are over the shortlist). A row's numbers then depend only on
its own candidates, whatever the union: each logit is its own dot product, and the softmax of a row
sees its values at the same positions followed by padding, whose exp() adds exact zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .package import ModelError

# Row widths are padded to a multiple of this: ONNX Runtime's softmax and top-k kernels then see a
# row's own values at the same positions and in the same vector blocks (AVX-512: 16 floats, 4
# accumulators) whatever the batch's widest row.
WIDTH_MULTIPLE = 64


@dataclass(frozen=True)
class Candidates:
    """The decoder's candidate inputs for one batch of sentences (see IONames.candidate_*)."""

    ids: np.ndarray  # (n,) int64: the union of the sentences' candidates, ascending
    rows: np.ndarray  # (batch, width) int64: each sentence's own candidates, positions in ids
    bias: np.ndarray  # (batch, width) float32: 0 at a candidate, -inf at padding

    def of_sentences(self, sentences: np.ndarray) -> Candidates:
        """The candidates of these sentences of the batch, in this order (rows leave or reorder
        with them; the union stays, which changes no row's result)."""
        return Candidates(self.ids, self.rows[sentences], self.bias[sentences])

    @staticmethod
    def empty(batch: int) -> Candidates:
        """Inputs that ask the decoder for the whole vocabulary."""
        return Candidates(
            np.zeros(0, dtype=np.int64),
            np.zeros((batch, 0), dtype=np.int64),
            np.zeros((batch, 0), dtype=np.float32),
        )


class StepState:
    """A shortlist head's per-batch state: the weight rows of the batch's candidates and what else
    depends only on the candidates (docs/format.md). The decoder returns it from the first step of
    a batch; the step decoders feed it back until the candidates change, and reset it then."""

    def __init__(self) -> None:
        self.values: list | None = None


class Shortlist:
    """The table: offsets (source_vocab + 1,) into targets (the candidates of each source token,
    ascending), and frequent (the tokens every sentence may produce)."""

    def __init__(self, offsets: np.ndarray, targets: np.ndarray, frequent: np.ndarray):
        self.offsets = offsets.astype(np.int64)
        self.targets = targets.astype(np.int64)
        self.frequent = np.unique(frequent.astype(np.int64))

    @classmethod
    def load(cls, path: Path) -> Shortlist:
        try:
            with np.load(path, allow_pickle=False) as z:
                table = cls(z["offsets"], z["targets"], z["frequent"])
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"{path.name} is not a readable shortlist: {e}") from e
        o = table.offsets
        if (
            o.ndim != 1
            or o.size < 2
            or o[0] != 0
            or o[-1] != table.targets.size
            or np.any(o[1:] < o[:-1])
        ):
            raise ModelError(f"{path.name}: malformed offsets")
        return table

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:  # a file object: np.savez would append .npz to the name
            np.savez(
                f,
                offsets=self.offsets,
                targets=self.targets.astype(np.int32),
                frequent=self.frequent.astype(np.int32),
            )

    def sentence(self, source_ids) -> np.ndarray:
        """One sentence's candidates, ascending."""
        o = self.offsets
        own = [self.targets[o[t] : o[t + 1]] for t in set(source_ids) if 0 <= t < o.size - 1]
        return np.unique(np.concatenate([self.frequent, *own]))

    def candidates(self, sources: list[list[int]], min_width: int = 1) -> Candidates:
        """The decoder inputs for a batch of source id lists. min_width: the most tokens a step
        will ask of a row (top_k), so that a row always has that many entries."""
        own = [self.sentence(s) for s in sources]
        union = np.unique(np.concatenate(own))
        need = max(max(o.size for o in own), min_width)
        width = -(-need // WIDTH_MULTIPLE) * WIDTH_MULTIPLE
        rows = np.zeros((len(own), width), dtype=np.int64)
        bias = np.full((len(own), width), -np.inf, dtype=np.float32)
        for r, o in enumerate(own):
            rows[r, : o.size] = np.searchsorted(union, o)
            bias[r, : o.size] = 0.0
        return Candidates(union, rows, bias)
