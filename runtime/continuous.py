"""Continuous (in-flight) batching for beam search: sentences join a running batch at any step.

A static batch decodes its sentences together from the first step to the last: a sentence that
arrives meanwhile waits for the whole batch, and the batch thins out as its sentences finish.
`ContinuousBeams` keeps one running batch instead. `add()` encodes new sentences and appends their
beams to it; each `step()` advances every running sentence by one token, each at its own step, and
hands back the sentences that are done. A server calls `add()` between steps as requests come in.

Rows at different steps need a decoder graph whose `position` input holds one entry per row: graphs
exported by this version declare it with a dynamic dimension; packages exported earlier take one
position for all rows (`supports_rows_at_different_steps()` is False) and keep static batches. Each
row picks its own positional encoding and writes its new self-attention K/V at its own position in
caches that are right-padded to the longest; the cross K/V of sentences with shorter sources are
zero-padded, and masked. Rows are computed independently (batch invariance, see
Translator.translate_ids), and the beam update of a sentence depends only on its own candidates
(`BeamSearch.advance`), so each sentence gets exactly the hypotheses `BeamSearch.search` gives it.
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
    rows: (
        np.ndarray
    )  # its beams' rows within its block (block j: rows j*k .. j*k+k-1, j its index in `running`)
    step: int = 0


class ContinuousBeams:
    """A running beam-search batch that sentences join and leave at any step (see the module doc).

    add([(key, source ids with the end token, limit), ...]) -> None
    step() -> [(key, n-best hypotheses), ...] for the sentences that finished at this step

    The batch lives in buffers allocated for a capacity and grown by doubling: each layer's self K/V
    (rows, heads, steps, head_dim), bound through IOBinding as both the `past` input and the
    `present` output, so GroupQueryAttention writes each row's new K/V in place at its position and
    copies nothing; the cross K/V (sentences, heads, source width, head_dim) and the mask. Sentence
    j holds rows j*k .. j*k+k-1, in any order: `_Running.rows` maps its beams (in the search's
    order) to them, so a beam that continues itself stays where it is. After a step only the rows
    that changed move: beams that continue another beam of their sentence (dead padding beams take
    any free row, uncopied: their score is -inf, so nothing they compute is ever chosen), and the
    blocks of the last sentences, which move into the slots of those that finished (no other moves).
    """

    def __init__(
        self,
        model: OnnxSeq2Seq,
        search: BeamSearch,
        pad_id: int,
        pad_multiple: int = 8,
        capacity: int = 16,
    ):
        """capacity: sentences the buffers hold at first (they double when more join)."""
        if not supports_rows_at_different_steps(model):
            raise ValueError(
                "this package's decoder graph takes one position for all rows: re-export it for "
                "continuous batching"
            )
        import onnxruntime as ort

        self._ort = ort
        self.model, self.search, self.k = model, search, search.k
        self.pad_id, self.pad_multiple, self._capacity = pad_id, pad_multiple, capacity
        d = model.config.dims
        self._heads, self._head_dim, self._max_steps = d.n_heads, d.head_dim, d.max_len + 1
        self.running: list[_Running] = []
        self._cache: list[
            np.ndarray
        ] = []  # (row capacity, heads, step capacity, head_dim) per layer and K/V
        self._cross: list[np.ndarray] = []  # (sentence capacity, heads, width, head_dim)
        self._mask = np.zeros((0, 0), dtype=np.int64)
        self._tokens = np.zeros(0, dtype=np.int64)
        self._pos = np.zeros(0, dtype=np.int64)
        self._width = search.width(0) if search.min_length > 0 else 2 * search.k
        self._bound = None

    def __len__(self) -> int:
        """Sentences running."""
        return len(self.running)

    @property
    def rows(self) -> int:
        return len(self.running) * self.k

    def _allocate(self, sentences: int, steps: int, width: int) -> None:
        """Grow the buffers (doubling) to hold `sentences` sentences of `steps` steps and sources of
        `width`; what the running sentences hold is kept."""
        n, k = len(self.running), self.k
        cap_s = self._cross[0].shape[0] if self._cross else 0
        cap_t = self._cache[0].shape[2] if self._cache else 0
        cur_w = self._mask.shape[1]
        if sentences > cap_s or steps > cap_t:
            # Room for the model's longest output from the start: np.zeros only maps pages, which a
            # row touches as it fills, while growing later would copy the whole cache.
            cap_s, cap_t = max(cap_s, sentences, self._capacity), self._max_steps
            while cap_s < sentences:
                cap_s *= 2
            old = self._cache
            self._cache = [
                np.zeros((cap_s * k, self._heads, cap_t, self._head_dim), dtype=np.float32)
                for _ in range(2 * self.model.n_layers)
            ]
            filled = max((s.step for s in self.running), default=0)
            for new, c in zip(self._cache, old):
                new[: n * k, :, :filled] = c[: n * k, :, :filled]
            self._tokens = np.resize(self._tokens, cap_s * k)
            self._pos = np.zeros(cap_s * k, dtype=np.int64)
        if cap_s > (self._cross[0].shape[0] if self._cross else 0) or width > cur_w:
            width = max(width, cur_w)
            old, old_mask = self._cross, self._mask
            self._cross = [
                np.zeros((cap_s, self._heads, width, self._head_dim), dtype=np.float32)
                for _ in range(2 * self.model.n_layers)
            ]
            self._mask = np.zeros((cap_s, width), dtype=np.int64)
            for new, c in zip(self._cross, old):
                new[:n, :, :cur_w] = c[:n]
            self._mask[:n, :cur_w] = old_mask[:n]

    def add(self, items: list[tuple[object, list[int], int]]) -> None:
        """Encode these sentences and let them join the running batch at their step 0."""
        if not items:
            return
        ids, mask = pad_sources([s for _, s, _ in items], self.pad_id, self.pad_multiple)
        cross = self.model.encode(ids, mask)
        n, m, w = len(self.running), len(items), mask.shape[1]
        if not self.running:  # an empty batch starts over at the new sources' width
            self._mask = self._mask[:, :0]
            self._cross = [c[:, :, :0] for c in self._cross]
        self._allocate(n + m, 1, w)
        for buf, c in zip(self._cross, cross):
            buf[n : n + m, :, :w] = c
            buf[n : n + m, :, w:] = 0.0
        self._mask[n : n + m, :w] = mask
        self._mask[n : n + m, w:] = 0
        self._tokens[n * self.k : (n + m) * self.k] = self.search.bos_id
        self.running += [
            _Running(key, limit, _Beams(self.k), rows=np.arange(self.k)) for key, _, limit in items
        ]

    def _run(self) -> tuple[np.ndarray, np.ndarray]:
        """One decoder step over the running rows -> top-(2k+1) log-probs and ids per row."""
        n, k = len(self.running), self.k
        rows = n * k
        steps = np.array([s.step for s in self.running], dtype=np.int64)
        self._allocate(n, int(steps.max()) + 1, 0)
        self._pos[:rows] = np.repeat(steps, k)
        state = (n, id(self._cache[0]), id(self._cross[0]))
        if self._bound != state:
            self._bind(rows)
            self._bound = state
        self._session.run_with_iobinding(self._io)
        return self._out

    def _bind(self, rows: int) -> None:
        """Bind the running rows' views of every buffer (again only when the rows or the buffers
        change: the tokens, positions, caches and outputs are rewritten in place between steps)."""
        m, names = self.model, self.model.config.io
        n = rows // self.k
        self._session = m.decoder_for(rows)
        io = self._session.io_binding()
        value = self._ort.OrtValue.ortvalue_from_numpy
        # Every step asks for the 2k+1 best of each row, the most any sentence needs (see step()).
        self._out = (
            np.empty((rows, self._width), dtype=np.float32),
            np.empty((rows, self._width), dtype=np.int64),
        )
        self._keep_alive = [
            self._tokens[:rows].reshape(rows, 1),
            self._pos[:rows],
            np.array([self._width], dtype=np.int64),
            self._mask[:n],
            *(c[:n] for c in self._cross),
            *self._out,
        ]
        inputs = [
            names.input_ids,
            names.position,
            names.top_k,
            names.attention_mask,
            *m.enc_out_names,
        ]
        for name, array in zip(inputs, self._keep_alive):
            io.bind_ortvalue_input(name, value(array))
        io.bind_ortvalue_output(names.top_log_probs, value(self._out[0]))
        io.bind_ortvalue_output(names.top_ids, value(self._out[1]))
        past, present = (
            m.dec_in_names[3 : 3 + 2 * m.n_layers],
            m.dec_out_names[1 : 1 + 2 * m.n_layers],
        )
        for p, q, c in zip(past, present, self._cache):
            v = value(c[:rows])
            io.bind_ortvalue_input(p, v)
            io.bind_ortvalue_output(q, v)  # the same buffer: each row's new K/V is written in place
        self._io = io

    def step(self) -> list[tuple[object, list[Hypothesis]]]:
        """Advance every running sentence by one token; return those that are done."""
        if not self.running:
            return []
        advanced = self._advance(*self._run())
        done = [
            (s.key, self.search.best(s.beams))
            for s, kept in zip(self.running, advanced)
            if kept is None
        ]
        live = [b for b, kept in enumerate(advanced) if kept is not None]
        # New slots: sentences already within the first len(live) slots stay; the others move into
        # the slots of the finished ones.
        free = iter(b for b in range(len(live)) if advanced[b] is None)
        slot = {b: (b if b < len(live) else next(free)) for b in live}
        self._move_beams(advanced, slot)
        for b, t in slot.items():
            if t != b:
                for c in self._cross:
                    c[t] = c[b]
                self._mask[t] = self._mask[b]
        self.running = [self.running[b] for b in sorted(live, key=slot.get)]
        return done

    def _advance(self, vals: np.ndarray, ids: np.ndarray) -> list:
        """Each running sentence's beam update from this step's top-k of its rows: (source beam,
        next token) of each new beam, or None when it is done (BeamSearch.advance)."""
        k, search = self.k, self.search
        widths = np.array([search.width(s.step) for s in self.running])
        # A smaller width reads the first columns of a larger top-k (best first, ties by id): the
        # same candidates as asking for that width alone.
        advanced: list = [None] * len(self.running)
        for width in np.unique(widths).tolist():
            blocks = np.flatnonzero(widths == width).tolist()
            # each sentence's beams in order
            rows = np.concatenate([b * k + self.running[b].rows for b in blocks])
            first = self.running[blocks[0]].step if width > 2 * k else 1  # width > 2k: step 0 only
            beams = [self.running[b].beams for b in blocks]
            total, cand_ids, cand_lps, top = search.candidates(
                beams, vals[rows, :width], ids[rows, :width], first
            )
            for j, b in enumerate(blocks):
                s = self.running[b]
                advanced[b] = search.advance(
                    s.beams, total[j], cand_ids[j], cand_lps[j], top[j], width, s.step, s.limit
                )
        return advanced

    def _move_beams(self, advanced: list, slot: dict[int, int]) -> None:
        """Give each live sentence's new beams their rows in its new slot: set their next tokens and
        copy the self K/V of every beam whose row changed."""
        k = self.k
        copies: dict[int, tuple[list[int], list[int]]] = {}
        for b, t in slot.items():
            s = self.running[b]
            parents, tokens = advanced[b]
            old = s.rows
            new = self._rows_in_place(s, parents) if t == b else np.arange(k)
            s.step += 1
            # Rows copy only what their sentence has filled (s.step positions), rounded up to a
            # multiple of 16 so that a few copies move every row.
            moves = copies.setdefault(-(-s.step // 16) * 16, ([], []))
            for i, p in enumerate(parents):
                if (t != b or new[i] != old[p]) and s.beams.scores[i] != -np.inf:
                    moves[0].append(t * k + new[i])
                    moves[1].append(b * k + old[p])
            self._tokens[t * k + new] = tokens
            s.rows = new
        # A sentence's rows stay within its block or move to a finished sentence's block, which no
        # running row reads: the copies of different sentences never overlap.
        for filled, (dst, src) in copies.items():
            if dst:
                for c in self._cache:
                    c[dst, :, :filled] = c[src, :, :filled]  # the right side is gathered first

    def _rows_in_place(self, s: _Running, parents: list[int]) -> np.ndarray:
        """The rows within its block of a sentence that keeps its slot: a live beam continuing a
        beam whose row is not taken yet stays in that row; the others take the free rows."""
        old, new = s.rows, np.full(self.k, -1)
        taken = np.zeros(self.k, dtype=bool)
        for i, p in enumerate(parents):
            if not taken[old[p]] and s.beams.scores[i] != -np.inf:
                new[i] = old[p]
                taken[old[p]] = True
        rest = iter(np.flatnonzero(~taken).tolist())
        for i in np.flatnonzero(new < 0).tolist():
            new[i] = next(rest)
        return new


__all__ = ["ContinuousBeams", "supports_rows_at_different_steps"]
