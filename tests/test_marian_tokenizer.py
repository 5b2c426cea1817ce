"""traductor.export.marian_tokenizer: a MarianMT checkpoint's tokenization as `tokenizers` JSON,
compared string for string with transformers.MarianTokenizer on SentencePiece models trained here
(no network)."""

from __future__ import annotations

import io
import json
import random
import unicodedata
from pathlib import Path

import pytest

spm = pytest.importorskip("sentencepiece")
pytest.importorskip("transformers")

from tokenizers import Tokenizer  # noqa: E402

from traductor.export.marian_tokenizer import MarianTokenizers, convert_marian_tokenizers  # noqa: E402

N_SOURCE = 2500  # source strings per case (x 4 cases), each also encoded as target text
N_TARGET = 1500  # target sentences per case whose ids are decoded
N_RANDOM_IDS = 1500  # random id sequences per case, decoded
TAGS = (">>eng<<", ">>fra<<", ">>por_BR<<")

ES_WORDS = (
    "el la de que y en un una por con para como más pero sus le ya este sí porque esta entre "
    "cuando muy sin sobre también hasta hay donde quien desde todo nos durante uno ni contra "
    "otros ese eso ante ellos esto antes algunos qué unos yo otro él tanto esa estos mucho "
    "quienes nada muchos cual poco ella estar algo niño niña canción corazón árbol pingüino "
    "acción información año mañana señor según después aquí España México Bogotá ciudad camión "
    "lápiz búho cigüeña"
).split()
EN_WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or "
    "one had by word but not what all were we when your can said there use an each which she do "
    "how their if will up other about out many then them these so some her would make like him "
    "into time has look two more write go see number way could people my than first water been "
    "call who now find long down day did get come made may part quick brown fox jumps over lazy "
    "dog week kayak zebra"
).split()
ES_SYLLABLES = "ca ma la pa sa ta re mi ño ción dé ló ú güe rra tos nes ci da ja lle chi".split()
EN_SYLLABLES = "th er in ing ed an re on st ou wh ly ness ght sh ch wa ky".split()
CJK = "日本語中文汉字東京大学漢字"
EMOJI = ["😀", "👍", "🎉", "❤️"]


# -------------------------------------------------------------------------------------------------
# SentencePiece models and Marian checkpoint directories, made here


def _corpus(
    rng: random.Random, words: list[str], syllables: list[str], rare: str, n: int = 3000
) -> list[str]:
    words = words + [
        "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(400)
    ]
    lines = []
    for _ in range(n):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        if rng.random() < 0.3:
            line = line.capitalize()
        line += rng.choice([".", "?", "!", ",", "", "…", ";", ":"])
        if rng.random() < 0.05:
            line += " " + "".join(rng.choice(CJK) for _ in range(3))
        if rng.random() < 0.03:
            line += " " + rng.choice(EMOJI)
        if rng.random() < 0.1:
            line += f" {rng.randint(0, 9999)}"
        if rng.random() < 0.05:
            line = f'"{line}" ({rng.randint(1, 99)}%)'
        if rng.random() < 0.05:
            line += rng.choice([" -> ", " <= ", " << ", " >> ", " <b> ", " </a>"]) + rng.choice(
                words
            )
        lines.append(line)
    lines += [rare] * 2  # under the character coverage: characters the model has no piece for
    return lines


def _train(lines: list[str], vocab_size: int) -> bytes:
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=out,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=0.9995,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return out.getvalue()


def _pieces(model: bytes) -> list[str]:
    proc = spm.SentencePieceProcessor(model_proto=model)
    return [
        proc.id_to_piece(i)
        for i in range(proc.get_piece_size())
        if not (proc.is_control(i) or proc.is_unknown(i))
    ]


def _marian_vocab(lists: list[list[str]], tags=(), drop=()) -> dict[str, int]:
    """The way Marian's vocabularies come: </s> 0, <unk> 1, the pieces (joint: of both models),
    <pad> last."""
    vocab = {"</s>": 0, "<unk>": 1}
    for tag in tags:
        vocab[tag] = len(vocab)
    for pieces in lists:
        for piece in pieces:
            if piece not in drop:
                vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = len(vocab)
    return vocab


