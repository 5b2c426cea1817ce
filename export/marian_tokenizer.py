"""MarianMT (OPUS-MT) tokenization as two `tokenizers` JSON tokenizers, for a runtime without
sentencepiece.

`convert_marian_tokenizers(dir)` reads a transformers Marian checkpoint directory (``source.spm``,
``target.spm``, ``vocab.json``, optional ``target_vocab.json``, ``tokenizer_config.json``) and
returns a source tokenizer with ``encode(text).ids == MarianTokenizer(text).input_ids`` and a target
tokenizer with ``decode(ids, skip_special_tokens=True) == MarianTokenizer.decode(ids,
skip_special_tokens=True)``.  The target tokenizer also encodes like
``MarianTokenizer(text_target=...)``.  The .spm files are read once, here, with the protobuf schema
that ships inside the sentencepiece package; the result needs only `tokenizers`.

What MarianTokenizer (transformers 5) does, and how each step is rebuilt
------------------------------------------------------------------------
1. The text is cut at its special tokens (``</s>``, ``<unk>``, ``<pad>``, extra ones from the
   config) and every piece in between is tokenized on its own.  Here: non-normalized special added
   tokens.
2. A piece that starts with ``>>`` and holds a ``<<`` loses that prefix, the language code, which is
   looked up in the vocabulary as a whole (unknown code -> unk id); the rest is tokenized as if
   alone.  Here: the first normaliser steps rewrite a code *at the start of the piece* (an anchored
   regex on the raw text) into a private marker plus a stand-in for the space that starts the rest.
   The last step turns a known code's marker back into the code's text, which a *normalized* added
   token (content ``>>xx<<``) then takes out with its vocabulary id; ``>>xx<<`` anywhere else stays
   ordinary text, as in transformers, because ``>`` itself never survives normalisation (item 5).
   An unknown code becomes one unknown character -> unk.
3. The SentencePiece normaliser: its precompiled character map, then its whitespace rules (leading
   spaces dropped, runs of spaces folded, spaces written as U+2581, trailing ones dropped, a U+2581
   in front of non-empty text).  The `tokenizers` Precompiled normaliser applies the map per
   grapheme cluster (a whole cluster under 6 bytes by its first rule, else character by character)
   where SentencePiece takes the longest rule at each position; decomposed accents, half-width kana
   with voicing marks or Hangul jamo then come out differently.  So, for the NFKC-based rules
   (Marian's ``nmt_nfkc``), NFKC runs first, and the characters the map blanks out (controls, format
   characters, odd spaces: found by probing the map) are replaced beforehand, one by one, since a
   cluster that starts with one would lose its marks.
4. SentencePiece's Unigram lattice over the model's own normal pieces and scores: a `tokenizers`
   Unigram.
5. Every piece string is looked up in ``vocab.json`` (missing -> unk).  The Unigram's list is laid
   out by vocab.json id, so ``encode().ids`` are vocab.json ids: piece ``p`` sits at ``vocab[p]``.
   Ids of strings that are not pieces of this side (the other side's pieces in a joint vocabulary)
   hold the string behind a private prefix, which the text never contains, so the lattice never
   reaches them.  Special tokens and codes keep their plain text at their ids (so
   ``token_to_id(">>fra<<")`` and ``id_to_token`` work); each of them holds a character (for
   Marian's, ``>``) that the normaliser's last steps swap, in the text and in every piece alike, for
   a private stand-in, so they cannot be reached either.
6. SentencePiece turns a run of characters it has no piece for into one unknown piece whose string
   is the run itself, and MarianTokenizer looks that string up too: in a joint vocabulary a
   character the source model lacks but the target model has gets the target piece's id.  Here the
   normaliser brackets every maximal run of such characters with two private characters, and a
   vocabulary string made only of such characters sits at its id as "bracket + string + bracket": it
   matches a whole run exactly; any other run is one unk (the Unigram fuses neighbouring unknown
   characters into one token).
7. ``</s>`` is appended: a ``TemplateProcessing`` post-processor.
8. Decoding drops the special ids, joins the pieces with SentencePiece's decoder (U+2581 -> space; a
   control piece -> nothing), and ``str.strip()``s the result (then ``clean_up_tokenization`` if the
   config asks). The decoder chain does the same on the tokens: markers removed, U+2581 -> space,
   the same whitespace set stripped.  A special token's text met while decoding is followed by a
   space, as in transformers.

Every marker is a private-use character of plane 16; any such character in the input is first
replaced by U+10FFFD, which SentencePiece treats alike (a character it has no piece for).

Known differences
-----------------
* Ids: a piece of the SentencePiece model that is missing from vocab.json yields the unk id in
  MarianTokenizer.  A Unigram id is a position in its list, so such a piece cannot share the unk
  position; it goes to an extra id at or past the vocabulary size, listed with the id it stands for
  (unk) in ``MarianTokenizers.source_id_map``.  ``encode_source`` applies it.  When the map is empty
  (every piece is in vocab.json) ``source.encode(text).ids`` is exact as it is; otherwise read ids
  >= ``source_vocab_size`` as ``unk_id``.  The target side has ``target_id_map`` and
  ``encode_target`` (there an extra id can also stand for a piece whose id a special token of
  vocab.json takes: separate vocabularies of other sizes).
* Text: combining marks stacked on an already accented letter, a ligature or a compatibility
  character, or marks out of canonical order, can normalise differently (NFKC composes or reorders
  what SentencePiece's map leaves alone, or the other way round).  Ordinary text, NFC or NFD,
  matches.
* ``decode(..., skip_special_tokens=False)`` with a shared vocabulary: transformers decodes the text
  between two special tokens with the *source* model there, which can leave one space more or less
  after a special token.  With ``skip_special_tokens=True`` (what a runtime uses) it is exact.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, processors

SPACE = "\u2581"  # SentencePiece's whitespace symbol

# Private-use code points of plane 16 serve as markers.  Any such character in the input is first
# replaced by U+10FFFD, which SentencePiece treats alike (an unknown character), so none of them can
# come from the text.
_RESERVED = (0x100000, 0x10FFFC)
_ESCAPE = "\U0010fffd"
_REST = chr(0x100001)  # after a language code: becomes the space that starts the rest of the text
_UNKNOWN_CODE = chr(0x100002)  # a language code not in the vocabulary
# around each run of characters the model has no piece for
_OPEN, _CLOSE = chr(0x100003), chr(0x100004)
_HIDDEN = chr(0x100005)  # prefix of vocabulary entries this side's model never produces
# prefix of entries that decode to nothing (SentencePiece control pieces, gaps)
_SILENT = chr(0x100006)
_SPECIAL = chr(0x100007)  # suffix of entries that read as a special token's text when decoding
_DROPPED = chr(0x100008)  # stands for a character the character map deletes, until it has run
_STAND_IN_FIRST = (
    0x100100  # stand-ins for the characters that keep special tokens, tags unreachable
)
_CODE_FIRST = 0x101000  # one marker per known language code

# SentencePiece piece types (sentencepiece_model.proto)
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6
_UNIGRAM = 1


@dataclass
class MarianTokenizers:
    """The two tokenizers of a Marian checkpoint and the ids a runtime needs.

    ``source.encode(text).ids == MarianTokenizer(text).input_ids`` (language code and ``</s>``
    included; pass ``add_special_tokens=False`` to leave out ``</s>``) and
    ``target.decode(ids, skip_special_tokens=True) == MarianTokenizer.decode(ids,
    skip_special_tokens=True)``, provided ``source_id_map`` is empty; see ``encode_source``
    otherwise.
    """

    source: Tokenizer
    target: Tokenizer
    pad_id: int
    eos_id: int
    unk_id: int
    source_vocab_size: int  # len(vocab.json): the encoder's embedding rows
    target_vocab_size: (
        int  # len(target_vocab.json) with separate vocabularies, else len(vocab.json)
    )
    language_tags: list[str]  # the ">>xx<<" entries of vocab.json, in id order
    # extra Unigram id -> MarianTokenizer id, for SentencePiece pieces missing from the vocabulary
    # (see the module doc)
    source_id_map: dict[int, int] = field(default_factory=dict)
    target_id_map: dict[int, int] = field(default_factory=dict)
    separate_vocabs: bool = False

    def encode_source(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """MarianTokenizer(text).input_ids (with ``add_special_tokens=False``: without the final
        ``</s>``)."""
        ids = self.source.encode(text, add_special_tokens=add_special_tokens).ids
        return [self.source_id_map.get(i, i) for i in ids] if self.source_id_map else ids

    def encode_target(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """MarianTokenizer(text_target=text).input_ids."""
        ids = self.target.encode(text, add_special_tokens=add_special_tokens).ids
        return [self.target_id_map.get(i, i) for i in ids] if self.target_id_map else ids

    def decode(self, ids: list[int]) -> str:
        """MarianTokenizer.decode(ids, skip_special_tokens=True)."""
        return self.target.decode(list(ids), skip_special_tokens=True)


@dataclass
class _Spm:
    path: Path
    normal: list[tuple[str, float]]  # (piece, score) of the pieces the lattice can use
    controls: set[str]  # pieces SentencePiece decodes to nothing
    alphabet: set[str]  # characters that are pieces by themselves
    charsmap: bytes
    nfkc: bool  # an NFKC-based rule: NFKC runs before the character map (see _read_spm)


def _fail(path: Path, why: str) -> ValueError:
    return ValueError(f"{path}: {why}")


def _read_json(path: Path, required: bool = True):
    if not path.is_file():
        if required:
            raise _fail(path, "missing (expected in a MarianMT checkpoint directory)")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"not valid JSON ({e})") from e


def _read_vocab(path: Path) -> dict[str, int]:
    vocab = _read_json(path)
    if not isinstance(vocab, dict) or not vocab:
        raise _fail(path, "expected a non-empty JSON object mapping piece -> id")
    for piece, i in vocab.items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise _fail(path, f"entry {piece!r}: id {i!r} is not a non-negative integer")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise _fail(path, f"ids must be 0..{len(vocab) - 1}, each once")
    for piece in vocab:
        if piece == "" or any(_RESERVED[0] <= ord(c) <= _RESERVED[1] + 1 for c in piece):
            raise _fail(
                path,
                f"entry {piece!r} is empty or uses the private characters U+100000..U+10FFFD "
                "this converter reserves",
            )
    return vocab


def _read_spm(path: Path) -> _Spm:
    if not path.is_file():
        raise _fail(path, "missing (expected in a MarianMT checkpoint directory)")
    from sentencepiece import (
        sentencepiece_model_pb2 as pb,
    )  # the protobuf schema shipped with sentencepiece

    proto = pb.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as e:  # google.protobuf.message.DecodeError and friends
        raise _fail(path, f"not a SentencePiece model ({e})") from e
    if not proto.pieces:
        raise _fail(path, "not a SentencePiece model (no pieces)")
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    if spec.model_type != _UNIGRAM:
        raise _fail(
            path, f"SentencePiece model type {spec.model_type} is not supported (Unigram only)"
        )
    if spec.byte_fallback or any(p.type == _BYTE for p in proto.pieces):
        raise _fail(path, "SentencePiece byte fallback is not supported")
    if any(p.type == _USER_DEFINED for p in proto.pieces):
        raise _fail(path, "SentencePiece user-defined symbols are not supported")
    if (
        spec.treat_whitespace_as_suffix
        or not norm.add_dummy_prefix
        or not norm.escape_whitespaces
        or not norm.remove_extra_whitespaces
    ):
        raise _fail(
            path,
            "unsupported SentencePiece whitespace settings "
            "(expected dummy prefix, escaped and folded whitespace)",
        )
    if proto.HasField("denormalizer_spec") and proto.denormalizer_spec.precompiled_charsmap:
        raise _fail(path, "SentencePiece denormalization rules are not supported")
    normal = [(p.piece, p.score) for p in proto.pieces if p.type == _NORMAL]
    if not normal:
        raise _fail(path, "the SentencePiece model has no normal pieces")
    alphabet = {p for p, _ in normal if len(p) == 1}
    for p, _ in normal:
        if any(c not in alphabet for c in p):
            raise _fail(
                path, f"piece {p!r} holds a character that is not a piece of its own (unsupported)"
            )
        if any(_RESERVED[0] <= ord(c) <= _RESERVED[1] + 1 for c in p):
            raise _fail(
                path,
                f"piece {p!r} uses the private characters U+100000..U+10FFFD "
                "this converter reserves",
            )
    controls = {p.piece for p in proto.pieces if p.type == _CONTROL}
    # NFKC-based rules get an NFKC step before the character map (module doc, item 3)
    nfkc = norm.name in ("nfkc", "nmt_nfkc", "nfkc_cf", "nmt_nfkc_cf")
    return _Spm(path, normal, controls, alphabet, bytes(norm.precompiled_charsmap), nfkc)


def _token_text(value, name: str, path: Path, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str) or not value:
        raise _fail(path, f"{name} must be a non-empty string")
    return value


def _is_code(text: str) -> bool:
    """Would MarianTokenizer take the whole of `text`, at the start of its input, as the language
    code?"""
    return text.startswith(">>") and text.find("<<") == len(text) - 2


def _char_class(chars: set[str], negate: bool = False) -> str:
    """An Oniguruma bracket expression for a set of characters, as code point ranges."""
    points = sorted(ord(c) for c in chars)
    parts, i = [], 0
    while i < len(points):
        j = i
        while j + 1 < len(points) and points[j + 1] == points[j] + 1:
            j += 1
        parts.append(
            f"\\x{{{points[i]:X}}}" if i == j else f"\\x{{{points[i]:X}}}-\\x{{{points[j]:X}}}"
        )
        i = j + 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


@lru_cache(maxsize=1)
def _blank_candidates() -> tuple[str, ...]:
    found = [
        chr(i)
        for i in range(sys.maxunicode + 1)
        if not 0xD800 <= i <= 0xDFFF
        and unicodedata.category(chr(i)) in ("Cc", "Cf", "Zs", "Zl", "Zp")
    ]
    return tuple(found + [SPACE, "\ufffd"])


def _blank_rules(charsmap: bytes) -> tuple[set[str], set[str]]:
    """The control, format and space characters that `charsmap` deletes, and those it makes a
    space."""
    mapped = normalizers.Precompiled(charsmap)
    deleted, spaced = set(), set()
    for c in _blank_candidates():
        out = mapped.normalize_str(c)
        if out == "":
            deleted.add(c)
        elif out == " " and c != " ":
            spaced.add(c)
    return deleted, spaced


@lru_cache(maxsize=1)
def _python_whitespace() -> frozenset[str]:
    """What str.strip() removes."""
    return frozenset(chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace())


def _onig_escape(text: str) -> str:
    return "".join(f"\\x{{{ord(c):X}}}" for c in text)


def _build_side(
    spm: _Spm,
    encoder: dict[str, int],
    specials: dict[str, int],
    decode_controls: set[str],
    clean_up: bool,
    eos: str,
    unk: str,
    vocab_path: Path,
) -> tuple[Tokenizer, dict[int, int]]:
    """One side: `spm` segments, `encoder` maps piece strings to ids, `specials` are the added
    tokens -> (the tokenizer, extra id -> MarianTokenizer id)."""
    special_ids = set(specials.values())
    codes = {
        t: i
        for t, i in encoder.items()
        if _is_code(t) and i not in special_ids and t not in specials
    }
    stand_in = _stand_ins(list(specials) + list(codes), vocab_path)
    vocab, unk_id, id_map = _unigram_vocab(
        spm, encoder, specials, codes, stand_in, decode_controls, unk
    )
    if len({t for t, _ in vocab}) != len(vocab):
        raise _fail(vocab_path, "two vocabulary entries collide after conversion")
    tok = Tokenizer(models.Unigram(vocab, unk_id, False))
    tok.normalizer = _normalizer(spm, codes, stand_in)
    _add_tokens(tok, specials, codes, vocab_path)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {eos}:0", pair=f"$A:0 $B:0 {eos}:0", special_tokens=[(eos, specials[eos])]
    )
    tok.decoder = _decoder(specials, stand_in, clean_up)
    return tok, id_map


def _stand_ins(texts: list[str], vocab_path: Path) -> dict[str, str]:
    """Characters whose stand-in keeps every special token and code out of the lattice's reach:
    one per text (its last character) unless the text already holds one."""
    stand_in: dict[str, str] = {}
    for text in texts:
        if not any(c in stand_in for c in text):
            if len(stand_in) >= _CODE_FIRST - _STAND_IN_FIRST:
                raise _fail(vocab_path, "too many special tokens")
            stand_in[text[-1]] = chr(_STAND_IN_FIRST + len(stand_in))
    return stand_in


def _unigram_vocab(
    spm: _Spm,
    encoder: dict[str, int],
    specials: dict[str, int],
    codes: dict[str, int],
    stand_in: dict[str, str],
    decode_controls: set[str],
    unk: str,
) -> tuple[list[tuple[str, float]], int, dict[int, int]]:
    """The Unigram's (piece, score) list laid out by vocabulary id (module doc, items 5 and 6) ->
    (the list, the unk id, extra id -> MarianTokenizer id)."""
    swap = str.maketrans(stand_in)
    # MarianTokenizer: current_encoder[unk_token] for any string not in the vocabulary
    unk_id = encoder[unk]
    size = max(max(encoder.values()), max(specials.values())) + 1
    slots: list[tuple[str, float] | None] = [None] * size
    for text, i in [*specials.items(), *codes.items()]:
        slots[i] = (text, 0.0)
    extras: list[tuple[str, float]] = []
    id_map: dict[int, int] = {}
    for piece, score in spm.normal:
        entry = (piece.translate(swap), score)
        i = encoder.get(piece)
        if i is not None and slots[i] is None:
            slots[i] = entry
        else:  # not in the vocabulary (MarianTokenizer: unk), or its id is taken by a special token
            id_map[size + len(extras)] = unk_id if i is None else i
            extras.append(entry)
    for text, i in encoder.items():
        if slots[i] is not None:
            continue
        if text in specials:  # a special token's text under another id: decoded as that text
            slots[i] = (text + _SPECIAL, 0.0)
        elif text in decode_controls:
            slots[i] = (_SILENT + text, 0.0)
        elif all(c not in spm.alphabet for c in text):  # a whole run of characters with no piece
            slots[i] = (_OPEN + text.translate(swap) + _CLOSE, 0.0)
        else:
            slots[i] = (_HIDDEN + text, 0.0)
    for i, slot in enumerate(slots):
        if slot is None:
            slots[i] = (f"{_SILENT}<unused {i}>", 0.0)
    return slots + extras, unk_id, id_map


def _normalizer(spm: _Spm, codes: dict[str, int], stand_in: dict[str, str]):
    """MarianTokenizer's steps before the lattice, in its order (module doc, items 2, 3 and 6)."""
    steps = [
        normalizers.Replace(Regex(f"[\\x{{{_RESERVED[0]:X}}}-\\x{{{_RESERVED[1]:X}}}]"), _ESCAPE)
    ]
    markers = {}
    for n, code in enumerate(sorted(codes, key=codes.get)):
        markers[code] = chr(_CODE_FIRST + n)
        steps.append(normalizers.Replace(Regex("\\A" + _onig_escape(code)), markers[code] + _REST))
    steps.append(normalizers.Replace(Regex("\\A>>[\\s\\S]*?<<"), _UNKNOWN_CODE + _REST))
    steps += _character_map_steps(spm)
    steps += [
        normalizers.Replace(_REST, " "),
        normalizers.Replace(Regex("\\A +"), ""),
        normalizers.Replace(Regex(" {2,}"), " "),
        normalizers.Replace(" ", SPACE),
        normalizers.Replace(Regex(SPACE + "+\\z"), ""),
        normalizers.Prepend(SPACE),
        normalizers.Replace(SPACE + _UNKNOWN_CODE, _UNKNOWN_CODE),
    ]
    steps += [normalizers.Replace(c, s) for c, s in stand_in.items()]
    swap = str.maketrans(stand_in)
    # characters the lattice has a piece for; every maximal run of others is bracketed
    unknown = _char_class({c.translate(swap) for c in spm.alphabet}, negate=True)
    steps += [
        normalizers.Replace(Regex(f"(?<!{unknown})(?={unknown})"), _OPEN),
        normalizers.Replace(Regex(f"(?<={unknown})(?!{unknown})"), _CLOSE),
    ]
    # a known code at the start reads as itself again, and as nothing else: its added token
    # matches it there
    steps += [normalizers.Replace(SPACE + _OPEN + m + _CLOSE, code) for code, m in markers.items()]
    if spm.charsmap:  # the markers must come through the character map unchanged
        probe = "".join([_REST, _UNKNOWN_CODE, _ESCAPE, _DROPPED, *markers.values()])
        if normalizers.Precompiled(spm.charsmap).normalize_str(probe) != probe:
            raise _fail(spm.path, "its character map rewrites private-use characters (unsupported)")
    return normalizers.Sequence(steps)


