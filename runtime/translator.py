"""The public facade: `Translator(model_dir).translate(texts, **options)`.

Imports only onnxruntime, numpy and tokenizers (plus the standard library).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .align import align_words, target_words, token_words
from .continuous import ContinuousBeams
from .decoder import make_step_decoder, pad_sources
from .models import resolve_model
from .onnx_model import OnnxSeq2Seq, SessionSettings, resolve_providers
from .package import InputError, ModelError, read_config
from .search import BeamSearch, GreedySearch, Hypothesis, max_target_length
from .text import clean_text, split_sentences


@dataclass(frozen=True)
class TranslationOptions:
    beam_size: int = 4  # 1 = greedy; the package's config.json sets the default
    length_penalty: float = 1.0  # beam scores are divided by length ** length_penalty
    max_length: int | None = None  # most target subwords per sentence; None = 2 * source + 10
    num_hypotheses: int = 1  # n-best: how many hypotheses per input to return (<= beam_size)
    return_scores: bool = False  # return TranslationResult objects instead of strings
    batch_size: int = 32  # sentences decoded together
    target_language: str | None = (
        None  # multi-target models: which language (its >>xx<< tag is added)
    )
    return_alignments: bool = (
        False  # candidates carry word alignments (implies TranslationResult output)
    )

    def validate(self) -> TranslationOptions:
        def bad(name: str, why: str):
            return InputError(f"invalid option {name}={getattr(self, name)!r}: {why}")

        for name in ("beam_size", "num_hypotheses", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(name, "must be an integer >= 1")
        if self.beam_size > 64:
            raise bad("beam_size", "must be at most 64")
        if self.num_hypotheses > self.beam_size:
            raise bad("num_hypotheses", f"cannot exceed beam_size={self.beam_size}")
        if (
            not isinstance(self.length_penalty, (int, float))
            or isinstance(self.length_penalty, bool)
            or not np.isfinite(self.length_penalty)
            or self.length_penalty < 0
        ):
            raise bad("length_penalty", "must be a finite number >= 0")
        if self.max_length is not None and (
            not isinstance(self.max_length, int)
            or isinstance(self.max_length, bool)
            or self.max_length < 1
        ):
            raise bad("max_length", "must be None or an integer >= 1")
        for name in ("return_scores", "return_alignments"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be True or False")
        return self


@dataclass(frozen=True)
class Candidate:
    text: str
    score: float  # length-normalised log-probability (higher is better)
    log_prob: float  # sum of token log-probabilities
    tokens: list[str]
    token_log_probs: list[float] | None = (
        None  # per token (the end token's excluded), with return_alignments
    )
    # (source_word_index, target_word_index) pairs over the whitespace-separated words of the input
    # text and of this candidate's text, with return_alignments
    alignment: list[tuple[int, int]] | None = None


@dataclass(frozen=True)
class TranslationResult:
    text: str  # the best translation
    hypotheses: list[Candidate]  # n-best, best first (one per sentence part joined for long inputs)

    def to_dict(self) -> dict:
        """The JSON shape every front end uses (CLI --json, the HTTP server's alternatives)."""
        best = self.hypotheses[0]
        out = {
            "translation": self.text,
            "score": best.score,
            "log_prob": best.log_prob,
            "tokens": best.tokens,
            "alternatives": [
                {"translation": c.text, "score": c.score, "log_prob": c.log_prob}
                for c in self.hypotheses[1:]
            ],
        }
        if best.alignment is not None:
            out["alignment"] = [list(p) for p in best.alignment]
            out["token_log_probs"] = best.token_log_probs
        return out


@dataclass
class _Segment:
    text_index: int
    ids: list[int]  # source ids, end token included
    joiner: (
        str  # what goes before this segment's translation when rejoining ("" first, " " or "\n")
    )
    words: list[int] | None = (
        None  # with alignments: the input word (index in text.split()) of each id, -1 for tag/end
    )


class Translator:
    """Loads a model package once; `translate` may be called from many threads at once.

    model: a package directory, the name of an installed model (`traductor models` lists them), or
    None for $TRADUCTOR_MODEL, else the built-in es-en.

    intra_threads=None picks threads by the work (CPU provider): an encoder batch of fewer than 128
    source tokens and a decoder step over fewer than 24 rows (sentences x beams) run on one thread,
    larger ones on all cores, through a second session per graph created on first use (measured
    on 2 cores: one thread is 1.7x faster for a step over 1 row, two are 1.4x faster over 128 rows).
    An integer n runs everything on n threads with one session per graph.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        providers: Sequence[str] | str = ("cpu",),
        variant: str | None = None,
        intra_threads: int | None = None,
        provider_options: dict | None = None,
        fallback: Sequence[str] = (),
        optimization: str = "all",
        shortlist: bool = True,
    ):
        self.model_dir = resolve_model(model)
        # Score only each sentence's shortlisted tokens where the package has a shortlist
        # (config.shortlist); False: always the whole vocabulary. May be changed between calls.
        self.use_shortlist = shortlist
        if intra_threads is not None and (not isinstance(intra_threads, int) or intra_threads < 1):
            raise InputError(
                f"invalid intra_threads={intra_threads!r}: must be None or an integer >= 1"
            )
        config = read_config(self.model_dir)
        self.tokenizer = _load_tokenizer(self.model_dir, config.tokenizers.source)  # source side
        same = config.tokenizers.target == config.tokenizers.source
        self.target_tokenizer = (
            self.tokenizer if same else _load_tokenizer(self.model_dir, config.tokenizers.target)
        )
        settings = SessionSettings(
            resolve_providers(providers, provider_options, fallback), intra_threads, optimization
        )
        self.model = OnnxSeq2Seq(
            self.model_dir, variant, settings
        )  # variant None: choose_variant()
        self.config = config
        self.variant = self.model.variant
        st = config.special_tokens
        self._specials = st
        self.defaults = TranslationOptions(
            beam_size=config.decoding.beam_size, length_penalty=config.decoding.length_penalty
        )
        if self.tokenizer.get_vocab_size() > config.dims.vocab_size:
            raise ModelError(
                f"{config.tokenizers.source} has {self.tokenizer.get_vocab_size()} tokens, the "
                f"model only {config.dims.vocab_size}"
            )
        self._tags = {}
        for lang, tag in config.language_tags.items():
            tag_id = self.tokenizer.token_to_id(tag)
            if tag_id is None:
                raise ModelError(
                    f"config.json: language tag {tag!r} ({lang}) is not a token of "
                    f"{config.tokenizers.source}"
                )
            self._tags[lang] = tag_id

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions really use, in priority order."""
        return self.model.providers

    # -- public API ----------------------------------------------------------------------------

    def translate_batch(self, texts: Sequence[str], **options) -> list[TranslationResult]:
        """The one entry point of every front end (CLI, bench, HTTP server): a list of texts ->
        one TranslationResult each (n-best with scores), whatever the options. Options are
        TranslationOptions fields; a bad one raises InputError (a ValueError)."""
        if isinstance(texts, str):
            raise InputError(
                "translate_batch() takes a list of strings; use translate() for one string"
            )
        return self._translate_batch(_check_texts(texts), self._options(options))

    def translate(
        self, texts: str | Sequence[str], **options
    ) -> str | list[str] | TranslationResult | list[TranslationResult]:
        """Convenience over translate_batch: a string for a string, a list for a list; with
        return_scores=True or num_hypotheses > 1, TranslationResult(s) instead of text."""
        single = isinstance(texts, str)
        batch = _check_texts(texts)
        opts = self._options(options)
        results = self._translate_batch(batch, opts)
        if not (opts.return_scores or opts.return_alignments or opts.num_hypotheses > 1):
            out = [r.text for r in results]
            return out[0] if single else out
        return results[0] if single else results

    def translate_stream(
        self, text: str, *, max_length: int | None = None, target_language: str | None = None
    ) -> Iterator[str]:
        """Yield the (greedy) translation of `text` piece by piece as tokens are produced."""
        if not isinstance(text, str):
            raise InputError(f"translate_stream() takes a string, got {type(text).__name__}")
        opts = self._options(
            {"max_length": max_length, "beam_size": 1, "target_language": target_language}
        )
        segments = self._segments([text], opts)
        for seg in segments:
            if seg.joiner:
                yield seg.joiner
            if not seg.ids:
                continue
            ids, mask = self._pad([seg.ids])
            limit = max_length or self._limit(seg.ids)
            decoder = make_step_decoder(self.model, ids, mask, max_steps=limit)
            hyp = [Hypothesis([], 0.0, False)]
            shown = ""
            for _ in GreedySearch(
                self._specials.bos_id, self._specials.eos_id, self.config.decoding.min_length
            ).generate(decoder, [limit], hyp):
                text_so_far = self.target_tokenizer.decode(hyp[0].tokens)
                # Hold back a partly decoded multi-byte character until it is complete.
                if text_so_far.startswith(shown) and not text_so_far.endswith("\ufffd"):
                    if len(text_so_far) > len(shown):
                        yield text_so_far[len(shown) :]
                    shown = text_so_far
            final = self.target_tokenizer.decode(hyp[0].tokens)
            if final.startswith(shown) and len(final) > len(shown):
                yield final[len(shown) :]

    # -- internals -----------------------------------------------------------------------------

    def _options(self, options: dict) -> TranslationOptions:
        known = {f.name for f in fields(TranslationOptions)}
        unknown = set(options) - known
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}"
            )
        given = {k: v for k, v in options.items() if v is not None or k == "max_length"}
        opts = replace(self.defaults, **given).validate()
        self._tag(opts.target_language)  # checked here, used when encoding
        return opts

    def _tag(self, lang: str | None) -> list[int]:
        """The source ids that ask a multi-target model for `lang` ([] for single-target models)."""
        cfg = self.config
        if not self._tags:
            if lang not in (None, cfg.target_language):
                raise InputError(
                    f"invalid option target_language={lang!r}: this model translates into "
                    f"{cfg.target_language} only"
                )
            return []
        if lang is None:
            raise InputError(
                "this model translates into several languages: pass target_language (--to on the "
                f"command line), one of {', '.join(sorted(self._tags))}"
            )
        if lang not in self._tags:
            raise InputError(
                f"invalid option target_language={lang!r}: this model offers "
                f"{', '.join(sorted(self._tags))}"
            )
        return [self._tags[lang]]

    def _limit(self, ids: list[int]) -> int:
        d = self.config.decoding
        return max_target_length(
            len(ids), self.config.dims.max_len, d.max_length_ratio, d.max_length_extra
        )

    def _segments(self, texts: list[str], opts: TranslationOptions) -> list[_Segment]:
        """Texts -> sentence-sized id lists the model can take, remembering how to rejoin them."""
        tag = self._tag(opts.target_language)
        max_src = (
            self.config.dims.max_len - 1 - len(tag)
        )  # room for the end token (and a language tag)
        eos = self._specials.eos_id
        segments = []
        for i, text in enumerate(texts):
            lines = text.split("\n")
            first = True
            base = 0  # words of the text before the current part
            for line in lines:
                joiner = "" if first else "\n"
                first = False
                line = clean_text(line)
                if not line:
                    segments.append(_Segment(i, [], joiner))
                    continue
                enc = self.tokenizer.encode(line, add_special_tokens=False)
                ids = enc.ids
                parts = [line] if len(ids) <= max_src // 2 else split_sentences(line)
                for j, part in enumerate(parts):
                    if len(parts) > 1:
                        enc = self.tokenizer.encode(part, add_special_tokens=False)
                        ids = enc.ids
                    words = None
                    if opts.return_alignments:
                        words = [base + w for w in token_words(enc.offsets, part)]
                    base += len(part.split())
                    chunks = [ids[k : k + max_src] for k in range(0, len(ids), max_src)] or [[]]
                    if len(chunks) > 1:
                        warnings.warn(
                            f"input {i}: a sentence of {len(ids)} subwords exceeds the model's "
                            f"{max_src}; translated in {len(chunks)} pieces",
                            RuntimeWarning,
                            stacklevel=4,
                        )
                    for c, chunk in enumerate(chunks):
                        w = (
                            None
                            if words is None
                            else [-1] * len(tag)
                            + words[c * max_src : c * max_src + len(chunk)]
                            + [-1]
                        )
                        segments.append(
                            _Segment(
                                i, tag + chunk + [eos], joiner if (j == 0 and c == 0) else " ", w
                            )
                        )
        return segments

    def _pad(self, seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        return pad_sources(seqs, self._specials.pad_id, self.config.decoding.source_pad_multiple)

    def _search(
        self, seqs: list[list[int]], opts: TranslationOptions, model=None, attention=False
    ) -> list[list[Hypothesis]]:
        """attention: greedy hypotheses carry their decoding's cross-attention where the decoder
        records it (Hypothesis.attention)."""
        st, model = self._specials, model or self.model
        ids, mask = self._pad(seqs)
        limits = [opts.max_length or self._limit(s) for s in seqs]
        candidates = self._candidates(seqs, 2 * opts.beam_size + 1)
        if opts.beam_size == 1:
            decoder = make_step_decoder(
                model,
                ids,
                mask,
                max_steps=max(limits),
                record_attention=attention,
                candidates=candidates,
            )
            return GreedySearch(st.bos_id, st.eos_id, self.config.decoding.min_length).search(
                decoder, limits
            )
        decoder = make_step_decoder(
            model, ids, mask, repeat=opts.beam_size, max_steps=max(limits), candidates=candidates
        )
        return self._beam_search(opts).search(decoder, limits)

    def _candidates(self, seqs: list[list[int]], width: int):
        """Each sentence's shortlisted target tokens (None: the whole vocabulary). width: the most
        tokens a step asks of a row."""
        table = self.model.shortlist
        return table.candidates(seqs, width) if table is not None and self.use_shortlist else None

    def translate_ids(
        self, seqs: list[list[int]], opts: TranslationOptions
    ) -> list[list[Hypothesis]]:
        """Source id lists (end token included) -> n-best hypotheses.

        Batch invariance: a sentence's result does not depend on what it is batched with. Every
        source is padded to a multiple of source_pad_multiple (8): alone, to its own length rounded
        up; in a batch, to the batch's longest. Padding beyond a sentence's own multiple of 8 is
        exact: masked positions add exact zeros to the attention sums, and ONNX Runtime's CPU
        kernels (AVX-512, AVX2 and SSE alike) add a sentence's real positions in the same order at
        any padded length that is a multiple of 8 (tests/runtime/test_batch_invariance.py checks it
        bit for bit). int8 scales are per row, and rows are computed independently. So sentences of
        any lengths share a batch; sorting by length keeps the padding small.
        """
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[list[Hypothesis]] = [[] for _ in seqs]
        for start in range(0, len(order), opts.batch_size):
            idx = order[start : start + opts.batch_size]
            for i, hyps in zip(idx, self._search([seqs[i] for i in idx], opts)):
                out[i] = hyps
        return out

    def _translate_batch(
        self, texts: list[str], opts: TranslationOptions
    ) -> list[TranslationResult]:
        plan = self._plan(texts, opts)
        if not opts.return_alignments:
            return plan.results(dict(enumerate(self.translate_ids(plan.sources, opts))))
        # Alignments: greedy reads them off its own steps where the decoder graph outputs the
        # attention; otherwise each decoding batch is aligned at once by the alignment graph, on the
        # encoder output it decoded from.
        work, hyps, pairs = plan._work, {}, {}
        order = sorted(range(len(work)), key=lambda i: len(work[i].ids))
        for start in range(0, len(order), opts.batch_size):
            idx = order[start : start + opts.batch_size]
            model = _Recording(self.model)
            found = self._search([work[i].ids for i in idx], opts, model, attention=True)
            items = [(work[i], h) for i, h in zip(idx, found)]
            if all(h.attention is not None or not h.tokens for _, hs in items for h in hs):
                aligned = [[self._align_recorded(seg, h) for h in hs] for seg, hs in items]
            else:
                aligned = self._align(items, len(idx), model.cross)
            for i, h, a in zip(idx, found, aligned):
                hyps[i], pairs[id(work[i])] = h, a
        return plan.results(hyps, pairs)

    def _align_recorded(self, seg: _Segment, h: Hypothesis) -> list[tuple[int, int]]:
        """The word alignment of a hypothesis from the attention its decoding recorded: the same
        layer, heads and rows as the alignment graph's (`_align`)."""
        if not h.tokens:
            return []
        # (tokens, heads, src_len) -> (heads, tokens, src_len)
        return self._link_words(seg, h, np.stack(h.attention).transpose(1, 0, 2))

    def _link_words(self, seg: _Segment, h: Hypothesis, per_head: np.ndarray):
        """per_head (heads, tokens, src_len): the alignment layer's attention while predicting each
        of h's tokens -> (source word, target word) pairs, from the mean of the configured heads."""
        heads = self.config.alignment.heads
        attn = (per_head if heads is None else per_head[heads]).mean(axis=0)
        attn = attn[: len(h.tokens), : len(seg.ids)]
        return align_words(attn, seg.words, target_words(self.target_tokenizer, h.tokens))

    def plan(self, texts: Sequence[str], **options) -> Plan:
        """The sentences to decode for `texts` (for a caller that runs the decoding itself, as the
        server's continuous batching does): plan.sources[i] (source ids) with plan.limits[i], then
        plan.results({i: n-best hypotheses}) gives what translate_batch(texts, **options) gives."""
        if isinstance(texts, str):
            raise InputError("plan() takes a list of strings")
        return self._plan(_check_texts(texts), self._options(options))

    def _plan(self, texts: list[str], opts: TranslationOptions) -> Plan:
        segments = self._segments(texts, opts)
        return Plan(self, texts, opts, segments, [s for s in segments if s.ids])

    def continuous_beams(self, **options) -> ContinuousBeams:
        """A running beam-search batch for these options; plans' sentences join it at any step."""
        st = self._specials
        return ContinuousBeams(
            self.model,
            self._beam_search(self._options(options)),
            st.pad_id,
            self.config.decoding.source_pad_multiple,
        )

    def _beam_search(self, opts: TranslationOptions) -> BeamSearch:
        st = self._specials
        return BeamSearch(
            st.bos_id,
            st.eos_id,
            opts.beam_size,
            opts.length_penalty,
            opts.num_hypotheses,
            self.config.decoding.min_length,
        )

    def _results(
        self,
        texts: list[str],
        segments: list[_Segment],
        by_segment: dict,
        opts: TranslationOptions,
        alignments: dict | None = None,
    ) -> list[TranslationResult]:
        """by_segment: id(segment) -> its n-best; alignments: id(segment) -> each hypothesis' word
        alignment where already computed (with return_alignments, the rest are computed here)."""
        n = opts.num_hypotheses
        parts: list[list[list[Candidate]]] = [[] for _ in texts]
        joiners: list[list[str]] = [[] for _ in texts]
        found_of = [by_segment.get(id(s), []) for s in segments]
        todo = [(s, f) for s, f in zip(segments, found_of) if f and id(s) not in (alignments or {})]
        alignments = dict(alignments or {})
        if opts.return_alignments and todo:
            alignments.update(
                (id(s), a) for (s, _), a in zip(todo, self._align(todo, opts.batch_size))
            )
        for s, found in zip(segments, found_of):
            cands = [self._candidate(h, opts) for h in found] or [
                Candidate(
                    "",
                    0.0,
                    0.0,
                    [],
                    [] if opts.return_alignments else None,
                    [] if opts.return_alignments else None,
                )
            ]
            if opts.return_alignments and found:
                cands = [
                    replace(c, alignment=pairs, token_log_probs=list(h.token_scores))
                    for c, h, pairs in zip(cands, found, alignments[id(s)])
                ]
            parts[s.text_index].append(cands)
            joiners[s.text_index].append(s.joiner)
        results = []
        for i in range(len(texts)):
            if not parts[i]:
                results.append(TranslationResult("", [Candidate("", 0.0, 0.0, [])]))
                continue
            nbest = []
            for r in range(n):
                # Rank r of a multi-part text joins rank r of each part (or its best, if fewer).
                chosen = [c[min(r, len(c) - 1)] for c in parts[i]]
                text = "".join(j + c.text for j, c in zip(joiners[i], chosen))
                alignment = token_lps = None
                if (
                    opts.return_alignments
                ):  # each part's target word indices move by the words before it
                    alignment, token_lps, before = [], [], 0
                    for c in chosen:
                        alignment += [(sw, tw + before) for sw, tw in c.alignment]
                        token_lps += c.token_log_probs
                        before += len(c.text.split())
                nbest.append(
                    Candidate(
                        text,
                        sum(c.score for c in chosen),
                        sum(c.log_prob for c in chosen),
                        [t for c in chosen for t in c.tokens],
                        token_lps,
                        alignment,
                    )
                )
                if all(len(c) <= r + 1 for c in parts[i]):
                    break
            results.append(TranslationResult(nbest[0].text, nbest))
        return results

    def _align(
        self,
        items: list[tuple[_Segment, list[Hypothesis]]],
        batch_size: int,
        cross: list[np.ndarray] | None = None,
    ) -> list[list[list[tuple[int, int]]]]:
        """Word alignments of every hypothesis of every (segment, n-best) item: items[i][1][k] ->
        out[i][k], from forced runs of the alignment graph over batches of batch_size hypotheses
        (sorted by target, then source length, so little is padded).

        Batching changes nothing: sources are padded as translate_ids pads them (to the batch's
        longest, a multiple of source_pad_multiple), targets with end tokens to the batch's longest;
        a row's weights over its own positions are bit for bit those of the row alone (the
        decoder is causal, masked source positions add exact zeros, rows are computed apart:
        tests/runtime/test_alignment.py checks it).

        cross: the encoder output of [s.ids for s, _ in items] padded together (the decoding
        batch's), when the items are one decoding batch: the sources are not encoded again.
        """
        st, a = self._specials, self.config.alignment
        rows = [(i, k) for i, (_, hyps) in enumerate(items) for k in range(len(hyps))]
        rows.sort(key=lambda r: (len(items[r[0]][1][r[1]].tokens), len(items[r[0]][0].ids)))
        out: list[list] = [[None] * len(hyps) for _, hyps in items]
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            hyps = [items[i][1][k] for i, k in batch]
            segs = [items[i][0] for i, _ in batch]
            target = np.full(
                (len(batch), max(len(h.tokens) for h in hyps) + 1), st.eos_id, dtype=np.int64
            )
            for r, h in enumerate(hyps):
                target[r, 0] = st.bos_id
                target[r, 1 : 1 + len(h.tokens)] = h.tokens
            ids, mask = self._pad([s.ids for s in segs])
            rows_cross = None
            if cross is not None:  # each row's sentence's rows of the batch's encoder output
                sentence = np.array([i for i, _ in batch])
                rows_cross = [c[sentence, :, : ids.shape[1]] for c in cross]
            # (rows, layers, heads, target, source)
            weights = self.model.alignment_weights(ids, mask, target, rows_cross)
            for r, ((i, k), h, seg) in enumerate(zip(batch, hyps, segs)):
                # row t predicts token t
                out[i][k] = self._link_words(seg, h, weights[r, a.layer])
        return out

    def _candidate(self, h: Hypothesis, opts: TranslationOptions) -> Candidate:
        return Candidate(
            self.target_tokenizer.decode(h.tokens),
            h.normalized(opts.length_penalty),
            h.score,
            [self.target_tokenizer.id_to_token(t) for t in h.tokens],
        )


class Plan:
    """What Translator.plan returns: some texts' sentences, and how to rejoin their translations."""

    def __init__(
        self,
        translator: Translator,
        texts: list[str],
        opts: TranslationOptions,
        segments: list[_Segment],
        work: list[_Segment],
    ):
        self.translator, self.texts, self.options, self._segments, self._work = (
            translator,
            texts,
            opts,
            segments,
            work,
        )
        self.sources = [s.ids for s in work]
        self.limits = [opts.max_length or translator._limit(s.ids) for s in work]

    def results(
        self, hyps: dict[int, list[Hypothesis]], alignments: dict | None = None
    ) -> list[TranslationResult]:
        """hyps[i]: the n-best of sources[i] -> one TranslationResult per text."""
        return self.translator._results(
            self.texts,
            self._segments,
            {id(s): hyps[i] for i, s in enumerate(self._work)},
            self.options,
            alignments,
        )


class _Recording:
    """The model, keeping the last encoder output it gives (the decoding's), for the alignments."""

    def __init__(self, model: OnnxSeq2Seq):
        self._model, self.cross = model, None

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        self.cross = self._model.encode(input_ids, attention_mask)
        return self.cross

    def __getattr__(self, name: str):
        return getattr(self._model, name)


def _load_tokenizer(model_dir: Path, name: str) -> Tokenizer:
    path = model_dir / name
    if not path.is_file():
        raise ModelError(f"{model_dir} has no {name}")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for malformed JSON
        raise ModelError(f"{path} could not be read: {e}") from e


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)):
        raise InputError(
            "translate() takes str, not bytes: decode the input first (e.g. data.decode('utf-8'))"
        )
    if not isinstance(texts, Sequence):
        raise InputError(
            f"translate() takes a string or a list of strings, got {type(texts).__name__}"
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"translate() takes strings; item {i} is {type(t).__name__}")
    return list(texts)
