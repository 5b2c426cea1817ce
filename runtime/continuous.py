"""Continuous (in-flight) batching for beam search: sentences join a running decoder batch at any step.

A static batch decodes its sentences together from the first step to the last: a sentence that
arrives meanwhile waits for the whole batch, and the batch thins out as its sentences finish.
`ContinuousBeams` keeps one running batch instead. `add()` encodes new sentences and appends their
beams to it; each `step()` advances every running sentence by one token, each at its own step, and
hands back the sentences that are done. A server calls `add()` between steps as requests come in.

Rows at different steps need a decoder graph whose `position` input holds one entry per row: graphs
exported by this version declare it with a dynamic dimension; packages exported earlier take one
position for all rows (`supports_rows_at_different_steps()` is False) and keep static batches. Each
row picks its own positional encoding and writes its new self-attention K/V at its own position in caches that
are right-padded to the longest; the cross K/V of sentences with shorter sources are zero-padded,
and masked. Rows are computed independently (batch invariance, see Translator.translate_ids), and
the beam update of a sentence depends only on its own candidates (`BeamSearch.advance`), so every
sentence gets exactly the hypotheses `BeamSearch.search` gives it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decoder import pad_sources
from .onnx_model import OnnxSeq2Seq
from .search import BeamSearch, Hypothesis, _Beams


def supports_rows_at_different_steps(model: OnnxSeq2Seq) -> bool:
    """True when the package's decoder graph takes one position per row."""
    position = model.config.io.position
    for i in model.decoder.get_inputs():
        if i.name == position:
            return len(i.shape) == 1 and not isinstance(i.shape[0], int)
    return False


@dataclass
class _Running:
    key: object  # the caller's handle for this sentence
    limit: int  # the most tokens it may produce
    beams: _Beams
    step: int = 0  # its rows are rows j*k .. j*k+k-1 of the running batch, j its index in `running`


class ContinuousBeams:
    """A running beam-search batch that sentences join and leave at any step (see the module doc).

    add([(key, source ids with the end token, limit), ...]) -> None
    step() -> [(key, n-best hypotheses), ...] for the sentences that finished at this step
    """

    POOL_FROM = 1 << 16  # floats per cache tensor from which the gather reuses buffers (as OnnxStepDecoder)

    def __init__(self, model: OnnxSeq2Seq, search: BeamSearch, pad_id: int, pad_multiple: int = 8):
        if not supports_rows_at_different_steps(model):
            raise ValueError("this package's decoder graph takes one position for all rows: re-export it for continuous batching")
        self.model, self.search, self.k = model, search, search.k
        self.pad_id, self.pad_multiple = pad_id, pad_multiple
        self.running: list[_Running] = []
        self._reset()
        self._pool: list[np.ndarray] | None = None

    def _reset(self) -> None:
        self.cross: list[np.ndarray] = []
        self.mask = np.zeros((0, 0), dtype=np.int64)
        self.past = self.model.empty_past(0)
        self.tokens = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        """Sentences running."""
        return len(self.running)

    @property
    def rows(self) -> int:
        return len(self.running) * self.k

    def add(self, items: list[tuple[object, list[int], int]]) -> None:
        """Encode these sentences and let them join the running batch at their step 0."""
        if not items:
            return
        ids, mask = pad_sources([s for _, s, _ in items], self.pad_id, self.pad_multiple)
        cross = self.model.encode(ids, mask)
        if self.running:
            width = max(self.mask.shape[1], mask.shape[1])
            self.cross = [np.concatenate([_widen(a, width), _widen(b, width)]) for a, b in zip(self.cross, cross)]
            self.mask = np.concatenate([_widen(self.mask, width), _widen(mask, width)])
            new_rows = len(items) * self.k
            self.past = [np.concatenate([p, np.zeros((new_rows, *p.shape[1:]), dtype=p.dtype)]) for p in self.past]
        else:
            self.cross, self.mask = cross, mask
            self.past = self.model.empty_past(len(items) * self.k)
        self.tokens = np.concatenate([self.tokens, np.full(len(items) * self.k, self.search.bos_id, dtype=np.int64)])
        self.running += [_Running(key, limit, _Beams(self.k)) for key, _, limit in items]

    def step(self) -> list[tuple[object, list[Hypothesis]]]:
        """Advance every running sentence by one token; return those that are done."""
        if not self.running:
            return []
        k, search = self.k, self.search
        widths = np.array([search.width(s.step) for s in self.running])
        position = np.repeat(np.array([s.step for s in self.running], dtype=np.int64), k)
        (vals, ids), present = self.model.step(self.tokens.reshape(-1, 1), position, self.mask, self.past, self.cross,
                                               top_k=int(widths.max()))
        # A smaller width reads the first columns of a larger top-k (best first, ties by id): the
        # same candidates as asking for that width alone.
        advanced: dict[int, tuple[list[int], list[int]] | None] = {}
        for width in np.unique(widths).tolist():
            blocks = np.flatnonzero(widths == width)
            rows = (blocks[:, None] * k + np.arange(k)).ravel()
            first = self.running[blocks[0]].step if width > 2 * k else 1  # width > 2k only at step 0
            beams = [self.running[b].beams for b in blocks]
            total, cand_ids, cand_lps, top = search.candidates(beams, vals[rows, :width], ids[rows, :width], first)
            for j, b in enumerate(blocks.tolist()):
                s = self.running[b]
                advanced[b] = search.advance(s.beams, total[j], cand_ids[j], cand_lps[j], top[j], width, s.step, s.limit)
        done, keep_rows, tokens, still = [], [], [], []
        for b, s in enumerate(self.running):
            kept = advanced[b]
            if kept is None:
                done.append((s.key, search.best(s.beams)))
                continue
            s.step += 1
            keep_rows += [b * k + beam for beam in kept[0]]
            tokens += kept[1]
            still.append(b)
        if not still:
            self.running = []
            self._reset()
            return done
        if len(still) < len(self.running):
            self.cross = [c[still] for c in self.cross]
            self.mask = self.mask[still]
            self.running = [self.running[b] for b in still]
        # The caches only need each row's filled part: the longest running sentence's steps.
        length = max(s.step for s in self.running)
        self.past = self._gather(present, np.array(keep_rows, dtype=np.int64), length)
        self.tokens = np.array(tokens, dtype=np.int64)
        return done

    def _gather(self, present: list[np.ndarray], rows: np.ndarray, length: int) -> list[np.ndarray]:
        """present[rows, :, :length] of every cache tensor, into buffers reused across steps (fresh
        arrays fault their pages in at every step; see OnnxStepDecoder._gather)."""
        shape = (rows.size, present[0].shape[1], length, present[0].shape[3])
        size = int(np.prod(shape))
        trimmed = [p[:, :, :length] if p.shape[2] != length else p for p in present]
        if size < self.POOL_FROM:
            return [np.ascontiguousarray(p[rows]) for p in trimmed]
        if self._pool is None or self._pool[0].size < size:
            self._pool = [np.empty(2 * size, dtype=np.float32) for _ in present]
        return [np.take(p, rows, axis=0, out=b[:size].reshape(shape), mode="clip") for p, b in zip(trimmed, self._pool)]


def _widen(a: np.ndarray, width: int) -> np.ndarray:
    """Zero-pad the source axis (axis 1 of a mask, axis 2 of cross K/V) to `width`."""
    axis = 1 if a.ndim == 2 else 2
    if a.shape[axis] == width:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, width - a.shape[axis])
    return np.pad(a, pad)


__all__ = ["ContinuousBeams", "supports_rows_at_different_steps"]