def _character_map_steps(spm: _Spm) -> list:
    """SentencePiece's character map, after NFKC for NFKC-based rules (module doc, item 3)."""
    steps = []
    if spm.charsmap:
        # Characters the map turns into a space or deletes (controls, format characters, other
        # spaces) are mapped here, one by one: the Precompiled normaliser would swallow a combining
        # mark that follows one of them (it maps a whole grapheme cluster by its first rule).
        deleted, spaced = _blank_rules(spm.charsmap)
        if spaced:
            steps.append(normalizers.Replace(Regex(_char_class(spaced)), " "))
        if deleted:
            steps.append(normalizers.Replace(Regex(_char_class(deleted)), _DROPPED))
    if spm.nfkc:
        steps.append(normalizers.NFKC())
    if spm.charsmap:
        steps.append(normalizers.Precompiled(spm.charsmap))
        steps.append(normalizers.Replace(_DROPPED, ""))
    return steps


def _add_tokens(tok: Tokenizer, specials: dict[str, int], codes: dict[str, int], path: Path):
    """Special tokens match the raw text, language codes the normalized text (module doc, item
    2)."""
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in sorted(specials, key=specials.get)]
    )
    tok.add_tokens(
        [AddedToken(t, special=False, normalized=True) for t in sorted(codes, key=codes.get)]
    )
    for text, i in list(specials.items()) + list(codes.items()):
        if tok.token_to_id(text) != i:
            raise _fail(path, f"{text!r} did not keep id {i}")