def make_marian_dir(
    path: Path, source: bytes, target: bytes, *, separate=False, tags=(), drop=()
) -> Path:
    path.mkdir(parents=True)
    (path / "source.spm").write_bytes(source)
    (path / "target.spm").write_bytes(target)
    src, tgt = _pieces(source), _pieces(target)
    if separate:
        vocab, target_vocab = _marian_vocab([src], tags, drop), _marian_vocab([tgt])
        (path / "target_vocab.json").write_text(
            json.dumps(target_vocab, ensure_ascii=False), encoding="utf-8"
        )
    else:
        vocab = _marian_vocab([src, tgt], tags, drop)
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    config = {
        "source_lang": "es",
        "target_lang": "mul" if tags else "en",
        "separate_vocabs": separate,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def spm_models() -> tuple[bytes, bytes]:
    rng = random.Random(0)
    source = _train(
        _corpus(rng, ES_WORDS, ES_SYLLABLES, rare="ŋ ʃ ß Ω"), 600
    )  # Spanish-like, no k/w
    target = _train(_corpus(rng, EN_WORDS, EN_SYLLABLES, rare="ŧ ɣ þ Ж"), 800)  # English-like, no ñ
    return source, target


CASES = ("shared", "separate", "tags", "missing_pieces")


@pytest.fixture(scope="module")
def cases(spm_models, tmp_path_factory):
    """name -> (name, directory, MarianTokenizer, converted, source and target reloaded from their
    JSON)."""
    from transformers import MarianTokenizer

    made = {}

    def get(name: str):
        if name in made:
            return made[name]
        source, target = spm_models
        path = tmp_path_factory.mktemp("marian") / name
        if name == "shared":
            make_marian_dir(path, source, target)
        # "separate": a larger target vocabulary, the source <pad> id is a target piece
        elif name == "separate":
            make_marian_dir(path, source, target, separate=True)
        elif name == "tags":
            make_marian_dir(path, source, target, tags=TAGS)
        else:  # a vocabulary built from training data can lack a few pieces of the SentencePiece
            # models
            src, tgt = _pieces(source), _pieces(target)
            make_marian_dir(
                path, source, target, tags=TAGS[:2], drop=set(src[100:120]) | set(tgt[200:210])
            )
        ref = MarianTokenizer.from_pretrained(str(path))
        converted: MarianTokenizers = convert_marian_tokenizers(path)
        reloaded_source = Tokenizer.from_str(converted.source.to_str())
        reloaded_target = Tokenizer.from_str(converted.target.to_str())
        made[name] = (name, path, ref, converted, reloaded_source, reloaded_target)
        return made[name]

    return get


@pytest.fixture(params=CASES)
def case(request, cases):
    return cases(request.param)


# -------------------------------------------------------------------------------------------------
# the strings


def _fullwidth(text: str) -> str:
    return "".join(
        chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text
    )


SOUP = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list("ñáéíóúüÁÉÍÓÚÑçàèßøåæœ")
    + list(" ,.;:!?¿¡'\"-()[]{}/\\@#$%&*+=_~^`|<>")
    + list(CJK)
    + list("ｶﾞﾊﾟｶﾀｶﾅ가한국어각")
    + [
        "e\u0301",
        "n\u0303",
        "u\u0308",
        "a\u0300",
        "o\u0302",
        "c\u0327",
        "e\u0323\u0302",
    ]  # one mark, or a canonical pair
    + EMOJI
    + ["👍🏽", "👨\u200d👩\u200d👧", "🇪🇸", "☺\ufe0f"]
    + [
        " ",
        "  ",
        "   ",
        "\t",
        "\n",
        "\r\n",
        "\u00a0",
        "\u3000",
        "\u2009",
        "\u200b",
        "\ufeff",
        "\u00ad",
        "\x01",
        "\x7f",
    ]
    + [
        "ﬁ",
        "½",
        "²",
        "①",
        "™",
        "Ⅻ",
        "ｆｕｌｌ",
        "ＡＢＣ",
        "１２３",
        "\ue000",
        "\U0010fffd",
        "\U00100003",
        "▁",
        "▁▁",
    ]
    + [
        "</s>",
        "<unk>",
        "<pad>",
        "<s>",
        ">>",
        "<<",
        ">",
        "<",
        ">>eng<<",
        ">>xyz<<",
        "ŋ",
        "ß",
        "þ",
        "Ж",
        "k",
        "w",
    ]
    + ["＜/s＞", "＜pad＞", "＞＞eng＜＜", "﹥"]  # special tokens and codes after NFKC, not before
    + [
        "▁\u0301",
        "\t\u0308",
        "\u00a0\u0301",
        "\u200b\u0300",
        "\x01\u0301",
        "\ufeff\u0303",
        "\u3000\u0301",
    ]
)  # blank + mark
PREFIXES = (
    list(TAGS)
    + [t + " " for t in TAGS]
    + [t + "  " for t in TAGS]
    + [t + "\t" for t in TAGS]
    + [
        ">>xyz<<",
        ">>xyz<< ",
        ">><<",
        ">>a b<<",
        ">>>eng<<",
        ">>eng<",
        ">>eng<<<",
        ">>e\nng<<",
        "＞＞eng＜＜",
        " >>eng<<",
        ">>eng<<</s>",
        ">>ﬁ<<",
        ">>\U00100003<<",
    ]
)
EDGES = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\u00a0",
    "\u3000",
    "▁",
    "</s>",
    "<unk>",
    "<pad>",
    "</s></s>",
    " </s> ",
    "a</s>b",
    ">>eng<<",
    ">>eng<< ",
    ">>eng<<</s>",
    ">>xyz<<",
    ">><<",
    ">>",
    "<<",
    "hola >>eng<< mundo",
    "x>>eng<<",
    "<unk>>>eng<< sí",
    "0",
    "123 456",
    "1.5e-3",
    "!!!",
    "¿¡?!",
    "...",
    "—",
    "日本語",
    "😀😀😀",
    "👨\u200d👩\u200d👧",
    "  leading",
    "trailing  ",
    "  both  ",
    "many     spaces",
    "tab\there",
    "line\nbreak",
    "\n\nblank\n\n",
]


