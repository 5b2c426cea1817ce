"""A joint source+target subword tokenizer built with the `tokenizers` library."""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from traductor.runtime.package import InputError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0..3, in this order


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000) -> Tokenizer:
    """Train on both languages at once so the tied embedding covers one shared vocabulary.

    Metaspace keeps spaces inside tokens (decoding is exact, no detokenizer rules), and byte
    fallback spells characters never seen in training (emoji, CJK) as UTF-8 bytes instead of <unk>.
    """
    if vocab_size <= 256 + len(SPECIAL_TOKENS):
        raise InputError(
            f"vocab_size must exceed {256 + len(SPECIAL_TOKENS)} (256 byte tokens + specials), "
            f"got {vocab_size}"
        )
    tok = Tokenizer(models.BPE(unk_token=UNK, byte_fallback=True))
    # Leave room for the 256 byte tokens added after training.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 256, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    # NFC: the same accented letter typed two ways maps to one token sequence.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    # Spaces back, bytes joined into characters, then the space Metaspace put in front removed.
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok = _with_byte_tokens(tok)
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, f"special token {t} must have id {i}"
    return tok


def _with_byte_tokens(tok: Tokenizer) -> Tokenizer:
    """Put every <0xNN> byte token into the model's own vocabulary, so that byte fallback never
    hits <unk>.

    The trainers do not add them, and tokens added with `add_tokens` are not used for fallback.
    """
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]  # {token: id}
    for i in range(256):
        vocab.setdefault(f"<0x{i:02X}>", len(vocab))
    return Tokenizer.from_str(json.dumps(spec))


def special_ids(tok: Tokenizer) -> dict[str, int]:
    return {
        "pad_id": tok.token_to_id(PAD),
        "bos_id": tok.token_to_id(BOS),
        "eos_id": tok.token_to_id(EOS),
        "unk_id": tok.token_to_id(UNK),
    }
