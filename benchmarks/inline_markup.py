"""Does inline markup land on the right words of a translated document?

    .venv/bin/python benchmarks/inline_markup.py --out benchmarks/results/inline_markup.md

Test paragraphs are the test-book verses (test-books.es.txt) with inline markup on words whose
English form is known: <b> (Markdown **) around a Bible name (Booz / Boaz, Jonás / Jonah, Nínive /
Nineveh: the gold pairs of benchmarks/experiments/alignment_names.py) and <a href> ([text](url))
around a common noun with one clear counterpart (Dios / God, tierra / land or earth, ...). Each
verse gets at most one of each, on a word that occurs once in it. The paragraphs are translated as
one HTML document and one Markdown document through translate_document, and the markup of each
output paragraph is read back.

A mark is scored when its gold English word occurs exactly once in that paragraph's translation.
It lands exactly when the marked target words (a word counts when any of its letters is inside the
markup) are that word and nothing else; precision and recall are over marked vs gold words. The
same is computed for the simple alternatives on the plain translation of each verse (its
sentences, split by sentencex as the document core splits them, translated alone): markup
dropped, markup kept around the whole sentence, markup at the same relative word position, the raw
word alignment of translate(..., return_alignments=True), and that alignment after the core's fix
for articles (runtime/documents/translate.py: fix_articles), which is what the placement starts
from.

Prints a markdown table; with --out also writes it there and the figures as JSON beside it
(same name, .json).
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from traductor.runtime import Translator
from traductor.runtime.documents.translate import fix_articles
from traductor.runtime.machine import cpu_summary

HERE = Path(__file__).resolve().parent
URL = "https://example.org/{}"

# Spanish (Reina-Valera 1909) -> English names, from benchmarks/experiments/alignment_names.py
# (the names that occur in the test books), plus the test books' spelling of Bethlehem.
NAMES = {
    "noemi": ("naomi",),
    "rut": ("ruth",),
    "ruth": ("ruth",),
    "orpha": ("orpah",),
    "booz": ("boaz",),
    "elimelech": ("elimelech",),
    "mahalón": ("mahlon",),
    "chelión": ("chilion",),
    "moab": ("moab",),
    "moabita": ("moabitess",),
    "beth-lehem": ("bethlehem",),
    "judá": ("judah",),
    "isaí": ("jesse",),
    "david": ("david",),
    "obed": ("obed",),
    "jonás": ("jonah",),
    "nínive": ("nineveh",),
    "tarsis": ("tarshish",),
    "jope": ("joppa",),
    "amittai": ("amittai",),
    "miqueas": ("micah",),
    "jerusalem": ("jerusalem",),
    "samaria": ("samaria",),
    "sión": ("zion",),
    "israel": ("israel",),
    "jacob": ("jacob",),
    "pablo": ("paul",),
    "timoteo": ("timothy",),
    "epafrodito": ("epaphroditus",),
    "cristo": ("christ",),
    "jesús": ("jesus",),
    "abraham": ("abraham",),
    "isaac": ("isaac",),
    "elías": ("elijah",),
    "job": ("job",),
    "rahab": ("rahab",),
    "caín": ("cain",),
    "egipto": ("egypt",),
    "asiria": ("assyria",),
    "babilonia": ("babylon",),
    "filipos": ("philippi",),
    "macedonia": ("macedonia",),
    "evodia": ("euodia",),
    "síntique": ("syntyche",),
    "clemente": ("clement",),
    "césar": ("caesar",),
    "benjamín": ("benjamin",),
    "hebreo": ("hebrew",),
    "bashán": ("bashan",),
    "carmelo": ("carmel",),
    "galaad": ("gilead",),
    "nimrod": ("nimrod",),
    "balac": ("balak",),
    "balaam": ("balaam",),
    "beor": ("beor",),
    "sittim": ("shittim",),
    "gilgal": ("gilgal",),
    "aarón": ("aaron",),
    "moisés": ("moses",),
    "lachîs": ("lachish",),
    "gath": ("gath",),
}
# Common nouns with one clear English counterpart in the World English Bible's wording.
WORDS = {
    "dios": ("god",),
    "jehová": ("yahweh",),
    "señor": ("lord",),
    "tierra": ("land", "earth"),
    "hijo": ("son",),
    "hija": ("daughter",),
    "hijos": ("sons", "children"),
    "pueblo": ("people",),
    "padre": ("father",),
    "madre": ("mother",),
    "vida": ("life",),
    "palabra": ("word",),
    "día": ("day",),
    "días": ("days",),
    "noche": ("night",),
    "casa": ("house",),
    "ciudad": ("city",),
    "campo": ("field",),
    "nombre": ("name",),
    "fe": ("faith",),
    "muerte": ("death",),
    "espíritu": ("spirit",),
    "ley": ("law",),
    "mujer": ("woman", "wife"),
    "gozo": ("joy",),
    "pecado": ("sin",),
    "ojos": ("eyes",),
    "mano": ("hand",),
    "profetas": ("prophets",),
    "gentes": ("nations", "gentiles"),
    "paz": ("peace",),
    "mar": ("sea",),
    "rey": ("king",),
    "montes": ("mountains",),
    "corazón": ("heart",),
    "gracia": ("grace",),
    "agua": ("water",),
    "viento": ("wind",),
    "nave": ("ship",),
    "cielo": ("heaven", "sky"),
    "cebada": ("barley",),
}
_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_WORD = re.compile(r"\S+")
TAGS = ("b", "a")  # the name's markup, the common noun's markup


def norm(w: str) -> str:
    return _PUNCT.sub("", w).lower()


@dataclass
class Mark:
    tag: str  # "b" or "a"
    word: int  # index in verse.split()
    gold: tuple[str, ...]  # English forms of the marked word


@dataclass
class Case:
    index: int
    verse: str
    marks: list[Mark]

    def _wrapped(self, open_close) -> str:
        """The verse with each marked word's letters (not its punctuation) wrapped."""
        by_word = {m.word: m for m in self.marks}
        out, last = [], 0
        for k, match in enumerate(_WORD.finditer(self.verse)):
            out.append(self.verse[last : match.start()])
            w = match.group()
            if k in by_word:
                core = _PUNCT.sub("", w)
                start = w.index(core)
                opening, closing = open_close(by_word[k])
                w = w[:start] + opening + core + closing + w[start + len(core) :]
            out.append(w)
            last = match.end()
        return "".join(out) + self.verse[last:]

    def html(self) -> str:
        def tags(m: Mark):
            if m.tag == "b":
                return "\0b\1", "\0/b\1"
            return f'\0a href="{URL.format(self.index)}"\1', "\0/a\1"

        text = html.escape(self._wrapped(tags), quote=False)
        return "<p>" + text.replace("\0", "<").replace("\1", ">") + "</p>"

    def markdown(self) -> str:
        def tags(m: Mark):
            return ("**", "**") if m.tag == "b" else ("[", f"]({URL.format(self.index)})")

        return self._wrapped(tags)


