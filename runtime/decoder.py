"""The KV-cache step decoder that the searches drive, on top of the ONNX graphs."""

from __future__ import annotations

import numpy as np

from .onnx_model import OnnxSeq2Seq


def pad_sources(seqs: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad source id lists -> input_ids and attention_mask, both (batch, max_len) int64."""
    ids = np.full((len(seqs), max(map(len, seqs))), pad_id, dtype=np.int64)
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

    def __init__(self, model: OnnxSeq2Seq, input_ids: np.ndarray, attention_mask: np.ndarray, repeat: int = 1):
        """input_ids/attention_mask (batch, src_len); repeat > 1 gives each sentence `repeat` rows (beams).

        Cross K/V stay one per sentence: the decoder graph lets each group of `repeat` consecutive
        rows share them, so beams never copy them.
        """
        self.model = model
        self.cross = model.encode(input_ids, attention_mask)  # per layer key, value: (batch, heads, src_len, head_dim)
        self.mask = attention_mask  # (batch, src_len)
        self.repeat = repeat
        self.past = model.empty_past(attention_mask.shape[0] * repeat)  # (rows, heads, past_len, head_dim)
        self.position = 0

    @property
    def rows(self) -> int:
        return self.past[0].shape[0]

    def step(self, tokens: np.ndarray, top_k: int | None = None):
        out, self.past = self.model.step(tokens.reshape(-1, 1), self.position, self.mask, self.past, self.cross, top_k)
        self.position += 1
        return out

    def keep(self, rows: np.ndarray) -> None:
        """rows must keep the grouping: each run of `repeat` rows comes from one sentence."""
        same = _same_blocks(rows, self.repeat, self.rows)
        self.past = [p[rows] for p in self.past]
        # Beam reorders within a sentence leave cross K/V unchanged; gather them (once per
        # sentence) only when the set of sentences changes.
        if not same:
            sentences = rows[:: self.repeat] // self.repeat
            self.cross = [c[sentences] for c in self.cross]
            self.mask = self.mask[sentences]


def _same_blocks(rows: np.ndarray, k: int, n_rows: int) -> bool:
    """True when rows keeps every sentence block (row // k) in place: a pure beam reorder."""
    return rows.size == n_rows and bool(np.all(rows // k == np.arange(n_rows) // k))


class DeviceStepDecoder:
    """The same contract as OnnxStepDecoder, for GPU providers (CUDA): IOBinding keeps the cross and
    self-attention K/V on the device between steps; per step only the new token ids and the position
    go up and the log-probabilities come back.

    `keep()` gathers rows on the host (download, index, upload): it runs only when rows change, i.e.
    when a greedy sentence finishes, and at every beam step. A device-side gather is future work.
    """

    def __init__(self, model: OnnxSeq2Seq, input_ids: np.ndarray, attention_mask: np.ndarray, repeat: int = 1, device: str = "cuda", device_id: int = 0):
        import onnxruntime as ort

        self._ort = ort
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
        return self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, self.device_id)

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
            sentences = rows[:: self.repeat] // self.repeat
            self.cross = [self._upload(c.numpy()[sentences]) for c in self.cross]
            self.mask_host = self.mask_host[sentences]
            self.mask = self._upload(self.mask_host)


DEVICE_PROVIDERS = {"CUDAExecutionProvider": "cuda", "ROCMExecutionProvider": "cuda"}


def make_step_decoder(model: OnnxSeq2Seq, input_ids: np.ndarray, attention_mask: np.ndarray, repeat: int = 1):
    """A device-resident cache where the first provider is a GPU, plain numpy arrays elsewhere."""
    device = DEVICE_PROVIDERS.get(model.providers[0])
    if device:
        return DeviceStepDecoder(model, input_ids, attention_mask, repeat, device)
    return OnnxStepDecoder(model, input_ids, attention_mask, repeat)
