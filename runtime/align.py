"""Word alignments from cross-attention: subword attention -> whitespace-separated words.

The alignment graph gives, for each target token, the attention over the source tokens (one layer,
the mean of some heads: config.json `alignment`). Source tokens map to the words of the input text
through the tokenizer's character offsets; target tokens to the words of the translation by
decoding growing prefixes. Each target word is linked to the source word that receives most of its
attention (summed over the word's subwords, averaged over the target word's subwords), ignoring
the end token and any language tag.
"""

from __future__ import annotations

import re

import numpy as np

_WORD = re.compile(r"\S+")


def token_words(offsets: list[tuple[int, int]], text: str) -> list[int]:
    """Word index (in text.split()) of each token, from its character span. A token that covers only
    spaces (a lone word marker) belongs to the word that follows it."""
    spans = [m.span() for m in _WORD.finditer(text)]
    out, w = [], 0
    for start, _end in offsets:
        while w < len(spans) - 1 and start >= spans[w][1]:
            w += 1
        out.append(w)
    return out


def target_words(tokenizer, ids: list[int]) -> list[int]:
    """Each generated token's word index in translation.split(): its decoded prefix's last word."""
    return [max(len(tokenizer.decode(ids[: i + 1]).split()) - 1, 0) for i in range(len(ids))]


def word_attention(attn: np.ndarray, src_words: list[int], tgt_words: list[int]) -> np.ndarray:
    """attn (target tokens, source tokens) -> (target words, source words): each target word's
    attention over the source words (summed over a word's subwords, averaged over the target word's
    subwords), renormalised without the end token and any language tag (word -1)."""
    src = np.asarray(src_words)
    keep = src >= 0
    n_tgt = max(tgt_words) + 1 if tgt_words else 0
    if not keep.any() or not n_tgt:
        return np.zeros((n_tgt, int(src.max()) + 1 if keep.any() else 0))
    a = attn[:, keep]
    a = a / np.maximum(a.sum(axis=1, keepdims=True), 1e-12)
    cols = src[keep]
    per_word = np.zeros((int(cols.max()) + 1, a.shape[0]))
    np.add.at(per_word, cols, a.T)  # in token order, as a loop over them would add
    per_word = per_word.T
    # Each target word's mean over its tokens: summed in token order, then divided by the count
    # (what per_word[rows].mean(axis=0) computes, without a call per word).
    tgt = np.asarray(tgt_words)
    out = np.zeros((n_tgt, per_word.shape[1]))
    np.add.at(out, tgt, per_word)
    counts = np.bincount(tgt, minlength=n_tgt)
    seen = counts > 0
    out[seen] /= counts[seen, None]
    return out


def align_words(
    attn: np.ndarray, src_words: list[int], tgt_words: list[int]
) -> list[tuple[int, int]]:
    """attn (target tokens, source tokens) -> sorted (source_word, target_word) pairs: each target
    word linked to the source word it attends most; the end token and language tags left out."""
    m = word_attention(attn, src_words, tgt_words)
    if m.size == 0:
        return []
    return sorted((int(m[tw].argmax()), tw) for tw in range(m.shape[0]) if m[tw].any())