def make_cases(verses: list[str]) -> list[Case]:
    """Verses with a name and/or a listed common noun that occur once: one mark of each kind."""
    cases = []
    for i, verse in enumerate(verses):
        words = [norm(w) for w in verse.split()]
        marks = []
        for tag, gold in (("b", NAMES), ("a", WORDS)):
            for k, w in enumerate(words):
                if w in gold and words.count(w) == 1 and all(m.word != k for m in marks):
                    marks.append(Mark(tag, k, gold[w]))
                    break
        if marks:
            cases.append(Case(i, verse, marks))
    return cases


# -- reading the markup back -----------------------------------------------------------------


@dataclass
class Marked:
    """One translated paragraph: its text and, per tag, the characters inside that tag."""

    text: str = ""
    inside: dict[str, set[int]] = field(default_factory=dict)
    hrefs: list[str] = field(default_factory=list)

    def words(self, tag: str) -> set[int]:
        """Indices (in text.split()) of the words with a letter inside `tag`."""
        chars = self.inside.get(tag, set())
        return {
            k
            for k, m in enumerate(_WORD.finditer(self.text))
            if any(i in chars for i in range(m.start(), m.end()) if self.text[i].isalnum())
        }


class _HtmlReader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[Marked] = []
        self.open: list[str] = []
        self.current: Marked | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.current = Marked()
        elif self.current is not None and tag in TAGS:
            self.open.append(tag)
            if tag == "a":
                self.current.hrefs.append(dict(attrs).get("href", ""))

    def handle_endtag(self, tag):
        if tag == "p" and self.current is not None:
            self.paragraphs.append(self.current)
            self.current, self.open = None, []
        elif tag in self.open:
            self.open.remove(tag)

    def handle_data(self, data):
        if self.current is None:
            return
        start = len(self.current.text)
        self.current.text += data
        for tag in self.open:
            self.current.inside.setdefault(tag, set()).update(range(start, start + len(data)))


