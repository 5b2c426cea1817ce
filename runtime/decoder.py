"""The KV-cache step decoder that the searches drive, on top of the ONNX graphs."""

from __future__ import annotations

import numpy as np

from .onnx_model import OnnxSeq2Seq
from .package import padded_length
from .shortlist import StepState


def pad_sources(
    seqs: list[list[int]], pad_id: int, multiple: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad source id lists -> input_ids and attention_mask, both (batch, src_len) int64, where
    src_len is the longest list rounded up to `multiple`."""
    ids = np.full((len(seqs), padded_length(max(map(len, seqs)), multiple)), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return ids, mask


class OnnxStepDecoder:
    """Holds the running batch's cache: cross K/V (from the encoder, once) and self K/V (grows).

    `keep(rows)` selects/reorders rows with one gather on the batch axis per cache tensor: this is
    how finished sentences leave the batch and how beam search reorders its beams.
    """

    POOL_FROM = (
        1 << 16
    )  # floats per cache tensor (256 KB) from which `keep` gathers into reused buffers

    def __init__(
        self,
        model: OnnxSeq2Seq,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        repeat: int = 1,
        candidates=None,
    ):
        """input_ids, attention_mask: (batch, src_len); repeat: rows (beams) per sentence;
        candidates: the sentences' shortlist.Candidates, None for the whole vocabulary.

        Cross K/V stay one per sentence: the decoder graph lets each group of `repeat` consecutive
        rows share them, so beams never copy them.
        """
        self.model = model
        self.candidates = candidates
        self._state = StepState()  # the shortlist head's per-batch state, for these candidates
        self.cross = model.encode(
            input_ids, attention_mask
        )  # per layer key, value: (batch, heads, src_len, head_dim)
        self.mask = attention_mask  # (batch, src_len)
        self.repeat = repeat
        self.past = model.empty_past(
            attention_mask.shape[0] * repeat
        )  # (rows, heads, past_len, head_dim)
        self._pool: list[np.ndarray] | None = None  # reused buffers the past is gathered into
        self.position = 0

    @property
    def rows(self) -> int:
        return self.past[0].shape[0]

    def _gather(self, rows: np.ndarray) -> list[np.ndarray]:
        """The past of `rows`, gathered into buffers this decoder keeps.

        Beam search gathers the whole self-attention cache every step. Into fresh arrays that is
        ~6x slower than into reused ones at 128 rows (measured 11.8 vs 2.0 ms per step for 31 MB):
        the fresh pages fault in and the kernel zeroes them. The buffers grow as the cache does; the
        gather writes the rows straight into a contiguous prefix of them.
        """
        shape = (rows.size, *self.past[0].shape[1:])
        size = int(np.prod(shape))
        if size < self.POOL_FROM:  # small: allocation is cheap (the heap reuses its memory)
            return [p[rows] for p in self.past]
        if self._pool is None or self._pool[0].size < size:
            self._pool = [np.empty(2 * size, dtype=np.float32) for _ in self.past]  # room to grow
        if rows.size and (rows.min() < 0 or rows.max() >= self.past[0].shape[0]):
            raise IndexError(f"keep(): rows out of range 0..{self.past[0].shape[0] - 1}")
        # mode="clip" (the rows are checked above): with the default mode numpy buffers `out`.
        return [
            np.take(p, rows, axis=0, out=b[:size].reshape(shape), mode="clip")
            for p, b in zip(self.past, self._pool)
        ]

    def step(self, tokens: np.ndarray, top_k: int | None = None):
        out, self.past = self.model.step(
            tokens.reshape(-1, 1),
            self.position,
            self.mask,
            self.past,
            self.cross,
            top_k,
            self.candidates,
            self._state,
        )
        self.position += 1
        return out

    def keep(self, rows: np.ndarray) -> None:
        """rows must keep the grouping: each run of `repeat` rows comes from one sentence."""
        same = _same_blocks(rows, self.repeat, self.rows)
        self.past = self._gather(rows)
        if not same:
            self.cross, self.mask = _kept_sentences(rows, self.repeat, self.cross, self.mask)
            self.candidates = _kept_candidates(rows, self.repeat, self.candidates)
            self._state = StepState()


def _same_blocks(rows: np.ndarray, k: int, n_rows: int) -> bool:
    """True when rows keeps every sentence block (row // k) in place: a pure beam reorder."""
    return rows.size == n_rows and bool(np.all(rows // k == np.arange(n_rows) // k))


def _kept_sentences(
    rows: np.ndarray, k: int, cross: list[np.ndarray], mask: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The cross K/V and mask of the sentences that `keep(rows)` keeps, one per block of k rows.

    Beam reorders within a sentence leave them unchanged (`_same_blocks`): callers gather them only
    when the set of sentences changes.
    """
    sentences = rows[::k] // k
    return [c[sentences] for c in cross], mask[sentences]


def _kept_candidates(rows: np.ndarray, k: int, candidates):
    return None if candidates is None else candidates.of_sentences(rows[::k] // k)


class CachedStepDecoder:
    """The greedy-search step decoder on the host: a preallocated self-attention cache that the
    decoder graph writes in place, and no per-step allocation.

    Each layer's self K/V live in one buffer (rows, heads, capacity, head_dim), bound through
    IOBinding as both the `past` input and the `present` output of the decoder graph, whose
    attention (GroupQueryAttention) then writes the new token's K/V at `position` instead of copying
    the past into a new tensor. Token ids, position, top_k and the outputs are preallocated numpy
    buffers, bound once and rewritten in place, so a step is one `run_with_iobinding`.

    The capacity is the most steps the search will run (`max_steps`): the cache is allocated once
    (np.zeros: pages are only touched as they fill) and doubles if a caller steps past it.
    `keep(rows)` moves only the rows that change, and only the filled part of the cache.
    """

    DEFAULT_CAPACITY = 32

    def __init__(
        self,
        model: OnnxSeq2Seq,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        repeat: int = 1,
        max_steps: int | None = None,
        record_attention: bool = False,
        candidates=None,
    ):
        import onnxruntime as ort

        self._ort = ort
        self.model, self.repeat = model, repeat
        self.candidates = candidates  # shortlist.Candidates, None for the whole vocabulary
        # With record_attention (and a decoder that outputs it), `attention` holds after each step
        # the alignment layer's cross-attention of every row: (rows, heads, src_len).
        self._record = record_attention and model.step_attention is not None
        self.attention: np.ndarray | None = None
        self.cross = model.encode(
            input_ids, attention_mask
        )  # one per sentence, shared by its `repeat` rows
        self.mask = attention_mask
        d = model.config.dims
        n_rows = attention_mask.shape[0] * repeat
        capacity = min(max_steps or self.DEFAULT_CAPACITY, d.max_len + 1)
        self._cache = [
            np.zeros((n_rows, d.n_heads, capacity, d.head_dim), dtype=np.float32)
            for _ in range(2 * model.n_layers)
        ]
        self._n = n_rows  # rows in use: the first _n rows of every cache buffer
        self._ids = np.zeros((n_rows, 1), dtype=np.int64)
        self._pos = np.zeros(1, dtype=np.int64)
        self._top_k = np.ones(1, dtype=np.int64)
        self.position = 0
        self._bind()

    @property
    def rows(self) -> int:
        return self._n

    def _value(self, array: np.ndarray):
        return self._ort.OrtValue.ortvalue_from_numpy(
            array
        )  # CPU memory: shared with the numpy array

    def _bind(self) -> None:
        """Bind every input and the cache outputs; runs again only when the running rows change."""
        m, names = self.model, self.model.config.io
        self._session = m.decoder_for(self._n)
        io = self._session.io_binding()
        self._keep_alive = [
            self._ids[: self._n],
            self._pos,
            self._top_k,
            self.mask,
            *self.cross,
            *(c[: self._n] for c in self._cache),
        ]
        ids, pos, top_k, mask, *rest = [self._value(a) for a in self._keep_alive]
        cross, cache = rest[: 2 * m.n_layers], rest[2 * m.n_layers :]
        if m.candidate_names:  # fixed for the batch: bound with the mask
            from .shortlist import Candidates

            c = self.candidates or Candidates.empty(self.mask.shape[0])
            arrays = [c.ids, c.rows, c.bias]
            self._keep_alive += arrays
            for name, a in zip(m.candidate_names, arrays):
                io.bind_ortvalue_input(name, self._value(a))
        # The shortlist head's per-batch state: left unbound (empty: the step gathers it) until the
        # first step returns it; then bound as input until the next _bind.
        self._state_pending = bool(m.state_names and self.candidates is not None)
        for name, value in [
            (names.input_ids, ids),
            (names.position, pos),
            (names.top_k, top_k),
            (names.attention_mask, mask),
            *zip(m.enc_out_names, cross),
        ]:
            io.bind_ortvalue_input(name, value)
        past, present = (
            m.dec_in_names[3 : 3 + 2 * m.n_layers],
            m.dec_out_names[1 : 1 + 2 * m.n_layers],
        )
        for p, q, value in zip(past, present, cache):
            io.bind_ortvalue_input(p, value)
            io.bind_ortvalue_output(
                q, value
            )  # the same buffer: the graph writes the new K/V in place
        self._cache_values = cache
        self._io, self._bound_outputs, self._out = io, -1, ()  # -1: no outputs bound yet

    def _bind_outputs(self, top_k: int | None) -> None:
        """Output buffers for this (rows, top_k); rebound only when the rows change, or when a step
        asks for more than is bound (or for full log-probs): a smaller top_k reads the first columns
        of a larger one (TopK puts the best first), so greedy binds once per batch."""
        names = self.model.config.io
        if top_k:
            self._out = (
                np.empty((self._n, top_k), dtype=np.float32),
                np.empty((self._n, top_k), dtype=np.int64),
            )
            outputs = (names.top_log_probs, names.top_ids)
        else:
            self._out = (np.empty((self._n, self.model.config.dims.vocab_size), dtype=np.float32),)
            outputs = (names.log_probs,)
        self._io.clear_binding_outputs()
        present = self.model.dec_out_names[1 : 1 + 2 * self.model.n_layers]
        for value, q in zip(self._cache_values, present):
            self._io.bind_ortvalue_output(q, value)
        for name, array in zip(outputs, self._out):
            self._io.bind_ortvalue_output(name, self._value(array))
        for name in self.model.state_out_names:  # empty once the state is bound as input
            self._io.bind_output(name, "cpu")
        self._output_order = [*present, *outputs, *self.model.state_out_names]
        if self._record:  # (batch, heads, group, src_len), group = repeat
            d = self.model.config.dims
            shape = (self._n // self.repeat, d.n_heads, self.repeat, self.mask.shape[1])
            self._attn = np.empty(shape, dtype=np.float32)
            self._io.bind_ortvalue_output(self.model.step_attention, self._value(self._attn))
        self._bound_outputs = top_k
        self._top_k[0] = top_k or 1

    def _grow(self) -> None:
        d = self.model.config.dims
        capacity = min(2 * self._cache[0].shape[2], d.max_len + 1)
        if capacity <= self.position:
            raise ValueError(f"decoding past the model's maximum length ({d.max_len} tokens)")
        grown = []
        for c in self._cache:
            g = np.zeros((c.shape[0], c.shape[1], capacity, c.shape[3]), dtype=np.float32)
            g[:, :, : self.position] = c[:, :, : self.position]
            grown.append(g)
        self._cache = grown
        self._bind()

    def step(self, tokens: np.ndarray, top_k: int | None = None):
        if top_k is None and self.candidates is not None:
            self.candidates = None  # whole-vocabulary log-probs: the batch leaves its shortlist
            self._bind()
        if self.position >= self._cache[0].shape[2]:
            self._grow()
        bound = self._bound_outputs
        if (top_k is None) != (bound is None) or bound == -1 or (top_k and top_k > bound):
            self._bind_outputs(top_k)
        self._ids[: self._n, 0] = tokens
        self._pos[0] = self.position
        self._session.run_with_iobinding(self._io)
        self.position += 1
        if self._state_pending and top_k:  # the state of these candidates: bound from now on
            values = dict(zip(self._output_order, self._io.get_outputs()))
            for name, out in zip(self.model.state_names, self.model.state_out_names):
                self._io.bind_ortvalue_input(name, values[out])
                self._io.bind_output(out, "cpu")  # unallocated again: later steps return it empty
            self._state_pending = False
        if self._record:  # -> (rows, heads, src_len)
            self.attention = (
                self._attn.transpose(0, 2, 1, 3).reshape(self._n, -1, self._attn.shape[3]).copy()
            )
        # Copies: the buffers are rewritten by the next step.
        return (
            (self._out[0][:, :top_k].copy(), self._out[1][:, :top_k].copy())
            if top_k
            else self._out[0].copy()
        )

    def keep(self, rows: np.ndarray) -> None:
        """rows must keep the grouping: each run of `repeat` rows comes from one sentence."""
        same = _same_blocks(rows, self.repeat, self._n)
        t = self.position
        if rows.size == self._n:
            moved = np.flatnonzero(rows != np.arange(self._n))
            if moved.size:
                for c in self._cache:
                    c[moved, :, :t] = c[rows[moved], :, :t]  # the right side is gathered first
        elif rows.size <= self._cache[0].shape[0]:
            for c in self._cache:
                c[: rows.size, :, :t] = c[rows, :, :t]
        else:
            self._cache = [c[rows] for c in self._cache]
            self._ids = np.zeros((rows.size, 1), dtype=np.int64)
        if rows.size != self._n or not same:
            self._n = rows.size
            if not same:
                self.cross, self.mask = _kept_sentences(rows, self.repeat, self.cross, self.mask)
                self.candidates = _kept_candidates(rows, self.repeat, self.candidates)
            self._bind()


class DeviceStepDecoder:
    """The same contract as OnnxStepDecoder, for GPU providers (CUDA): IOBinding keeps the cross and
    self-attention K/V on the device between steps; per step only the new token ids and the position
    go up and the log-probabilities come back.

    `keep()` gathers rows on the host (download, index, upload): it runs only when rows change, i.e.
    when a greedy sentence finishes, and at every beam step. A device-side gather is future work.
    """

    def __init__(
        self,
        model: OnnxSeq2Seq,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        repeat: int = 1,
        device: str = "cuda",
        device_id: int = 0,
        candidates=None,
    ):
        import onnxruntime as ort

        self._ort = ort
        self.candidates = candidates
        self.model, self.device, self.device_id, self.repeat = model, device, device_id, repeat
        io = model.encoder.io_binding()
        names = model.config.io
        io.bind_cpu_input(names.input_ids, input_ids)
        io.bind_cpu_input(names.attention_mask, attention_mask)
        for name in model.enc_out_names:
            io.bind_output(name, device, device_id)
        model.encoder.run_with_iobinding(io)
        self.cross = io.get_outputs()  # one per sentence, shared by its `repeat` rows
        self.mask_host = attention_mask
        self.mask = self._upload(attention_mask)
        self.past = [self._upload(p) for p in model.empty_past(attention_mask.shape[0] * repeat)]
        self.position = 0

    def _upload(self, array: np.ndarray):
        return self._ort.OrtValue.ortvalue_from_numpy(
            np.ascontiguousarray(array), self.device, self.device_id
        )

    @property
    def rows(self) -> int:
        return self.mask_host.shape[0] * self.repeat

    def step(self, tokens: np.ndarray, top_k: int | None = None):
        m, names = self.model, self.model.config.io
        io = m.decoder.io_binding()
        io.bind_cpu_input(names.input_ids, tokens.reshape(-1, 1).astype(np.int64))
        io.bind_cpu_input(names.position, np.array([self.position], dtype=np.int64))
        io.bind_cpu_input(names.top_k, np.array([top_k or 1], dtype=np.int64))
        io.bind_ortvalue_input(names.attention_mask, self.mask)
        for name, value in zip(m.dec_in_names[3:-1], [*self.past, *self.cross]):
            io.bind_ortvalue_input(name, value)
        if m.candidate_names:
            from .shortlist import Candidates

            c = (self.candidates if top_k else None) or Candidates.empty(self.mask_host.shape[0])
            for name, a in zip(m.candidate_names, (c.ids, c.rows, c.bias)):
                io.bind_cpu_input(name, a)
        host = [names.top_log_probs, names.top_ids] if top_k else [names.log_probs]
        present = m.dec_out_names[1 : 1 + 2 * m.n_layers]
        for name in host:
            io.bind_output(name, "cpu")  # only these come back to the host
        for name in present:
            io.bind_output(name, self.device, self.device_id)
        m.decoder.run_with_iobinding(io)
        out = io.get_outputs()
        self.past = out[len(host) :]
        self.position += 1
        return (out[0].numpy(), out[1].numpy()) if top_k else out[0].numpy()

    def keep(self, rows: np.ndarray) -> None:
        same = _same_blocks(rows, self.repeat, self.rows)
        self.past = [self._upload(p.numpy()[rows]) for p in self.past]
        if not same:
            cross, self.mask_host = _kept_sentences(
                rows, self.repeat, [c.numpy() for c in self.cross], self.mask_host
            )
            self.candidates = _kept_candidates(rows, self.repeat, self.candidates)
            self.cross = [self._upload(c) for c in cross]
            self.mask = self._upload(self.mask_host)


class DroppingRows:
    """Lets finished sentences leave the running batch lazily.

    Dropping rows from a step decoder copies its whole cache (self K/V, cross K/V, the mask) and, on
    the in-place cache, rebinds every buffer. In a batch of sentences of mixed lengths they finish
    one by one, so dropping each at once costs more than it saves. This wrapper keeps finished
    sentences' rows in the decoder's batch (fed a dummy token, their outputs ignored) until at least
    `slack` of the batch is dead, then drops them all in one `keep`. Rows are computed
    independently, so the live rows' results are exactly those of dropping at once. Beam reorders
    within live sentences pass straight through.
    """

    def __init__(self, inner, repeat: int = 1, slack: float = 0.25, filler: int = 0):
        self.inner, self.k, self.slack, self.filler = inner, repeat, slack, filler
        self._blocks = np.arange(
            inner.rows // repeat
        )  # the inner block (sentence) of each live sentence
        self._rows = np.arange(inner.rows)  # the inner row of each live row

    @property
    def rows(self) -> int:
        return self._rows.size

    @property
    def attention(self) -> np.ndarray | None:
        """The inner decoder's attention of the last step (if it records it), of the live rows."""
        attention = getattr(self.inner, "attention", None)
        if attention is None or self._rows.size == self.inner.rows:
            return attention
        return attention[self._rows]

    def step(self, tokens: np.ndarray, top_k: int | None = None):
        if self._rows.size == self.inner.rows:
            return self.inner.step(tokens, top_k)
        full = np.full(self.inner.rows, self.filler, dtype=np.int64)
        full[self._rows] = tokens
        out = self.inner.step(full, top_k)
        return tuple(o[self._rows] for o in out) if isinstance(out, tuple) else out[self._rows]

    def keep(self, rows: np.ndarray) -> None:
        k = self.k
        source = self._rows[rows]  # inner rows the new live rows come from
        blocks = self._blocks[rows[::k] // k]
        n_inner = self.inner.rows // k
        ordered = blocks.size < 2 or bool(np.all(np.diff(blocks) > 0))
        if not ordered or (n_inner - blocks.size) >= self.slack * n_inner:
            self.inner.keep(source)  # drop the dead rows now
            self._blocks, self._rows = np.arange(blocks.size), np.arange(source.size)
            return
        target = (blocks[:, None] * k + np.arange(k)).ravel()  # where each live row stays
        identity = np.arange(self.inner.rows)
        gather = identity.copy()
        gather[target] = source
        if not np.array_equal(gather, identity):
            self.inner.keep(gather)  # a reorder inside blocks: no sentence leaves the inner batch
        self._blocks, self._rows = blocks, target


DEVICE_PROVIDERS = {"CUDAExecutionProvider": "cuda", "ROCMExecutionProvider": "cuda"}


# Beam search on the host keeps its cache in place (CachedStepDecoder) from this many bytes of
# self-attention cache per position of the batch on, and grows it (OnnxStepDecoder) below. Growing,
# each step copies the whole cache twice (the graph's past -> present, then the reorder's gather
# into reused buffers); in place, the reorder copies only the rows that moved, but attention reads
# the cache from strided blocks that are no longer in the CPU's caches. Beam 4, batches of 32
# (128 rows), one thread, in place against growing (docs/performance.md,
# benchmarks/experiments/beam_inplace.py): OPUS-MT size (6 layers, d 512: 3 MiB a position) 1.14x
# int8 and 1.06x fp32 (the step decoders alone: 1.04-1.07x); the shipped model (4 layers, d 256:
# 1 MiB) 1.01x (alone: 0.94-0.99x); OPUS-MT size at batch 4 (0.4 MiB) 1.01x.
IN_PLACE_BEAM = 2 << 20


def _beam_cache_bytes(model: OnnxSeq2Seq, rows: int) -> int:
    """Bytes of self-attention cache (K and V of every layer, float32) per position of `rows`."""
    d = model.config.dims
    return rows * 2 * model.n_layers * d.n_heads * d.head_dim * 4


def make_step_decoder(
    model: OnnxSeq2Seq,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    repeat: int = 1,
    max_steps: int | None = None,
    record_attention: bool = False,
    candidates=None,
):
    """A device-resident cache where the first provider is a GPU, an in-place host cache elsewhere.
    max_steps: the most steps the search will take (sizes the cache; more still works, slower).
    record_attention: greedy on the host cache keeps each step's alignment-layer attention
    (`.attention`) where the decoder graph outputs it; elsewhere `.attention` stays None.
    candidates: the sentences' shortlist.Candidates (steps asked for top_k score only them)."""
    device = DEVICE_PROVIDERS.get(model.providers[0])
    if device:
        inner = DeviceStepDecoder(
            model, input_ids, attention_mask, repeat, device, candidates=candidates
        )
    elif repeat > 1 and _beam_cache_bytes(model, attention_mask.shape[0] * repeat) < IN_PLACE_BEAM:
        # Beam search reorders rows every step. While a batch's cache is small the growing
        # past -> present cache is as fast or faster (see IN_PLACE_BEAM); greedy only drops rows,
        # where in place is faster.
        inner = OnnxStepDecoder(model, input_ids, attention_mask, repeat, candidates)
    else:
        inner = CachedStepDecoder(
            model, input_ids, attention_mask, repeat, max_steps, record_attention, candidates
        )
    # Beam search gathers the whole cache at every step anyway, so a finished sentence's rows can
    # leave at once for free (slack 0; beam 4 x 16 measured 3% faster than slack 0.25).
    return DroppingRows(
        inner, repeat, slack=0.0 if repeat > 1 else 0.25, filler=model.config.special_tokens.eos_id
    )
