"""The translation core: sentences, spacing, formatting placed by alignment, kept text, glossary."""

from __future__ import annotations

import itertools
import warnings
from types import SimpleNamespace

import pytest

from traductor.runtime.documents.base import DocumentError, Paragraph, Run
from traductor.runtime.documents.glossary import load_glossary, load_keep, term_spans
from traductor.runtime.documents.translate import translate_paragraphs
from traductor.runtime.translator import Candidate, TranslationResult, Translator

TINY = "tests/assets/tiny-model"
B, ITALIC, LINK, CODE = "<b>", "<i>", '<a href="x">', "<code>"


class FakeTranslator:
    """Translates a sentence by upper-casing its words in reverse order; word i of n is aligned
    with target word n-1-i (or with nothing, for words listed in `unaligned`)."""

    def __init__(self, unaligned=()):
        self.config = SimpleNamespace(source_language="es", target_language="en")
        self.defaults = SimpleNamespace(batch_size=2)
        self.tokenizer = SimpleNamespace(
            encode=lambda s, add_special_tokens=False: SimpleNamespace(ids=s.split())
        )
        self.unaligned = set(unaligned)
        self.calls: list[list[str]] = []

    def translate_batch(self, texts, return_alignments=False, **options):
        self.calls.append(list(texts))
        out = []
        for text in texts:
            words = text.split()
            n = len(words)
            target = " ".join(w.upper() for w in reversed(words))
            pairs = [(i, n - 1 - i) for i, w in enumerate(words) if w not in self.unaligned]
            alignment = sorted(pairs) if return_alignments else None
            out.append(
                TranslationResult(target, [Candidate(target, 0.0, 0.0, [], None, alignment)])
            )
        return out