def read_html(data: bytes) -> list[Marked]:
    reader = _HtmlReader()
    reader.feed(data.decode("utf-8"))
    reader.close()
    return reader.paragraphs


_MD_TOKEN = re.compile(r"\*\*|\[|\]\(([^)\s]*)\)")


def read_markdown(data: bytes) -> list[Marked]:
    """Paragraphs (blank-line separated) with ** and [text](url) read back; the test paragraphs
    hold no other Markdown."""
    out = []
    for block in re.split(r"\n\s*\n", data.decode("utf-8")):
        if not block.strip():
            continue
        para, last, bold, link = Marked(), 0, False, False
        for m in _MD_TOKEN.finditer(block):
            _append(para, block[last : m.start()], bold, link)
            last = m.end()
            if m.group() == "**":
                bold = not bold
            elif m.group() == "[":
                link = True
            else:
                link = False
                para.hrefs.append(m.group(1))
        _append(para, block[last:], bold, link)
        para.text = para.text.strip()  # the paragraph's own text, as split() sees it
        out.append(para)
    return out


def _append(para: Marked, text: str, bold: bool, link: bool) -> None:
    start = len(para.text)
    para.text += text
    for tag, on in (("b", bold), ("a", link)):
        if on:
            para.inside.setdefault(tag, set()).update(range(start, start + len(text)))


# -- the alternatives, on the plain translation ----------------------------------------------


@dataclass
class Plain:
    """A verse translated as the document core translates it: sentence by sentence (sentencex),
    rejoined with spaces; the alignment over the verse's and the translation's words."""

    text: str
    alignment: list[tuple[int, int]]
    fixed: list[tuple[int, int]]  # after the core's fix_articles, sentence by sentence
    sentences: list[tuple[range, range]]  # (source words, target words) of each sentence


def translate_plain(tr: Translator, verses: list[str], beam: int) -> list[Plain]:
    from sentencex import segment

    language = tr.config.source_language
    split = [[x.split() for x in segment(language, v) if x.strip()] for v in verses]
    flat = [" ".join(words) for sentences in split for words in sentences]
    results = iter(tr.translate_batch(flat, beam_size=beam, return_alignments=True))
    out = []
    for sentences in split:
        texts, alignment, fixed, spans, src, tgt = [], [], [], [], 0, 0
        for words in sentences:
            r = next(results)
            n = len(r.text.split())
            alignment += [(s + src, t + tgt) for s, t in r.hypotheses[0].alignment]
            own = [(s, t) for s, t in r.hypotheses[0].alignment if s < len(words)]
            fixed += [(s + src, t + tgt) for s, t in fix_articles(own)]
            spans.append((range(src, src + len(words)), range(tgt, tgt + n)))
            texts.append(r.text)
            src, tgt = src + len(words), tgt + n
        out.append(Plain(" ".join(texts), alignment, fixed, spans))
    return out


