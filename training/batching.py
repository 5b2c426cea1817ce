"""Token-count batches with length bucketing: few padded tokens, many updates per minute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer

from .data import Pair


@dataclass
class Encoded:
    src: list[list[int]]  # source ids, each ending with the end token
    tgt: list[list[int]]  # target ids, without start or end token
    dropped: int  # pairs left out because a side was longer than the model's max_len


def encode_pairs(tok: Tokenizer, pairs: list[Pair], eos_id: int, max_len: int) -> Encoded:
    src_enc = tok.encode_batch([p.source for p in pairs], add_special_tokens=False)
    tgt_enc = tok.encode_batch([p.target for p in pairs], add_special_tokens=False)
    src, tgt, dropped = [], [], 0
    for s, t in zip(src_enc, tgt_enc):
        # +1: the end token on the source, the start/end token on the target.
        if len(s.ids) + 1 > max_len or len(t.ids) + 1 > max_len:
            dropped += 1
            continue
        src.append(s.ids + [eos_id])
        tgt.append(t.ids)
    return Encoded(src, tgt, dropped)


def make_batches(data: Encoded, max_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Group example indices into batches of at most max_tokens padded tokens (source or target).

    Examples are sorted by length after a seeded shuffle (random tie order), cut into batches, and
    the batches shuffled again, so each epoch differs but the same (seed, epoch) gives the same
    list.
    """
    rng = np.random.default_rng([seed, epoch])
    n = len(data.src)
    src_len = np.array([len(s) for s in data.src])
    tgt_len = np.array([len(t) + 1 for t in data.tgt])
    order = rng.permutation(n)
    order = order[np.lexsort((src_len[order], tgt_len[order]))]
    batches, current, width = [], [], 0
    for i in order:
        w = max(width, src_len[i], tgt_len[i])
        if current and w * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, w = [], max(src_len[i], tgt_len[i])
        current.append(int(i))
        width = w
    if current:
        batches.append(current)
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(data: Encoded, index: list[int], pad_id: int, bos_id: int, eos_id: int):
    """-> src (batch, S), src_mask (batch, S), tgt_in (batch, T) = <s> y,
    tgt_out (batch, T) = y </s>."""
    src = [data.src[i] for i in index]
    tgt = [data.tgt[i] for i in index]
    s_width, t_width = max(map(len, src)), max(map(len, tgt)) + 1
    src_ids = np.full((len(index), s_width), pad_id, dtype=np.int64)
    tgt_in = np.full((len(index), t_width), pad_id, dtype=np.int64)
    tgt_out = np.full((len(index), t_width), pad_id, dtype=np.int64)
    for row, (s, t) in enumerate(zip(src, tgt)):
        src_ids[row, : len(s)] = s
        tgt_in[row, : len(t) + 1] = [bos_id] + t
        tgt_out[row, : len(t) + 1] = t + [eos_id]
    src_ids = torch.from_numpy(src_ids)
    return src_ids, src_ids != pad_id, torch.from_numpy(tgt_in), torch.from_numpy(tgt_out)
