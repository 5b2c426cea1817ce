"""The translation core: paragraphs of runs -> translated runs, formatting placed by word alignment.

    translated = translate_paragraphs(translator, parsed.paragraphs, glossary=..., keep=...)

Each paragraph is split into sentences (sentencex, in the model's source language); every sentence
of the document goes through Translator.translate_batch together, which sorts them by length and
batches them, so a sentence's translation is exactly translate() of that sentence (the runtime is
batch invariant). Sentences are rejoined with the whitespace that followed each one.

Formatting follows the words: each source word has the style of its run, and each target word takes
the style of the source word the model aligned it with (Candidate.alignment).

Text that is not to be translated (keep runs such as code spans, URLs, e-mail addresses, keep-list
terms) is never sent to the model: its whole words are taken out of the sentence, and put back
verbatim after the target word aligned with the source word before it (or before the one aligned
with the word after it). Measured on models/es-en, placeholder tokens are not copied: 0 of 4
sentences kept any of X, XX, 1, 42, #1, __0__, <0>, [1], and a URL left in the text derails the
whole sentence (docs/glossary.md).
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, groupby

from ..package import TraductorError
from .base import Paragraph, Run
from .glossary import GLOSSARY_METHODS, term_spans

# Words not to translate wherever they occur: URLs and e-mail addresses.
_URL = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"]+|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)
_WORD = re.compile(r"\S+")
_POSSESSIVE = re.compile(r"['’]s$")
_EDGE = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)  # leading punctuation, core, trailing punctuation


@dataclass(slots=True)
class _Atom:
    """A span of the paragraph that comes out as fixed runs instead of being translated."""

    start: int
    end: int
    runs: list[Run]  # what goes out in its place
    aligned: bool = (
        False  # True: its words stay in the model's input, the aligned output is replaced
    )


@dataclass(slots=True)
class _Word:
    text: str  # the source word as the model sees it
    styles: tuple[
        Hashable, Hashable, Hashable
    ]  # leading punctuation, letters, trailing punctuation
    atom: _Atom | None = None  # an aligned atom this word belongs to


@dataclass(slots=True)
class _Sentence:
    start: int  # paragraph offsets: text[start:end] is the sentence, text[end:stop] the space after
    end: int
    stop: int
    words: list[_Word] = field(default_factory=list)
    removed: list[tuple[int, _Atom]] = field(default_factory=list)  # (input words before it, atom)

    @property
    def source(self) -> str:
        return " ".join(w.text for w in self.words)

    def needs_alignment(self) -> bool:
        return bool(self.removed) or any(w.atom for w in self.words) or len(self._styles()) > 1

    def _styles(self) -> set:
        return {s for w in self.words for s in w.styles}


def translate_paragraphs(
    translator,
    paragraphs: Sequence[Paragraph],
    *,
    glossary: Mapping[str, str] | None = None,
    keep: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    glossary_method: str = "align",
    **options,
) -> list[list[Run]]:
    """Each paragraph's translated runs (paragraph i -> result[i]). options: Translator options
    (beam_size, batch_size, target_language, ...)."""
    if glossary_method not in GLOSSARY_METHODS:
        raise ValueError(f"glossary_method must be one of {', '.join(GLOSSARY_METHODS)}")
    options = {k: v for k, v in options.items() if k not in ("return_scores", "return_alignments")}
    language = translator.config.source_language
    terms = _terms(glossary, keep)
    interned: dict[tuple, tuple] = {}
    plans = [_plan(p, language, terms, glossary_method, interned) for p in paragraphs]
    sentences = [s for plan in plans if plan for s in plan[1]]
    outputs = _translate(translator, sentences, progress, options)
    out = []
    for p, plan in zip(paragraphs, plans):
        if plan is None:
            out.append(list(p.runs))
            continue
        chars, sents = plan
        out.append(_paragraph_runs(p.text, chars, sents, outputs))
    return out


def _terms(glossary: Mapping[str, str] | None, keep: Sequence[str]) -> dict[str, str]:
    terms = {t: t for t in keep if t.strip()}
    terms.update({s: t for s, t in (glossary or {}).items() if s.strip()})
    return terms


# -- reading a paragraph -----------------------------------------------------------------------


def _plan(p: Paragraph, language: str, terms: dict[str, str], method: str, interned: dict):
    """(the runs of its characters, sentences) of a paragraph, or None when it has nothing to
    translate. interned: the document's style tuples, shared by the words that have them."""
    text = p.text
    chars = _Chars(p.runs)
    if not any(not r.keep and any(ch.isalpha() for ch in r.text) for r in chars.runs):
        return None
    atoms = _atoms(text, chars, terms, method)
    sentences = []
    for start, end, stop in _sentence_spans(text, language, atoms):
        s = _Sentence(start, end, stop)
        for m in _WORD.finditer(text, start, end):
            atom = next((a for a in atoms if a.start < m.end() and m.start() < a.end), None)
            if atom is not None and not atom.aligned:
                if not s.removed or s.removed[-1][1] is not atom:
                    s.removed.append((len(s.words), atom))
                continue
            styles = _word_styles(text, chars, *m.span())
            styles = interned.setdefault(styles, styles)  # one tuple per combination, not per word
            s.words.append(_Word(m.group(), styles, atom))
        sentences.append(s)
    return chars, sentences


