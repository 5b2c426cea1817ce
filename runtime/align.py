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
    """Each generated token's word index in translation.split(): its decoded prefix's last word.

    Decoding every prefix costs a call per token. Where the tokenizer's decoder only turns the
    word marker into a space (SentencePiece-style BPE: `Metaspace`, or Replace + ByteFallback + Fuse
    + Strip) and every token is a plain piece (no special, added or byte token), the prefixes'
    word counts follow from the pieces' text in one pass; anything else decodes the prefixes."""
    table = _piece_words(tokenizer)
    if table is not None:
        out, count, after_space = [], 0, True
        for i in ids:
            entry = table.get(i)
            if entry is None:
                break
            from_space, from_word, ends = entry
            count += from_space if after_space else from_word
            if ends is not None:
                after_space = ends
            out.append(max(count - 1, 0))
        else:
            return out
    return [max(len(tokenizer.decode(ids[: i + 1]).split()) - 1, 0) for i in range(len(ids))]


_PIECE_WORDS: dict[int, tuple] = {}  # id(tokenizer) -> (tokenizer, table or None)
_MARKER = "\u2581"


def _piece_words(tokenizer) -> dict[int, tuple] | None:
    """Token id -> (words the piece starts after a space, after a word character, whether it ends
    in a space: None for an empty piece) for the plain pieces of a marker-only decoder; None for any
    other decoder. Kept per tokenizer (the tokenizer is held, so its id stays its own)."""
    hit = _PIECE_WORDS.get(id(tokenizer))
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    table = _build_piece_words(tokenizer)
    if len(_PIECE_WORDS) >= 16:
        _PIECE_WORDS.clear()
    _PIECE_WORDS[id(tokenizer)] = (tokenizer, table)
    return table


def _marker_only_decoder(spec) -> bool:
    if not isinstance(spec, dict):
        return False
    if spec.get("type") == "Metaspace":
        return spec.get("replacement") == _MARKER
    if spec.get("type") != "Sequence":
        return False
    steps = spec.get("decoders") or []
    replace = {"type": "Replace", "pattern": {"String": _MARKER}, "content": " "}
    return (
        len(steps) == 4
        and steps[0] == replace
        and steps[1] == {"type": "ByteFallback"}
        and steps[2] == {"type": "Fuse"}
        and steps[3].get("type") == "Strip"
        and steps[3].get("content") == " "
        and steps[3].get("stop") == 0
    )


def _build_piece_words(tokenizer) -> dict[int, tuple] | None:
    import json

    try:
        spec = json.loads(tokenizer.to_str())
    except Exception:  # not a tokenizers.Tokenizer, or one that cannot be serialized
        return None
    if not _marker_only_decoder(spec.get("decoder")):
        return None
    added = {t.get("id") for t in spec.get("added_tokens") or []}
    table = {}
    for piece, i in tokenizer.get_vocab(with_added_tokens=False).items():
        if i in added or _BYTE.fullmatch(piece):
            continue  # decoded differently (skipped, or bytes): such a hypothesis decodes prefixes
        text = piece.replace(_MARKER, " ")
        table[i] = (_starts(text, True), _starts(text, False), text[-1].isspace() if text else None)
    return table


_BYTE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _starts(text: str, after_space: bool) -> int:
    """How many whitespace-separated words begin inside text, after a space or a word character."""
    n = 0
    for ch in text:
        if ch.isspace():
            after_space = True
        elif after_space:
            n, after_space = n + 1, False
    return n


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
    linked = np.flatnonzero(m.any(axis=1))  # target words with some attention left
    return sorted(zip(m[linked].argmax(axis=1).tolist(), linked.tolist()))