# PreTrainedTokenizerBase.clean_up_tokenization
_CLEAN_UP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def _decoder(specials: dict[str, int], stand_in: dict[str, str], clean_up: bool):
    """MarianTokenizer.convert_tokens_to_string, then str.strip() (module doc, item 8)."""
    chain = [
        decoders.Replace(Regex("\\A" + _onig_escape(t) + "\\z"), t + _SPECIAL) for t in specials
    ]
    chain.append(decoders.Replace(Regex(f"\\A{_SILENT}[\\s\\S]*\\z"), ""))
    chain.append(decoders.Fuse())
    # a special token's text is followed by a space; SentencePiece drops the U+2581 that starts the
    # next piece
    chain.append(decoders.Replace(Regex(_SPECIAL + SPACE + "?"), " "))
    chain += [decoders.Replace(c, "") for c in (_HIDDEN, _OPEN, _CLOSE)]
    chain += [decoders.Replace(s, c) for c, s in stand_in.items()]
    chain.append(decoders.Replace(SPACE, " "))
    ws = _char_class(_python_whitespace())
    chain.append(decoders.Replace(Regex(f"\\A{ws}+|{ws}+\\z"), ""))
    if clean_up:
        chain += [decoders.Replace(a, b) for a, b in _CLEAN_UP]
    return decoders.Sequence(chain)