class CannedTranslator(FakeTranslator):
    """Translates each known sentence to a given target with a given alignment (source word,
    target word), as the model's alignment graph might give it."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def translate_batch(self, texts, return_alignments=False, **options):
        self.calls.append(list(texts))
        out = []
        for text in texts:
            target, alignment = self.table[text]
            alignment = sorted(alignment) if return_alignments else None
            out.append(
                TranslationResult(target, [Candidate(target, 0.0, 0.0, [], None, alignment)])
            )
        return out


def text_of(runs):
    return "".join(r.text for r in runs)


@pytest.fixture(scope="module")
def tiny():
    return Translator(TINY)


def test_each_sentence_equals_translate_of_that_sentence(tiny):
    paragraphs = [
        Paragraph([Run("casa perro gato. sol luna agua. rey pan.")]),
        Paragraph([Run("monte vino pan río")]),
    ]
    out = translate_paragraphs(tiny, paragraphs, beam_size=2)
    sentences = ["casa perro gato.", "sol luna agua.", "rey pan."]
    assert text_of(out[0]) == " ".join(tiny.translate(s, beam_size=2) for s in sentences)
    assert text_of(out[1]) == tiny.translate("monte vino pan río", beam_size=2)


def test_all_sentences_of_a_document_go_in_one_call():
    # (one call per kind: sentences with formatting or kept text to place ask for alignments)
    fake = FakeTranslator()
    paragraphs = [Paragraph([Run("uno dos. tres.")]), Paragraph([Run("cuatro")])]
    translate_paragraphs(fake, paragraphs)
    assert fake.calls == [["uno dos.", "tres.", "cuatro"]]


def test_spacing_around_and_between_sentences_is_restored():
    fake = FakeTranslator()
    p = Paragraph([Run("  uno dos.   tres\ncuatro.\n\ncinco.\t ")])
    out = translate_paragraphs(fake, [p])
    assert text_of(out[0]) == "  DOS. UNO   CUATRO. TRES\n\nCINCO.\t "
    # a newline inside a sentence is a space to the model
    assert "tres cuatro." in fake.calls[0]


def test_paragraphs_without_letters_come_back_unchanged():
    fake = FakeTranslator()
    paragraphs = [
        Paragraph([]),
        Paragraph([Run("   \n")]),
        Paragraph([Run("12.5 - 3", B)]),
        Paragraph([Run("https://example.org/a", LINK, keep=True)]),
    ]
    out = translate_paragraphs(fake, paragraphs)
    assert out == [p.runs for p in paragraphs]
    assert fake.calls == []


def test_bold_run_lands_on_the_aligned_word():
    fake = FakeTranslator()
    p = Paragraph([Run("dios", B), Run(" dijo luz")])
    out = translate_paragraphs(fake, [p])[0]
    assert out == [Run("LUZ DIJO "), Run("DIOS", B)]


def test_trailing_punctuation_keeps_its_own_style():
    fake = FakeTranslator()
    p = Paragraph([Run("dios", B), Run(", dijo")])
    out = translate_paragraphs(fake, [p])[0]
    assert out == [Run("DIJO "), Run("DIOS", B), Run(",")]


def test_style_of_the_whole_paragraph_stays_on_the_whole_translation():
    fake = FakeTranslator(unaligned={"dijo"})
    p = Paragraph([Run("dios dijo luz", ITALIC)])
    assert translate_paragraphs(fake, [p])[0] == [Run("LUZ DIJO DIOS", ITALIC)]


def test_unaligned_word_between_two_of_a_style_takes_it():
    fake = FakeTranslator(unaligned={"b"})
    p = Paragraph([Run("x "), Run("a b c", LINK)])
    assert translate_paragraphs(fake, [p])[0] == [Run("C B A", LINK), Run(" X")]


def test_article_aligned_with_the_noun_goes_to_the_article():
    # "the" attends to "tierra" more than to "la": both target words align with "tierra"
    fake = CannedTranslator({"ve la tierra": ("see the land", [(0, 0), (2, 1), (2, 2)])})
    p = Paragraph([Run("ve la "), Run("tierra", B)])
    assert translate_paragraphs(fake, [p])[0] == [Run("see the "), Run("land", B)]


def test_article_fix_leaves_a_source_word_with_its_own_target_alone():
    # "la" has its own target word: "the land" both on "tierra" stays as the model said
    fake = CannedTranslator({"la tierra": ("it the land", [(0, 0), (1, 1), (1, 2)])})
    p = Paragraph([Run("la "), Run("tierra", B)])
    assert translate_paragraphs(fake, [p])[0] == [Run("it "), Run("the land", B)]


def test_link_on_a_word_nothing_aligned_with_lands_on_a_neighbours_word():
    # no target word aligned with "barco", its neighbours have one each: the link, href and all,
    # goes to the plain word of the neighbour after it rather than vanish
    fake = CannedTranslator({"ve barco hoy": ("see today", [(0, 0), (2, 1)])})
    p = Paragraph([Run("ve "), Run("barco", LINK), Run(" hoy")])
    assert translate_paragraphs(fake, [p])[0] == [Run("see "), Run("today", LINK)]


def test_lost_style_between_other_styles_takes_the_nearest_plain_word():
    # "dos" aligned with nothing, its neighbours' words carry their own styles: the bold goes to
    # the plain target word nearest its position instead of taking over another mark
    table = {"uno dos tres cuatro cinco": ("ONE THREE FOUR FIVE", [(0, 0), (2, 1), (3, 2), (4, 3)])}
    p = Paragraph(
        [Run("uno", ITALIC), Run(" "), Run("dos", B), Run(" "), Run("tres", LINK)]
        + [Run(" cuatro cinco")]
    )
    out = translate_paragraphs(CannedTranslator(table), [p])[0]
    assert out == [
        Run("ONE", ITALIC),
        Run(" "),
        Run("THREE", LINK),
        Run(" "),
        Run("FOUR", B),
        Run(" FIVE"),
    ]


def test_every_styled_word_lands_somewhere_whatever_the_alignment():
    # 4 styled words and 2 plain ones, 4 target words, every alignment of one source word each
    styles = [B, ITALIC, LINK, CODE]
    source = "a b c d e f"
    words = source.split()
    for sources in itertools.product(range(6), repeat=4):
        table = {source: ("W X Y Z", [(s, t) for t, s in enumerate(sources)])}
        p = Paragraph(
            [Run(w + " ", styles[i] if i < 4 else None) for i, w in enumerate(words[:-1])]
            + [Run(words[-1])]
        )
        out = translate_paragraphs(CannedTranslator(table), [p])[0]
        kept = {r.style for r in out if r.text.strip()}
        assert kept >= set(styles), (sources, out)


def test_bold_lands_on_aligned_word_with_the_tiny_model(tiny):
    p = Paragraph([Run("casa", B), Run(" perro gato")])
    out = translate_paragraphs(tiny, [p], beam_size=1)[0]
    expected = tiny.translate("casa perro gato", beam_size=1, return_alignments=True)
    assert text_of(out) == expected.text == "gato perro casa"
    (target,) = [t for s, t in expected.hypotheses[0].alignment if s == 0]
    bold = [r.text for r in out if r.style == B]
    assert bold == [expected.text.split()[target]]


def test_keep_runs_are_never_sent_and_come_back_verbatim():
    fake = FakeTranslator()
    p = Paragraph([Run("usa "), Run("print(x)", CODE, keep=True), Run(" para ver")])
    out = translate_paragraphs(fake, [p])[0]
    assert fake.calls == [["usa para ver"]]
    # "usa" -> "USA" is the last target word: the code span follows it
    assert out == [Run("VER PARA USA "), Run("print(x)", CODE, keep=True)]


def test_keep_run_at_the_start_goes_before_the_word_aligned_with_the_next():
    fake = FakeTranslator()
    p = Paragraph([Run("x.y", CODE, keep=True), Run(" es bueno")])
    out = translate_paragraphs(fake, [p])[0]
    assert fake.calls == [["es bueno"]]
    assert out == [Run("BUENO "), Run("x.y", CODE, keep=True), Run(" ES")]


def test_urls_and_email_addresses_are_kept():
    fake = FakeTranslator()
    text = "mira https://example.org/a?b=1 o escribe a ana@example.org. fin"
    out = translate_paragraphs(fake, [Paragraph([Run(text)])])[0]
    sent = " ".join(fake.calls[0])
    assert "example" not in sent
    result = text_of(out)
    assert "https://example.org/a?b=1" in result and "ana@example.org." in result


def test_url_with_a_period_is_not_split_into_sentences():
    fake = FakeTranslator()
    translate_paragraphs(fake, [Paragraph([Run("ver http://x.com/a.b. Luego fin.")])])
    # sentences that need no alignment first, then those that do
    assert fake.calls == [["Luego fin."], ["ver"]]


def test_long_sentence_is_split_with_a_warning_not_truncated(tiny):
    sentence = " ".join(["casa perro gato sol luna"] * 30)  # 150 subwords, the model takes 63
    sent = []
    real = tiny.translate_batch

    def spy(texts, **options):
        sent.extend(texts)
        return real(texts, **options)

    tiny.translate_batch = spy
    try:
        with pytest.warns(RuntimeWarning, match="exceeds the model's 63; translated in 3 pieces"):
            out = translate_paragraphs(tiny, [Paragraph([Run(sentence)])], beam_size=1)
    finally:
        del tiny.translate_batch
    assert sent == [sentence]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert text_of(out[0]) == tiny.translate(sentence, beam_size=1)


def test_progress_reports_every_sentence_and_changes_nothing():
    paragraphs = [Paragraph([Run(f"palabra {i}. otra {i}.")]) for i in range(5)]
    seen = []
    with_progress = translate_paragraphs(
        FakeTranslator(), paragraphs, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (0, 10) and seen[-1] == (10, 10)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert with_progress == translate_paragraphs(FakeTranslator(), paragraphs)


def test_glossary_term_replaces_the_aligned_word():
    fake = FakeTranslator()
    p = Paragraph([Run("el "), Run("perro", B), Run(" come.")])
    out = translate_paragraphs(fake, [p], glossary={"Perro": "hound"})[0]
    assert fake.calls == [["el perro come."]]
    assert out == [Run("COME. "), Run("hound", B), Run(" EL")]


def test_glossary_remove_method_puts_the_term_where_its_neighbour_lands():
    fake = FakeTranslator()
    p = Paragraph([Run("el perro come.")])
    out = translate_paragraphs(fake, [p], glossary={"perro": "hound"}, glossary_method="remove")
    assert fake.calls == [["el come."]]
    assert text_of(out[0]) == "COME. EL hound"


def test_keep_terms_stay_as_they_are():
    fake = FakeTranslator()
    out = translate_paragraphs(fake, [Paragraph([Run("ve a Moisés hoy")])], keep=["Moisés"])
    assert text_of(out[0]) == "HOY Moisés A VE"


def test_term_matches_whole_words_only():
    terms = {"Beth": "B", "luz": "light"}
    assert term_spans("Beth-lehem y Bethel, luz. Luz", terms) == [
        (21, 24, "light"),
        (26, 29, "light"),
    ]


def test_glossary_file_and_keep_file(tmp_path):
    g = tmp_path / "g.tsv"
    g.write_text("# terms\nDios\tGod\n\nJehová\tYahweh\n", encoding="utf-8")
    assert load_glossary(g) == {"Dios": "God", "Jehová": "Yahweh"}
    g.write_text("Dios God\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="line 1: expected 'source term<TAB>target term'"):
        load_glossary(g)
    k = tmp_path / "keep.txt"
    k.write_text("Moab\n# x\nBooz\n", encoding="utf-8")
    assert load_keep(["Ruth", f"@{k}", str(k)]) == ["Ruth", "Moab", "Booz", "Moab", "Booz"]
    with pytest.raises(DocumentError, match="keep-list file not found"):
        load_keep(["@missing.txt"])