def _sentence(rng: random.Random, words: list[str]) -> str:
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 14)))
    if rng.random() < 0.3:
        text = text.capitalize()
    text += rng.choice(["", ".", "?", "!", ",", " ...", "!!", "?\u00a0"])
    r = rng.random()
    if r < 0.15:
        text = unicodedata.normalize("NFD", text)  # decomposed accents
    elif r < 0.2:
        text = _fullwidth(text)
    elif r < 0.3:
        text = text.upper()
    if rng.random() < 0.3:  # odd whitespace
        text = text.replace(" ", rng.choice(["  ", "\t", "\n", "\u00a0", "\u3000", " \n "]))
    if rng.random() < 0.2:
        text = rng.choice([" ", "  ", "\t", "\n"]) + text + rng.choice([" ", "  ", "\n", "\t "])
    if rng.random() < 0.2:  # digits, punctuation, CJK, emoji
        text += " " + rng.choice(
            [
                str(rng.randint(0, 10**6)),
                f"{rng.random():.3f}",
                "日本語",
                "😀",
                "👍🏽",
                "(¡sí!)",
                "«ok»",
            ]
        )
    return text


def _soup(rng: random.Random) -> str:
    return "".join(rng.choice(SOUP) for _ in range(rng.randint(0, 14)))


def make_strings(seed: int, words: list[str], n: int) -> list[str]:
    rng = random.Random(seed)
    out = list(EDGES)
    while len(out) < n:
        text = _sentence(rng, words) if rng.random() < 0.55 else _soup(rng)
        if rng.random() < 0.3:
            text = rng.choice(PREFIXES) + text
        if rng.random() < 0.05:  # a code or a special token in the middle
            words_ = text.split(" ")
            words_.insert(
                rng.randint(0, len(words_)), rng.choice(list(TAGS) + ["</s>", "<pad>", ">>xyz<<"])
            )
            text = " ".join(words_)
        out.append(text)
    return out


# -------------------------------------------------------------------------------------------------
# the comparisons


def _ids(tok: Tokenizer, id_map: dict[int, int], text: str) -> list[int]:
    return [id_map.get(i, i) for i in tok.encode(text).ids]


def _report(name: str, what: str, n: int, bad: list) -> str:
    return f"{name}: {what}: {n} strings compared, {len(bad)} mismatches; first: {bad[:3]!r}"