def sentence_words(plain: Plain, word: int) -> set[int]:
    """The target words of the sentence holding source word `word`."""
    return next((set(t) for s, t in plain.sentences if word in s), set())


def same_position(n_source: int, n_target: int, word: int) -> set[int]:
    return {min(word * n_target // max(n_source, 1), n_target - 1)} if n_target else set()


# -- scoring ---------------------------------------------------------------------------------


@dataclass
class Score:
    marks: int = 0  # marks whose gold word occurs exactly once in the translation
    exact: int = 0  # ... whose markup covers that word and no other
    marked: int = 0  # marked target words
    hit: int = 0  # marked target words that are the gold word
    paragraphs: int = 0  # paragraphs with at least one scored mark
    paragraphs_exact: int = 0  # ... whose scored marks all land exactly

    def add(self, marked: list[set[int]], gold: list[int]) -> None:
        self.paragraphs += 1
        exact = [m == {g} for m, g in zip(marked, gold)]
        self.paragraphs_exact += all(exact)
        self.marks += len(gold)
        self.exact += sum(exact)
        self.marked += sum(len(m) for m in marked)
        self.hit += sum(g in m for m, g in zip(marked, gold))

    def row(self) -> dict:
        return {
            "marks": self.marks,
            "exact": self.exact,
            "exact_share": self.exact / max(self.marks, 1),
            "paragraphs": self.paragraphs,
            "paragraphs_exact_share": self.paragraphs_exact / max(self.paragraphs, 1),
            "precision": self.hit / self.marked if self.marked else None,
            "recall": self.hit / max(self.marks, 1),
        }


def gold_index(translation: str, forms: tuple[str, ...]) -> int | None:
    """The one target word that is a gold form, or None if there is none or several."""
    found = [k for k, w in enumerate(translation.split()) if norm(w) in forms]
    return found[0] if len(found) == 1 else None


def score_method(cases, texts, placed, tags=TAGS) -> Score:
    """placed(case_index, mark) -> marked target words; texts[case_index] the translation."""
    s = Score()
    for c, case in enumerate(cases):
        marked, gold = [], []
        for m in case.marks:
            g = gold_index(texts[c], m.gold)
            if m.tag in tags and g is not None:
                marked.append(placed(c, m))
                gold.append(g)
        if gold:
            s.add(marked, gold)
    return s


def evaluate(tr: Translator, cases: list[Case], beam: int, formats: list[str]) -> dict:
    from traductor.runtime.documents.api import translate_document

    translated = translate_plain(tr, [c.verse for c in cases], beam)
    plain = [t.text for t in translated]
    align = [t.alignment for t in translated]
    methods = {
        "markup dropped": (plain, lambda c, m: set()),
        "whole sentence": (plain, lambda c, m: sentence_words(translated[c], m.word)),
        "same relative position": (
            plain,
            lambda c, m: same_position(len(cases[c].verse.split()), len(plain[c].split()), m.word),
        ),
        "raw alignment": (
            plain,
            lambda c, m: {tw for sw, tw in align[c] if sw == m.word},
        ),
        "raw alignment + article fix (the core's fix_articles)": (
            plain,
            lambda c, m: {tw for sw, tw in translated[c].fixed if sw == m.word},
        ),
    }
    documents, extra = {}, {}
    for fmt in formats:
        if fmt == "html":
            data = "<!DOCTYPE html>\n<html><body>\n" + "\n".join(c.html() for c in cases)
            data = (data + "\n</body></html>\n").encode()
        else:
            data = ("\n\n".join(c.markdown() for c in cases) + "\n").encode()
        start = time.perf_counter()
        out = translate_document(tr, data, fmt, beam_size=beam)
        seconds = time.perf_counter() - start
        paras = (read_html if fmt == "html" else read_markdown)(out)
        if len(paras) != len(cases):
            raise SystemExit(f"{fmt}: {len(paras)} paragraphs came back for {len(cases)}")
        texts = [p.text for p in paras]
        marks_out = sum(bool(p.words(m.tag)) for p, c in zip(paras, cases) for m in c.marks)
        hrefs = sum(URL.format(c.index) in p.hrefs for p, c in zip(paras, cases) if _has_a(c))
        extra[fmt] = {
            "seconds": seconds,
            "same_text_as_sentences": sum(t == p for t, p in zip(texts, plain)),
            "marks_kept": marks_out,
            "links_with_href": hrefs,
        }
        documents[f"traductor, {fmt}"] = (texts, lambda c, m, p=paras: p[c].words(m.tag))
    methods = {**documents, **methods}
    table = {}
    for name, (texts, placed) in methods.items():
        table[name] = {
            "all": score_method(cases, texts, placed).row(),
            **{tag: score_method(cases, texts, placed, (tag,)).row() for tag in TAGS},
        }
    return {"methods": table, "documents": extra}


def _has_a(case: Case) -> bool:
    return any(m.tag == "a" for m in case.marks)


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def report(meta: dict, runs: dict, cases: list[Case]) -> str:
    n_marks = sum(len(c.marks) for c in cases)
    n_links = sum(_has_a(c) for c in cases)
    lines = [
        f"Inline markup on {len(cases)} test-book paragraphs ({n_marks} marks: "
        f"{n_marks - n_links} <b> on a name, {n_links} <a href> on a common noun); "
        f"{meta['model']} ({meta['variant']}), {meta['threads']} thread(s), {meta['machine']}, "
        f"{meta['date']}.",
        "",
        "A mark is scored when its gold English word occurs once in the paragraph's translation; "
        "exact = the markup covers that word and no other word.",
    ]
    for beam, run in runs.items():
        lines += [
            "",
            f"### {beam}",
            "",
            "| method | scored marks | exact | paragraphs exact | precision | recall "
            "| exact <b> name | exact <a> noun |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in run["methods"].items():
            a = r["all"]
            lines.append(
                f"| {name} | {a['marks']} | {_pct(a['exact_share'])} "
                f"| {_pct(a['paragraphs_exact_share'])} | {_pct(a['precision'])} "
                f"| {_pct(a['recall'])} | {_pct(r['b']['exact_share'])} "
                f"| {_pct(r['a']['exact_share'])} |"
            )
        for fmt, d in run["documents"].items():
            lines.append(
                f"\n{fmt}: {d['marks_kept']}/{n_marks} marks present in the output, "
                f"{d['links_with_href']}/{n_links} links kept their href, "
                f"{d['same_text_as_sentences']}/{len(cases)} paragraphs' text equal to the "
                f"verse's sentences translated alone and rejoined, {d['seconds']:.1f} s."
            )
    lines += ["", f"Command: `{meta['command']}`"]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=str(HERE.parent / "models" / "es-en"), help="model package")
    p.add_argument("--variant", default=None, help="graph variant (default: the runtime's choice)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--beams", default="4,1", help="beam sizes to run (1 = greedy)")
    p.add_argument("--formats", default="html,md", help="document formats to run (html, md)")
    p.add_argument("--verses", type=int, default=None, help="only the first N verses")
    p.add_argument("--out", help="write the table here (markdown), the figures beside it (.json)")
    args = p.parse_args()
    verses = [
        v
        for v in (HERE / "test-books.es.txt").read_text(encoding="utf-8").splitlines()
        if v.strip()
    ][: args.verses]
    cases = make_cases(verses)
    tr = Translator(args.model, variant=args.variant, intra_threads=args.threads)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    runs = {}
    for beam in (int(b) for b in args.beams.split(",")):
        runs["greedy" if beam == 1 else f"beam {beam}"] = evaluate(tr, cases, beam, formats)
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": cpu_summary(),
        "model": os.path.relpath(args.model),
        "variant": tr.variant,
        "threads": args.threads,
        "paragraphs": len(cases),
        "command": ".venv/bin/python benchmarks/inline_markup.py " + " ".join(sys.argv[1:]),
    }
    text = report(meta, runs, cases)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(
            json.dumps({"meta": meta, "runs": runs}, indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