def _special_tokens(
    config: dict, config_path: Path, vocab: dict[str, int], vocab_path: Path
) -> tuple[dict[str, int], tuple[str, str, str]]:
    """-> (special token text -> id, in eos, unk, pad, extra order; (eos, unk, pad) texts)."""
    unk = _token_text(config.get("unk_token"), "unk_token", config_path, "<unk>")
    eos = _token_text(config.get("eos_token"), "eos_token", config_path, "</s>")
    pad = _token_text(config.get("pad_token"), "pad_token", config_path, "<pad>")
    extra = config.get("additional_special_tokens") or config.get("extra_special_tokens") or []
    if isinstance(extra, dict):
        extra = list(extra.values())
    if not isinstance(extra, list):
        raise _fail(config_path, "additional_special_tokens must be a list")
    extra = [_token_text(t, "additional_special_tokens", config_path, "") for t in extra]
    specials: dict[str, int] = {}
    for text in (eos, unk, pad, *extra):
        if text not in vocab:
            raise _fail(vocab_path, f"no entry for the special token {text!r}")
        specials[text] = vocab[text]
    if len(set(specials.values())) != len(specials):
        raise _fail(vocab_path, "two special tokens share an id")
    return specials, (eos, unk, pad)


def convert_marian_tokenizers(src_dir: Path) -> MarianTokenizers:
    """Build the source and target `tokenizers` of a transformers MarianMT checkpoint directory.

    Raises ValueError, naming the file, when an input file is missing, malformed or unsupported.
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise ValueError(f"{src_dir}: not a directory")
    config_path = src_dir / "tokenizer_config.json"
    config = _read_json(config_path, required=False)
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise _fail(config_path, "expected a JSON object")
    separate = bool(config.get("separate_vocabs", False))
    vocab_path, target_vocab_path = src_dir / "vocab.json", src_dir / "target_vocab.json"
    vocab = _read_vocab(vocab_path)
    target_vocab = _read_vocab(target_vocab_path) if separate else vocab
    source_spm, target_spm = _read_spm(src_dir / "source.spm"), _read_spm(src_dir / "target.spm")

    specials, (eos, unk, pad) = _special_tokens(config, config_path, vocab, vocab_path)
    if unk not in target_vocab:
        raise _fail(target_vocab_path, f"no entry for the special token {unk!r}")
    clean_up = bool(config.get("clean_up_tokenization_spaces", False))

    # transformers 5 decodes with the source model when the vocabulary is shared, the target one
    # otherwise
    decode_spm = target_spm if separate else source_spm
    source, source_map = _build_side(
        source_spm, vocab, specials, source_spm.controls, clean_up, eos, unk, vocab_path
    )
    target, target_map = _build_side(
        target_spm,
        target_vocab,
        specials,
        decode_spm.controls,
        clean_up,
        eos,
        unk,
        target_vocab_path if separate else vocab_path,
    )
    tags = sorted((t for t in vocab if _is_code(t) and t not in specials), key=vocab.get)
    return MarianTokenizers(
        source=source,
        target=target,
        pad_id=vocab[pad],
        eos_id=vocab[eos],
        unk_id=vocab[unk],
        source_vocab_size=len(vocab),
        target_vocab_size=len(target_vocab),
        language_tags=tags,
        source_id_map=source_map,
        target_id_map=target_map,
        separate_vocabs=separate,
    )