def test_encode_equals_marian_tokenizer(case):
    name, _, ref, conv, source, target = case
    strings = make_strings(1, ES_WORDS, N_SOURCE)
    bad = [
        (s, want, got)
        for s in strings
        if (want := ref(s).input_ids) != (got := _ids(source, conv.source_id_map, s))
    ]
    assert not bad, _report(name, "source encode", len(strings), bad)
    # MarianTokenizer(text_target=...): the target model and vocabulary, the same codes and special
    # tokens
    bad = [
        (s, want, got)
        for s in strings
        if (want := ref(text_target=s)["input_ids"]) != (got := _ids(target, conv.target_id_map, s))
    ]
    assert not bad, _report(name, "target encode", len(strings), bad)
    if not conv.source_id_map:  # the usual case: the tokenizer's own ids, no remap
        assert all(source.encode(s).ids == ref(s).input_ids for s in strings[:200])
    # the converter's own helpers apply the id maps the same way
    assert all(conv.encode_source(s) == ref(s).input_ids for s in strings[:200])
    assert all(conv.encode_target(s) == ref(text_target=s)["input_ids"] for s in strings[:200])
    print(f"{name}: encode {len(strings)} source strings (+ as target text): 0 mismatches")


def test_decode_equals_marian_tokenizer(case):
    name, _, ref, conv, _, target = case
    sentences = make_strings(2, EN_WORDS, N_TARGET)
    seqs = [ref(text_target=t)["input_ids"] for t in sentences]
    rng = random.Random(3)  # and any ids at all: codes, special tokens, the other side's pieces
    seqs += [
        [rng.randrange(conv.target_vocab_size) for _ in range(rng.randint(0, 12))]
        for _ in range(N_RANDOM_IDS)
    ]
    bad = [
        (ids, want, got)
        for ids in seqs
        if (want := ref.decode(ids, skip_special_tokens=True))
        != (got := target.decode(ids, skip_special_tokens=True))
    ]
    assert not bad, _report(name, "decode", len(seqs), bad)
    assert all(
        conv.decode(ids) == target.decode(ids, skip_special_tokens=True) for ids in seqs[:100]
    )
    print(
        f"{name}: decode {len(seqs)} id sequences ({len(sentences)} from target text): 0 mismatches"
    )


def test_ids_tokens_and_sizes(case):
    name, path, ref, conv, source, target = case
    vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    assert (conv.pad_id, conv.eos_id, conv.unk_id) == (
        ref.pad_token_id,
        ref.eos_token_id,
        ref.unk_token_id,
    )
    assert conv.source_vocab_size == len(vocab)
    if name == "separate":
        assert conv.target_vocab_size == len(
            json.loads((path / "target_vocab.json").read_text(encoding="utf-8"))
        )
        assert conv.target_vocab_size > conv.source_vocab_size
    else:
        assert conv.target_vocab_size == conv.source_vocab_size
    assert conv.language_tags == [t for t in TAGS if t in vocab]
    for text in [
        "</s>",
        "<unk>",
        "<pad>",
        *conv.language_tags,
    ]:  # the runtime looks them up by text
        assert source.token_to_id(text) == vocab[text] and source.id_to_token(vocab[text]) == text
    # every target id reads back as itself (the runtime shows tokens as text)
    n = target.get_vocab_size()
    assert all(target.token_to_id(target.id_to_token(i)) == i for i in range(n))
    if name == "missing_pieces":  # pieces missing from vocab.json: extra ids standing for unk
        missing = [p for p in _pieces((path / "source.spm").read_bytes()) if p not in vocab]
        assert len(missing) >= 20 and set(conv.source_id_map.values()) == {conv.unk_id}
        assert sorted(conv.source_id_map) == list(range(len(vocab), len(vocab) + len(missing)))
        assert source.get_vocab_size() == conv.source_vocab_size + len(missing)
    elif name != "separate":
        assert conv.source_id_map == {} and source.get_vocab_size() == conv.source_vocab_size
    # </s> comes from the post-processor
    assert source.encode("hola", add_special_tokens=False).ids == ref("hola").input_ids[:-1]