class _Chars:
    """The run each character of a paragraph comes from (chars[k]), kept as run boundaries: a list
    of a pointer per character was a third of the core's memory on a long document."""

    __slots__ = ("runs", "ends")

    def __init__(self, runs: Sequence[Run]):
        self.runs = [r for r in runs if r.text]
        self.ends = list(accumulate(len(r.text) for r in self.runs))

    def __getitem__(self, k: int) -> Run:
        return self.runs[bisect_right(self.ends, k)]

    def pieces(self, i: int, j: int) -> list[tuple[Run, int]]:
        """The runs characters i..j-1 come from, in order, each with how many of them it gives."""
        first, last = bisect_right(self.ends, i), bisect_right(self.ends, j - 1)
        if first == last:
            return [(self.runs[first], j - i)]
        out, start = [], i
        for r in range(first, last + 1):
            end = min(self.ends[r], j)
            out.append((self.runs[r], end - start))
            start = end
        return out

    def keep_spans(self) -> list[tuple[int, int]]:
        """(start, end) of each stretch of characters from keep runs."""
        spans: list[list[int]] = []
        start = 0
        for run, end in zip(self.runs, self.ends):
            if run.keep:
                if spans and spans[-1][1] == start:
                    spans[-1][1] = end
                else:
                    spans.append([start, end])
            start = end
        return [(a, b) for a, b in spans]


def _atoms(text: str, chars: _Chars, terms: dict[str, str], method: str) -> list[_Atom]:
    """Keep runs, URLs and e-mail addresses (whole words, put back verbatim), then glossary and
    keep-list terms, in paragraph order, never overlapping."""
    spans = chars.keep_spans()
    spans += [m.span() for m in _URL.finditer(text)]
    atoms = [_Atom(a, b, _slice(chars, text, a, b)) for a, b in _whole_words(text, spans)]
    for a, b, target in term_spans(text, terms):
        if any(x.start < b and a < x.end for x in atoms):
            continue
        style = Counter(chars[k].style for k in range(a, b)).most_common(1)[0][0]
        if method == "remove":
            a, b = _whole_words(text, [(a, b)])[0]
        atoms.append(_Atom(a, b, [Run(target, style)], aligned=method == "align"))
    return sorted(atoms, key=lambda x: x.start)


