"""Quality checks through the runtime alone (no torch): greedy ids and int8 next-token agreement.

The exporter gates the int8 variant with them; benchmarks/experiments/int8_check.py runs them on
any CPU, emulated ones included.
"""

from __future__ import annotations

import numpy as np

from .decoder import OnnxStepDecoder, pad_sources
from .onnx_model import OnnxSeq2Seq
from .search import GreedySearch, max_target_length


def encode_sources(tok, texts: list[str], eos_id: int, max_len: int) -> list[list[int]]:
    return [tok.encode(t, add_special_tokens=False).ids[: max_len - 1] + [eos_id] for t in texts]


def ort_greedy(
    ort_model: OnnxSeq2Seq, src: list[list[int]], batch_size: int = 16
) -> list[list[int]]:
    """Greedy token ids through the runtime's own search and step decoder."""
    st = ort_model.config.special_tokens
    out = []
    for start in range(0, len(src), batch_size):
        chunk = src[start : start + batch_size]
        ids, mask = pad_sources(chunk, st.pad_id, ort_model.config.decoding.source_pad_multiple)
        dec = OnnxStepDecoder(ort_model, ids, mask)
        limits = [max_target_length(len(s), ort_model.config.dims.max_len) for s in chunk]
        out += [
            h[0].tokens
            for h in GreedySearch(
                st.bos_id, st.eos_id, ort_model.config.decoding.min_length
            ).search(dec, limits)
        ]
    return out


def forced_token_agreement(
    ort_model: OnnxSeq2Seq, src: list[list[int]], targets: list[list[int]]
) -> float:
    """Share of positions where ort_model's argmax equals the given target token (end token
    included), feeding the target itself as the prefix, so one early difference does not cascade."""
    st = ort_model.config.special_tokens
    same = total = 0
    for start in range(0, len(src), 16):
        chunk, tgt = src[start : start + 16], [t + [st.eos_id] for t in targets[start : start + 16]]
        ids, mask = pad_sources(chunk, st.pad_id, ort_model.config.decoding.source_pad_multiple)
        dec = OnnxStepDecoder(ort_model, ids, mask)
        tokens = np.full(len(chunk), st.bos_id, dtype=np.int64)
        for t in range(max(map(len, tgt))):
            best = dec.step(tokens).argmax(-1)
            for i, seq in enumerate(tgt):
                if t < len(seq):
                    same += int(best[i] == seq[t])
                    total += 1
            tokens = np.array(
                [seq[t] if t < len(seq) else st.eos_id for seq in tgt], dtype=np.int64
            )
    return same / max(total, 1)