def test_a_wrong_construction_is_caught(cases):
    """One Unigram over the joint vocab.json (the other model's pieces reachable too) must mismatch:
    the comparison can fail."""
    name, path, ref, conv, _, _ = cases("tags")
    vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    scores = {}
    for model in ("target.spm", "source.spm"):  # the source score wins for a piece of both
        proc = spm.SentencePieceProcessor(model_file=str(path / model))
        scores.update(
            {
                proc.id_to_piece(i): proc.get_score(i)
                for i in range(proc.get_piece_size())
                if not (proc.is_unknown(i) or proc.is_control(i))
            }
        )
    js = json.loads(conv.source.to_str())
    by_id = {i: t for t, i in vocab.items()}
    for i, entry in enumerate(js["model"]["vocab"][: len(vocab)]):
        piece = by_id[i]
        if piece in scores and ">" not in piece:
            entry[0], entry[1] = piece, scores[piece]
    wrong = Tokenizer.from_str(json.dumps(js))
    strings = make_strings(4, ES_WORDS, 600)
    bad = [s for s in strings if wrong.encode(s).ids != ref(s).input_ids]
    assert len(bad) > 30, (
        f"the joint-vocabulary Unigram mismatched only {len(bad)} of {len(strings)} strings"
    )
    print(f"joint-vocabulary Unigram: {len(bad)} of {len(strings)} strings mismatch")


def test_stacked_marks_differ_only_through_normalisation(cases):
    """The one known class of differences: marks stacked on an accented letter, a ligature or a
    compatibility character, or out of canonical order.  Every mismatch there must come from the
    normaliser (SentencePiece's own output differs from ours), never from the rest of the
    conversion."""
    name, path, ref, _, source, _ = cases("shared")
    normalizer = spm.SentencePieceNormalizer(model_file=str(path / "source.spm"))
    rng = random.Random(5)
    marks = [chr(c) for c in range(0x300, 0x370)] + ["\u3099", "\u309a"]
    bases = list("aeiounüéñçAÉ") + [
        "ﬁ",
        "Ａ",
        "ｶ",
        "ǘ",
        "ệ",
        "가",
        "ᄀ",
        "1",
        " ",
        "▁",
        "\t",
        "日",
        "😀",
    ]
    strings = [
        "".join(
            rng.choice(bases) + "".join(rng.choice(marks) for _ in range(rng.randint(0, 3)))
            for _ in range(rng.randint(1, 4))
        )
        for _ in range(1500)
    ]
    bad = [s for s in strings if source.encode(s).ids != ref(s).input_ids]

    def ours(text: str) -> str:  # our normaliser's text without the private markers
        return "".join(c for c in source.normalizer.normalize_str(text) if ord(c) < 0x100000)

    unexplained = [s for s in bad if normalizer.normalize(s) == ours(s)]
    assert not unexplained, (
        f"{len(unexplained)} mismatches not due to normalisation: {unexplained[:3]!r}"
    )
    print(f"stacked marks: {len(bad)} of {len(strings)} strings differ, all through normalisation")


@pytest.mark.parametrize(
    "damage",
    [
        "no_source_spm",
        "bad_vocab",
        "vocab_not_object",
        "bad_spm",
        "no_target_vocab",
        "bad_config",
        "no_unk",
        "not_a_dir",
    ],
)
def test_bad_inputs_raise_value_error_naming_the_file(spm_models, tmp_path, damage):
    source, target = spm_models
    path = make_marian_dir(tmp_path / "m", source, target)
    expect = {
        "no_source_spm": "source.spm",
        "bad_vocab": "vocab.json",
        "vocab_not_object": "vocab.json",
        "bad_spm": "target.spm",
        "no_target_vocab": "target_vocab.json",
        "bad_config": "tokenizer_config.json",
        "no_unk": "vocab.json",
        "not_a_dir": "nowhere",
    }[damage]
    if damage == "no_source_spm":
        (path / "source.spm").unlink()
    elif damage == "bad_vocab":
        (path / "vocab.json").write_text("{not json", encoding="utf-8")
    elif damage == "vocab_not_object":
        (path / "vocab.json").write_text("[1, 2]", encoding="utf-8")
    elif damage == "bad_spm":
        (path / "target.spm").write_bytes(b"\x00garbage\xff" * 10)
    elif damage == "no_target_vocab":
        (path / "tokenizer_config.json").write_text(
            json.dumps({"separate_vocabs": True}), encoding="utf-8"
        )
    elif damage == "bad_config":
        (path / "tokenizer_config.json").write_text("[]", encoding="utf-8")
    elif damage == "no_unk":
        vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
        vocab = {("<UNK>" if t == "<unk>" else t): i for t, i in vocab.items()}
        (path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    else:
        path = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=expect):
        convert_marian_tokenizers(path)
