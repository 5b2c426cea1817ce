"""Corpus extraction, the book split, TSV reading and the tokenizer."""

from pathlib import Path

import pytest

from traductor.training import data
from traductor.training.data import DataError, clean_osis, read_tsv
from traductor.training.tokenizer import SPECIAL_TOKENS, train_tokenizer


def _canon_books():
    canons = pytest.importorskip("pysword.canons").canons
    return [b[0] for b in canons["kjv"]["ot"] + canons["kjv"]["nt"]]


def test_split_sets_are_disjoint_and_cover_the_canon():
    books = _canon_books()
    split = {b: data.split_of(b) for b in books}
    test = {b for b, s in split.items() if s == "test"}
    dev = {b for b, s in split.items() if s == "dev"}
    train = {b for b, s in split.items() if s == "train"}
    assert test == set(data.TEST_BOOKS) and dev == set(data.DEV_BOOKS)
    assert not (test & dev) and not (test & train) and not (dev & train)
    assert len(train) + len(dev) + len(test) == 66


@pytest.mark.skipif(
    not Path("/usr/share/sword/mods.d").is_dir(), reason="SWORD modules not installed (make data)"
)
def test_bible_extraction_writes_disjoint_aligned_splits(tmp_path):
    splits = data.extract_bible(books=["Ruth", "Jude", "Obadiah"])
    counts = data.write_split(splits, tmp_path)
    assert counts == {"train": 21, "dev": 25, "test": 85}  # Obadiah 21, Jude 25, Ruth 85 verses
    ids = {name: (tmp_path / f"{name}.ids").read_text().splitlines() for name in counts}
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["dev"]) & set(ids["test"])
    first = (tmp_path / "test.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert ids["test"][0] == "Ruth 1:1"
    assert (
        first.startswith("Y ACONTECIÓ en los días")
        and "\tIn the days when the judges judged" in first
    )


def test_markup_removal_does_not_glue_words():
    raw = (
        '<w lemma="x">God</w><note placement="foot">The Hebrew word is “Elohim”.</note>'
        '<w lemma="y">created</w> <w>the</w> earth<l eID="a"/><l sID="b"/>And'
    )
    assert clean_osis(raw) == "God created the earth And"


def test_malformed_tsv_lines_are_counted_not_used(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text(
        "hola\thello\nno tab here\n\t only target\nsolo fuente\t \nadiós\tgoodbye\n",
        encoding="utf-8",
    )
    pairs, report = read_tsv(f)
    assert [(p.source, p.target) for p in pairs] == [("hola", "hello"), ("adiós", "goodbye")]
    assert (report.used, report.no_tab, report.empty_side) == (2, 1, 2)
    assert "skipped 3 malformed lines" in str(report)


def test_missing_or_empty_corpus_raises_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_tsv(tmp_path / "nope.tsv")
    (tmp_path / "bad.tsv").write_text("no tabs at all\n")
    with pytest.raises(DataError, match="no usable"):
        read_tsv(tmp_path / "bad.tsv")


def test_missing_sword_modules_name_the_apt_packages(tmp_path):
    pytest.importorskip("pysword")
    with pytest.raises(DataError, match="apt-get install sword-text-sparv sword-text-web"):
        data.extract_bible(sword_dir=tmp_path)


ROUND_TRIP = [
    "¿Dónde está el niño? «Él dijo: “sí”», y se fué á la ciudad.",
    'He said, "It\'s 3:16 — at 10,000.50 feet!" (really)',
    "Ñandú, pingüino, corazón; ¡Qué día! 1 2 3 1999 45%",
    "emoji 😀 y 中文 and ‘quotes’ — Привет",
    "Two  spaces and trailing punctuation...",
]


def test_tokenizer_round_trips_text_exactly():
    corpus = [
        "En el principio crió Dios los cielos y la tierra.",
        "In the beginning, God created the heavens and the earth.",
    ] * 50
    tok = train_tokenizer(corpus, vocab_size=400)
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    for text in ROUND_TRIP:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.token_to_id("<unk>") not in ids, text
        assert tok.decode(ids) == text
