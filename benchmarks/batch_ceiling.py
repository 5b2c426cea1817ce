"""What batching can give in one process, without HTTP: the ceiling for `traductor serve`.

    .venv/bin/python benchmarks/batch_ceiling.py --out benchmarks/results/batch_ceiling.md

Test-book verses (the first --verses of them), translated with the shipped model on 1 intra-op
thread per call: one verse per call; batches of 16 in one thread; batches of 16 from two threads at
once (as `serve --workers 2`). With --copies, also the bound of any batching scheduler, continuous
batching included, on every 8th verse: one verse per call, batches of 16 of those verses, and
batches of 16 copies of one verse (every sentence of a batch has the same length, so none waits for
a longer one and the batch never thins out), each on one thread and on two at once. Then greedy
batches of 16 with finished sentences dropped at once (slack 0) or lazily (DroppingRows, slack 0.25
and 0.5). Every setting runs in each of --repeats rounds, interleaved; medians are reported, as a
markdown table printed and, with --out, written to that file.

--ct2 also runs the same three modes on CTranslate2 int8 with the same weights (converted as
compare_engines.py does; one Translator with 2 replicas of 1 thread each): what batching gives the
reference engine on the same machine, next to what it gives traductor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import traductor.runtime.decoder as decoder
from traductor.runtime import Translator
from traductor.runtime.machine import cpu_summary

HERE = Path(__file__).resolve().parent
SLACKS = (0.0, 0.25, 0.5)  # DroppingRows slack: 0 drops finished sentences at once


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=str(HERE.parent / "models" / "es-en"), help="model package")
    p.add_argument("--verses", type=int, default=256, help="the first N test-book verses")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians reported)")
    p.add_argument("--out", help="also write the report (markdown) here")
    p.add_argument(
        "--copies",
        action="store_true",
        help="also batches of 16 copies of one verse (no tails: the bound for any scheduler)",
    )
    p.add_argument(
        "--ct2",
        action="store_true",
        help="also measure CTranslate2 int8 (needs ctranslate2 and torch)",
    )
    args = p.parse_args()
    verses = [
        v
        for v in (HERE / "test-books.es.txt").read_text(encoding="utf-8").splitlines()
        if v.strip()
    ][: args.verses]
    tr = Translator(args.model, intra_threads=1)
    chunks = [verses[i : i + 16] for i in range(0, len(verses), 16)]

    def run(parts, beam):
        for c in parts:
            tr.translate_batch(c, beam_size=beam)

    copies_sets = _copies_sets(verses) if args.copies else {}
    settings, counts = _settings(run, verses, chunks, copies_sets)
    if args.ct2:
        for beam, fn in _ct2_runs(Path(args.model), verses, chunks, copies_sets).items():
            for mode, run_mode in fn.items():
                settings[(beam, f"CTranslate2 int8: {mode}")] = run_mode
                if mode in copies_sets:
                    counts[(beam, f"CTranslate2 int8: {mode}")] = sum(
                        map(len, copies_sets[mode][0])
                    )
    tr.translate_batch(verses[:4], beam_size=4)  # warm-up
    med = _medians(settings, counts, lambda: run(chunks, 1), len(verses), args.repeats)
    report = "\n".join(_report(med, args, len(verses))) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


def _settings(run, verses: list[str], chunks: list[list[str]], copies_sets: dict):
    """{(beam, mode): callable} for traductor, and the verses each translates where not all."""
    settings, counts = {}, {}
    for beam in (1, 4):
        settings[(beam, "one verse per call")] = lambda b=beam: run([[v] for v in verses], b)
        settings[(beam, "batches of 16, 1 thread")] = lambda b=beam: run(chunks, b)
        settings[(beam, "batches of 16, 2 threads at once")] = lambda b=beam: _on_two_threads(
            run, chunks, b
        )
        for mode, (parts, two) in copies_sets.items():
            settings[(beam, mode)] = _runner(run, parts, beam, two)
            counts[(beam, mode)] = sum(map(len, parts))
    return settings, counts


def _with_slack(original, slack: float):
    """DroppingRows.__init__ with its slack forced (the runtime's own choice is overridden)."""

    def init(self, inner, repeat=1, slack=None, filler=0):
        original(self, inner, repeat, slack=forced, filler=filler)

    forced = slack
    return init


def _medians(settings: dict, counts: dict, greedy_chunks, n_verses: int, repeats: int) -> dict:
    """Verses/s of every setting, and of greedy batches at each of SLACKS (keyed ("slack", s)),
    interleaved over the rounds; the median of each."""

    def rate(fn, n: int | None = None) -> float:
        t = time.perf_counter()
        fn()
        return (n or n_verses) / (time.perf_counter() - t)

    original = decoder.DroppingRows.__init__
    results: dict = {}
    for _ in range(repeats):
        for key, fn in settings.items():
            results.setdefault(key, []).append(rate(fn, counts.get(key)))
        for slack in SLACKS:
            decoder.DroppingRows.__init__ = _with_slack(original, slack)
            try:
                results.setdefault(("slack", slack), []).append(rate(greedy_chunks))
            finally:
                decoder.DroppingRows.__init__ = original
    return {k: statistics.median(v) for k, v in results.items()}


def _report(med: dict, args, n_verses: int) -> list[str]:
    lines = [
        f"{n_verses} test-book verses, model {Path(args.model).name}, 1 intra-op thread per call, "
        f"medians of {args.repeats} interleaved rounds; {cpu_summary()}.",
        "",
        "| search | mode | verses/s | vs one verse per call |",
        "|---|---|---|---|",
    ]
    for (beam, mode), v in ((k, v) for k, v in med.items() if k[0] != "slack"):
        base_mode = (
            "every 8th: one verse per call" if "every 8th:" in mode else "one verse per call"
        )
        if mode.startswith("CTranslate2"):
            base_mode = f"CTranslate2 int8: {base_mode}"
        search = "greedy" if beam == 1 else f"beam {beam}"
        lines.append(f"| {search} | {mode} | {v:.1f} | {v / med[(beam, base_mode)]:.2f}x |")
    lines += [
        "",
        "Greedy batches of 16, finished sentences leaving the decoder batch:",
        "",
        "| slack | verses/s | vs dropping at once |",
        "|---|---|---|",
    ]
    for slack in SLACKS:
        v = med[("slack", slack)]
        how = "at once" if slack == 0 else "lazily"
        lines.append(f"| {slack} ({how}) | {v:.1f} | {v / med[('slack', 0.0)]:.2f}x |")
    return lines


def _on_two_threads(run, chunks: list[list[str]], beam: int) -> None:
    """run(parts, beam) on the even and the odd chunks at once, one thread each."""
    threads = [threading.Thread(target=run, args=(chunks[k::2], beam)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _copies_sets(verses: list[str]) -> dict:
    """The --copies modes on every 8th verse: {mode: (calls, on two threads)}, each call a list of
    verses."""
    distinct = verses[::8]
    alone = [[v] for v in distinct] * 2
    mixed = [distinct[i : i + 16] for i in range(0, len(distinct), 16)] * 2
    copies = [[v] * 16 for v in distinct]
    return {
        "every 8th: one verse per call": (alone, False),
        "every 8th: batches of 16 verses, 1 thread": (mixed, False),
        "every 8th: batches of 16 verses, 2 threads at once": (mixed, True),
        "every 8th: batches of 16 copies of a verse, 1 thread": (copies, False),
        "every 8th: batches of 16 copies of a verse, 2 threads at once": (copies, True),
    }


def _runner(run, parts: list[list[str]], beam: int, two_threads: bool):
    return (
        (lambda: _on_two_threads(run, parts, beam)) if two_threads else (lambda: run(parts, beam))
    )


def _ct2_runs(
    model_dir: Path, verses: list[str], chunks: list[list[str]], copies_sets: dict
) -> dict:
    """The modes on CTranslate2 int8, same weights and tokens: {beam: {mode: callable}}."""
    import atexit
    import shutil
    import tempfile

    import ctranslate2
    from same_weights import load_model_weights, to_ctranslate2, token_strings  # a sibling
    from tokenizers import Tokenizer

    from traductor.runtime.package import read_config

    cfg = read_config(model_dir)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    vocab = token_strings(tok)
    tmp = tempfile.mkdtemp(prefix="ct2-")
    atexit.register(shutil.rmtree, tmp, True)  # the converted model (~50 MB) goes when the run ends
    out = Path(tmp) / "int8"
    to_ctranslate2(load_model_weights(model_dir), vocab, out, quantization="int8")
    ct = ctranslate2.Translator(str(out), device="cpu", inter_threads=2, intra_threads=1)
    eos, max_len = cfg.special_tokens.eos_id, cfg.dims.max_len

    def pieces(texts):
        return [
            [vocab[i] for i in tok.encode(t, add_special_tokens=False).ids[: max_len - 1] + [eos]]
            for t in texts
        ]

    def run(parts, beam):
        for c in parts:
            ct.translate_batch(
                pieces(c),
                beam_size=beam,
                max_batch_size=0,
                max_decoding_length=max_len - 1,
                length_penalty=1.0,
            )

    run(chunks[:1], 4)  # warm-up
    modes = {}
    for beam in (1, 4):
        modes[beam] = {
            "one verse per call": lambda b=beam: run([[v] for v in verses], b),
            "batches of 16, 1 thread": lambda b=beam: run(chunks, b),
            "batches of 16, 2 threads at once": lambda b=beam: _on_two_threads(run, chunks, b),
        }
        modes[beam].update(
            {mode: _runner(run, parts, beam, two) for mode, (parts, two) in copies_sets.items()}
        )
    return modes


if __name__ == "__main__":
    sys.exit(main())