def _whole_words(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans widened to the whitespace around them, overlapping ones merged."""
    out: list[list[int]] = []
    for a, b in sorted(spans):
        while a > 0 and not text[a - 1].isspace():
            a -= 1
        while b < len(text) and not text[b].isspace():
            b += 1
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _slice(chars: _Chars, text: str, a: int, b: int) -> list[Run]:
    """text[a:b] as runs of the styles it was read with."""
    runs: list[Run] = []
    for k in range(a, b):
        r = chars[k]
        if runs and runs[-1].style == r.style and runs[-1].keep == r.keep:
            runs[-1] = Run(runs[-1].text + text[k], r.style, r.keep)
        else:
            runs.append(Run(text[k], r.style, r.keep))
    return runs


def _word_styles(text: str, chars: _Chars, a: int, b: int) -> tuple:
    """A word's styles: of its leading punctuation, its letters (most of them), its trailing
    punctuation; a missing part takes the letters' style."""
    whole = chars.pieces(a, b)
    if len(whole) == 1:  # the usual case: the word lies in one run
        style = whole[0][0].style
        return (style, style, style)
    lead, core, trail = _EDGE.match(text[a:b]).groups()
    if not core:
        core, lead = lead, ""
    mid = a + len(lead)

    def most(i: int, j: int):
        pieces = chars.pieces(i, j)
        first = pieces[0][0].style
        if all(run.style == first for run, _ in pieces):  # the usual case: one style
            return first
        counts: Counter = Counter()
        for run, n in pieces:  # in character order: a tie goes to the style met first
            counts[run.style] += n
        return counts.most_common(1)[0][0]

    style = most(mid, mid + len(core))
    return (
        most(a, mid) if lead else style,
        style,
        most(b - len(trail), b) if trail else style,
    )


def _sentence_spans(text: str, language: str, atoms: list[_Atom]):
    """(start, end, stop) of each sentence: text[start:end] without the whitespace that follows it,
    text[end:stop]. No sentence boundary falls inside an atom; leading whitespace is left alone."""
    segment = _segmenter()
    body_start = len(text) - len(text.lstrip())
    body_end = len(text.rstrip())
    pieces = list(segment(language, text[body_start:body_end]))
    bounds, pos = [], body_start
    if "".join(pieces) != text[body_start:body_end]:  # never seen; keep the paragraph whole
        pieces = [text[body_start:body_end]]
    for piece in pieces[:-1]:
        pos += len(piece)
        if not any(a.start < pos < a.end for a in atoms):
            bounds.append(pos)
    starts = [body_start, *bounds]
    stops = [*bounds, body_end]
    out = []
    for start, stop in zip(starts, stops):
        end = len(text[:stop].rstrip())
        if end <= start:  # whitespace only: it belongs to the sentence before
            if out:
                out[-1] = (out[-1][0], out[-1][1], stop)
            continue
        out.append((start, end, stop))
    if out:
        out[-1] = (out[-1][0], out[-1][1], len(text))
    return out


def _segmenter():
    try:
        from sentencex import segment
    except ModuleNotFoundError as e:
        raise TraductorError(
            "document translation needs sentencex, which is not installed: "
            "pip install 'traductor[documents]'"
        ) from e
    return segment


# -- translating -------------------------------------------------------------------------------


def _translate(translator, sentences: list[_Sentence], progress, options) -> dict[int, tuple]:
    """id(sentence) -> (translation, alignment or None). Sentences whose words all have one style
    and hold nothing to put back need no alignment, which costs a forward pass of its own."""
    todo = [s for s in sentences if s.words]
    total = len(todo)
    out: dict[int, tuple] = {}
    done = 0
    if progress:
        progress(0, total)
    for aligned in (False, True):
        group = [s for s in todo if s.needs_alignment() == aligned]
        for chunk in _chunks(translator, group, options, progress is not None):
            results = translator.translate_batch(
                [s.source for s in chunk], return_alignments=aligned, **options
            )
            for s, r in zip(chunk, results):
                out[id(s)] = (r.text, r.hypotheses[0].alignment if aligned else None)
            done += len(chunk)
            if progress:
                progress(done, total)
    return out


def _chunks(translator, group: list[_Sentence], options: dict, split: bool):
    """All sentences at once; for a progress report, slices of the length-sorted sentences, which
    the translator batches exactly as it would have batched them all (it sorts by length too)."""
    if not group:
        return
    if not split:
        yield group
        return
    size = (options.get("batch_size") or translator.defaults.batch_size) * 4
    tok = translator.tokenizer
    order = sorted(group, key=lambda s: len(tok.encode(s.source, add_special_tokens=False).ids))
    for i in range(0, len(order), size):
        yield order[i : i + size]


# -- writing the translation -------------------------------------------------------------------


@dataclass(slots=True)
class _Piece:
    text: str
    styles: tuple  # (leading, letters, trailing) for a word; (style,) * 3 for fixed runs
    runs: list[Run] | None = None  # fixed runs (an atom), else the word in its styles


def _paragraph_runs(text: str, chars: _Chars, sentences: list[_Sentence], outputs) -> list[Run]:
    runs: list[Run] = []
    head = sentences[0].start
    runs += _slice(chars, text, 0, head)
    for s in sentences:
        if s.words:
            translation, alignment = outputs[id(s)]
            pieces = _target_pieces(s, translation, alignment)
        else:  # nothing but atoms
            pieces = [_Piece("", (None,) * 3, a.runs) for _, a in s.removed]
        runs += _render(pieces, _base_style(s))
        runs += _slice(chars, text, s.end, s.stop)
    return _merge(runs)


def _base_style(s: _Sentence):
    """The style of most of a sentence's letters (plain text on a tie): what target words the model
    aligned with nothing take."""
    counts = Counter()
    for w in s.words:
        counts[w.styles[1]] += len(w.text)
    if not counts:
        return None
    top = max(counts.values())
    return None if counts.get(None) == top else counts.most_common(1)[0][0]


def _target_pieces(s: _Sentence, translation: str, alignment) -> list[_Piece]:
    words = [m.group() for m in _WORD.finditer(translation)]
    src_styles = {w.styles for w in s.words}
    if alignment is None or (
        len(src_styles) == 1 and not s.removed and not any(w.atom for w in s.words)
    ):
        style = s.words[0].styles
        return [_Piece(w, style) for w in words]
    alignment = fix_articles([(src, t) for src, t in alignment if src < len(s.words)])
    source_of = {t: src for src, t in alignment}
    pieces = [
        _target_piece(w, s.words[source_of[t]] if t in source_of else None)
        for t, w in enumerate(words)
    ]
    base = _base_style(s)
    _fill_unaligned(pieces, base)
    _rescue_lost_styles(s.words, pieces, source_of, base)
    pieces = _replace_aligned_atoms(s, pieces, source_of)
    return _insert_removed(s, pieces, alignment)


def fix_articles(alignment: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(source word, target word) pairs with articles moved to their own word: when two adjacent
    target words align with one source word and the source word before it has no target word, the
    first of the two moves to it. "la tierra" -> "the land": "the" attends to "tierra" more than to
    "la" (81 of the 133 extra words the raw alignment marks are "the"); measured in
    benchmarks/inline_markup.py, exact placement 66% -> 84% with beam 4, recall unchanged."""
    source_of = {t: s for s, t in alignment}
    used = set(source_of.values())
    out = dict(source_of)
    for t in sorted(source_of):
        s = source_of[t]
        first = source_of.get(t - 1) != s
        if first and source_of.get(t + 1) == s and s > 0 and s - 1 not in used:
            out[t] = s - 1
            used.add(s - 1)
    return sorted((s, t) for t, s in out.items())


def _target_piece(word: str, source: _Word | None) -> _Piece:
    if source is None:
        return _Piece(word, None)
    if source.styles[0] == source.styles[1] == source.styles[2]:  # one style: no edges to find
        return _Piece(word, source.styles)
    lead, core, trail = _EDGE.match(word).groups()
    style = source.styles[1]
    return _Piece(
        word,
        (
            source.styles[0] if lead and source.styles[0] != style else style,
            style,
            source.styles[2] if trail else style,
        ),
    )


def _fill_unaligned(pieces: list[_Piece], base) -> None:
    """A target word the model aligned with nothing takes its neighbours' style if they agree,
    else the sentence's base style."""
    for i, p in enumerate(pieces):
        if p.styles is not None:
            continue
        left = next((q.styles for q in reversed(pieces[:i]) if q.styles is not None), None)
        right = next((q.styles for q in pieces[i + 1 :] if q.styles is not None), None)
        style = left[2] if left and right and left[2] == right[0] else base
        p.styles = (style, style, style)


def _rescue_lost_styles(words: list[_Word], pieces: list[_Piece], source_of: dict, base) -> None:
    """A styled stretch of source words that no target word aligned with (attention often lands
    on the next word: "<b>Dios</b> dijo" -> God and said both on "dijo") still lands on one target
    word, so its formatting (a link's href) is not lost: the nearest target word of a neighbour
    that has two or more, else a neighbour's target word in the base style, else the target word
    nearest its relative position whose style is the base one or is also on another word."""
    targets: dict[int, list[int]] = {}
    for t, j in sorted(source_of.items()):
        targets.setdefault(j, []).append(t)
    j = 0
    while j < len(words):
        style = words[j].styles[1]
        k = j
        while k < len(words) and words[k].styles[1] == style:
            k += 1
        if style != base and pieces and not any(i in targets for i in range(j, k)):
            t, side = _rescue_target(
                pieces, targets.get(j - 1, []), targets.get(k, []), base, (j + k) / 2 / len(words)
            )
            lead, _, trail = pieces[t].styles
            # the punctuation on the far side of the lost words keeps its own style
            pieces[t].styles = (
                style if side == "after" else lead,
                style,
                style if side == "before" else trail,
            )
        j = k


def _rescue_target(pieces: list[_Piece], before: list[int], after: list[int], base, where: float):
    """(target word, which side of the lost words it stands for: "before", "after" or ""). Only a
    word whose style is the base one, or is also on another word, is taken: no mark is traded for
    another."""
    count = Counter(p.styles[1] for p in pieces)

    def free(t: int) -> bool:
        return pieces[t].styles[1] == base or count[pieces[t].styles[1]] > 1

    # the styled words came first (the punctuation after keeps its own), then the word before
    neighbours = [
        (after, 2, "after"),
        (before, 2, "before"),
        (after, 1, "after"),
        (before, 1, "before"),
    ]
    for targets, size, side in neighbours:
        if len(targets) >= size:
            t = targets[0] if side == "after" else targets[-1]
            if free(t):
                return t, side
    position = where * len(pieces) - 0.5
    order = sorted(range(len(pieces)), key=lambda t: abs(t - position))
    return next((t for t in order if free(t)), order[0]), ""


def _replace_aligned_atoms(s: _Sentence, pieces: list[_Piece], source_of: dict) -> list[_Piece]:
    """Glossary and keep terms left in the input: the target words aligned with their source words
    become the required term (the first one's leading and the last one's trailing punctuation
    stay)."""
    atoms = []
    for w in s.words:
        if w.atom is not None and w.atom not in atoms:
            atoms.append(w.atom)
    drop: set[int] = set()
    translation = " ".join(p.text for p in pieces)
    for atom in atoms:
        term = atom.runs[0].text
        if _count(translation, term) >= sum(a.runs[0].text == term for a in atoms):
            continue  # the model wrote the required term itself (where alignment may not say)
        src = {j for j, w in enumerate(s.words) if w.atom is atom}
        targets = sorted(t for t, j in source_of.items() if j in src and t < len(pieces))
        if not targets:
            # The model dropped the term: put it after the word aligned with the one before it.
            s.removed.append((min(src), atom))
            continue
        span = _best_group(targets, pieces, s.words, src, term)
        first = span[0]
        lead = _EDGE.match(pieces[first].text).group(1)
        trail = _EDGE.match(pieces[span[-1]].text).group(3)
        possessive = _POSSESSIVE.search(
            pieces[span[-1]].text[: len(pieces[span[-1]].text) - len(trail)]
        )
        trail = (possessive.group() if possessive else "") + trail
        style = atom.runs[0].style
        runs = ([Run(lead, pieces[first].styles[0])] if lead else []) + [
            Run(atom.runs[0].text, style)
        ]
        runs += [Run(trail, pieces[span[-1]].styles[2])] if trail else []
        pieces[first] = _Piece(
            lead + atom.runs[0].text + trail,
            (pieces[first].styles[0], style, pieces[span[-1]].styles[2]),
            runs,
        )
        drop.update(t for t in span if t != first)
    s.removed.sort(key=lambda x: x[0])
    return [p if i not in drop else None for i, p in enumerate(pieces)]


def _best_group(targets, pieces, words, src, term) -> list[int]:
    """Of the runs of consecutive target words aligned with a term, the one most like the source
    or the required term (spelling), else the longest: attention also strays to articles."""
    groups: list[list[int]] = []
    for t in targets:
        if groups and t == groups[-1][-1] + 1:
            groups[-1].append(t)
        else:
            groups.append([t])
    source = " ".join(words[j].text for j in sorted(src)).lower()

    def likeness(g):
        text = " ".join(pieces[t].text for t in g).lower()
        return max(_similar(text, source), _similar(text, term.lower())), len(g)

    # Within the group, as many words as the term has: "He said" aligned with Noemi -> "Naomi said".
    size = len(term.split())
    windows = [g[i : i + size] for g in groups for i in range(max(len(g) - size, 0) + 1)]
    return max(windows, key=likeness)


def _count(text: str, term: str) -> int:
    return len(re.findall(r"(?<!\w)" + re.escape(term) + r"(?!\w)", text))


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _insert_removed(s: _Sentence, pieces: list, alignment) -> list[_Piece]:
    """Put each atom taken out of the input back: after the last target word aligned with the
    source word before it, else before the first one aligned with the word after it, else where
    its share of the sentence puts it."""
    n_src, n_tgt = len(s.words), len(pieces)
    targets: dict[int, list[int]] = {}
    for src, t in alignment:
        if t < n_tgt and pieces[t] is not None:
            targets.setdefault(src, []).append(t)
    slots: dict[int, list[_Atom]] = {}
    for before, atom in s.removed:
        slot = None
        for j in range(before - 1, -1, -1):
            if j in targets:
                slot = max(targets[j]) + 1
                break
        if slot is None:
            after = [min(targets[j]) for j in range(before, n_src) if j in targets]
            slot = after[0] if after else round(before / max(n_src, 1) * n_tgt)
        slots.setdefault(slot, []).append(atom)
    out: list[_Piece] = []
    for i in range(n_tgt + 1):
        for atom in slots.get(i, []):
            style = atom.runs[0].style
            out.append(_Piece("".join(r.text for r in atom.runs), (style,) * 3, atom.runs))
        if i < n_tgt and pieces[i] is not None:
            out.append(pieces[i])
    return out


def _render(pieces: list[_Piece], base) -> list[Run]:
    """Pieces joined by single spaces; a space between two words of one style takes that style,
    else plain text (a link or bold run ends at its last word), else the sentence's base style."""
    runs: list[Run] = []
    for i, p in enumerate(pieces):
        if i:
            left, right = pieces[i - 1].styles[2], p.styles[0]
            space = left if left == right else None if None in (left, right) else base
            runs.append(Run(" ", space))
        if p.runs is not None:
            runs += p.runs
            continue
        if p.styles[0] == p.styles[1] == p.styles[2]:  # one run (what _merge would make of three)
            runs.append(Run(p.text, p.styles[1]))
            continue
        lead, core, trail = _EDGE.match(p.text).groups()
        if not core:
            core, lead = lead, ""
        runs += [Run(lead, p.styles[0]), Run(core, p.styles[1]), Run(trail, p.styles[2])]
    return [r for r in runs if r.text]


def _merge(runs: list[Run]) -> list[Run]:
    """Neighbouring runs of one style (and keep flag) joined into one."""
    out: list[Run] = []
    for (style, keep), group in groupby(runs, key=lambda r: (r.style, r.keep)):
        group = list(group)
        out.append(
            group[0] if len(group) == 1 else Run("".join(r.text for r in group), style, keep)
        )
    return out
