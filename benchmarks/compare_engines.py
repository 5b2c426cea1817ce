"""Same weights, side by side, one run: PyTorch eager (KV cache), traductor fp32/int8 and
CTranslate2 float32/int8, all built from the weights of one model package.

    .venv/bin/python benchmarks/compare_engines.py --model models/es-en --out benchmarks/results

Every measurement runs in a fresh child process (load and warm-up excluded from the timing), and
the engines are interleaved: for each repeat, each workload, each engine in turn. Tokenisation is
done once up front, so all engines decode the same id sequences in the same batches. CTranslate2
runs with OMP_WAIT_POLICY=ACTIVE (slow on this AMD CPU otherwise); every engine is tried with 1 and
2 threads, traductor also at its default (`auto`: threads by batch size), and reported at its
best. Prints tokens/s, the ratios and BLEU per engine, and writes them to --out as compare.md and
compare.json (default benchmarks/results; the converted CTranslate2 models go to --out/ct2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = ["pytorch", "traductor-fp32", "traductor-int8", "ct2-float32", "ct2-int8"]
WORKLOADS = {"greedy b1": (1, 1), "greedy b16": (1, 16), "beam4 b32": (4, 32)}


# -- child: one engine, one workload, one thread count -------------------------------------------


def _child(spec: dict) -> dict:
    threads = spec["threads"]
    batches = spec["batches"]  # list of batches of source id lists (end token included)
    engine, beam = spec["engine"], spec["beam"]
    if engine == "pytorch":
        import torch

        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        from same_weights import load_model_weights  # this script's folder, first on sys.path

        from traductor.training.search import beam_search, greedy

        model = load_model_weights(Path(spec["model"]))

        def run(batch):
            if beam == 1:
                return [h.tokens for h in greedy(model, batch)]
            return [nb[0].tokens for nb in beam_search(model, batch, beam_size=beam)]
    elif engine.startswith(("traductor", "baseline")):
        from traductor.runtime import TranslationOptions, Translator

        tr = Translator(spec["model"], variant=engine.split("-")[1], intra_threads=threads)
        opts = TranslationOptions(beam_size=beam, batch_size=10_000)

        def run(batch):
            return [h[0].tokens for h in tr.translate_ids(batch, opts)]
    else:
        import ctranslate2

        ct = ctranslate2.Translator(
            spec["ct2_dir"][engine], device="cpu", inter_threads=1, intra_threads=threads
        )
        vocab = spec["vocab"]
        index = {t: i for i, t in enumerate(vocab)}

        def run(batch):
            toks = [[vocab[i] for i in s] for s in batch]
            res = ct.translate_batch(
                toks,
                beam_size=beam,
                max_batch_size=0,
                max_decoding_length=spec["max_len"] - 1,
                length_penalty=1.0,
                return_scores=False,
            )
            return [[index[t] for t in r.hypotheses[0]] for r in res]

    run(batches[0])  # warm-up
    t0 = time.perf_counter()
    out = [h for b in batches for h in run(b)]
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "tokens": sum(len(h) + 1 for h in out), "hyps": out}


# -- parent ---------------------------------------------------------------------------------------


def _measure(spec: dict) -> dict:
    env = (
        {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
        if spec["engine"].startswith("ct2")
        else dict(os.environ)
    )
    if spec["engine"].startswith("baseline"):  # an older checkout's runtime and model
        env["PYTHONPATH"] = spec["baseline_path"]  # imported before the installed package
        spec = {**spec, "model": spec["baseline_model"]}
    proc = subprocess.run(
        [sys.executable, __file__, "--child"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['engine']} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def _baseline_path(checkout: Path) -> str:
    """A folder where `import traductor` finds an older checkout's code (its package-dir layout)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="traductor-baseline-"))
    pkg = root / "traductor"
    pkg.mkdir()
    for f in (checkout / "src" / "traductor").iterdir():
        (pkg / f.name).symlink_to(f.resolve())
    for sub in ("training", "export", "runtime"):
        (pkg / sub).symlink_to((checkout / sub).resolve())
    return str(root)


def _batches(src: list[list[int]], size: int) -> list[list[list[int]]]:
    order = sorted(src, key=len)  # length-bucketed, the same for every engine
    return [order[i : i + size] for i in range(0, len(order), size)]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="models/es-en", help="model package (fp32 and int8 variants)")
    p.add_argument("--data", default="data/bible/test.tsv", help="source<TAB>reference test file")
    p.add_argument(
        "--sentences",
        type=int,
        default=0,
        help="test sentences per workload (0 = the whole file: the 554 test-book verses)",
    )
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median reported)")
    p.add_argument("--threads", default="1,2", help="thread counts tried for every engine")
    p.add_argument("--engines", default=",".join(ENGINES), help="engines to run")
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"workloads to run, comma-separated (of: {', '.join(WORKLOADS)})",
    )
    p.add_argument(
        "--out", default=str(HERE / "results"), help="directory for compare.json and compare.md"
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="an older checkout of traductor (e.g. a git worktree): its runtime and its "
        "models/es-en int8 run as engine 'baseline-int8', interleaved with the others "
        "(before/after in one run)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p


def main() -> int:
    p = _parser()
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
        return 0
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not names or any(w not in WORKLOADS for w in names):
        p.error(f"--workloads: expected names from {', '.join(WORKLOADS)}, got {args.workloads!r}")
    workloads = {w: WORKLOADS[w] for w in names}

    import sacrebleu
    from same_weights import token_strings
    from tokenizers import Tokenizer

    from traductor.runtime.package import read_config

    model_dir = Path(args.model)
    cfg = read_config(model_dir)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    src, refs = _test_set(tok, Path(args.data), args.sentences, cfg)
    vocab = token_strings(tok)
    engines, settings, baseline = _engine_settings(args)
    common = {  # what every child is told besides its engine, thread count and workload
        "model": str(model_dir),
        "ct2_dir": _ct2_models(model_dir, vocab, engines, Path(args.out)),
        "vocab": vocab,
        "max_len": cfg.dims.max_len,
        **baseline,
    }
    times, tokens, hyps = _run_interleaved(src, tok, workloads, engines, settings, common, args)
    rows = []
    for wname in workloads:
        for engine in engines:
            keys = {t: (wname, engine, t) for t in settings[engine]}
            rows.append(_row(wname, engine, keys, times, tokens, hyps, refs, sacrebleu))
    _report(rows, engines, Path(args.out), len(src), args.repeats, list(workloads))
    return 0


def _test_set(tok, data: Path, sentences: int, cfg) -> tuple[list[list[int]], list[str]]:
    """Source ids (end token included, cut to the model's max_len) and references, file order."""
    lines = [
        line.split("\t") for line in data.read_text(encoding="utf-8").splitlines() if "\t" in line
    ][: sentences or None]
    eos, max_len = cfg.special_tokens.eos_id, cfg.dims.max_len
    src = [tok.encode(s, add_special_tokens=False).ids[: max_len - 1] + [eos] for s, _ in lines]
    return src, [r for _, r in lines]


def _engine_settings(args) -> tuple[list[str], dict[str, list], dict]:
    """The engines, the thread settings tried for each, and what a baseline engine needs."""
    engines = [e for e in args.engines.split(",") if e]
    baseline = {}
    if args.baseline:
        if "baseline-int8" not in engines:  # listed once, however it was asked for
            engines.insert(0, "baseline-int8")
        baseline = {
            "baseline_path": _baseline_path(Path(args.baseline)),
            "baseline_model": str(Path(args.baseline) / "models" / "es-en"),
        }
    threads = [int(t) for t in args.threads.split(",")]
    # traductor is also run at its default (intra_threads=None: threads chosen by batch size)
    settings = {
        e: ([None] if e.startswith(("traductor", "baseline")) else []) + threads for e in engines
    }
    return engines, settings, baseline


def _ct2_models(model_dir: Path, vocab: list[str], engines: list[str], out: Path) -> dict:
    """The package's weights converted to CTranslate2 float32 and int8, under out/ct2."""
    if not any(e.startswith("ct2") for e in engines):
        return {}
    from same_weights import load_model_weights, to_ctranslate2

    model, ct2_dir = load_model_weights(model_dir), {}
    for q, name in ((None, "ct2-float32"), ("int8", "ct2-int8")):
        d = out / "ct2" / name
        to_ctranslate2(model, vocab, d, quantization=q)
        ct2_dir[name] = str(d)
    return ct2_dir


def _run_interleaved(src, tok, workloads, engines, settings, common, args):
    """Every repeat runs every workload on every engine and thread setting, each in a child.
    Returns seconds per run, tokens and the decoded hypotheses (input order) per setting."""
    # Map hypotheses back to input order for BLEU (batches are length-sorted).
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    times: dict[tuple, list[float]] = {}
    hyps: dict[tuple, list[str]] = {}
    tokens: dict[tuple, int] = {}
    total = args.repeats * len(workloads) * sum(len(v) for v in settings.values())
    done = 0
    for _ in range(args.repeats):
        for wname, (beam, bsize) in workloads.items():
            batches = _batches(src, bsize)
            for engine in engines:
                for t in settings[engine]:
                    spec = {"engine": engine, "threads": t, "beam": beam, "batches": batches}
                    r = _measure({**spec, **common})
                    key = (wname, engine, t)
                    times.setdefault(key, []).append(r["seconds"])
                    tokens[key] = r["tokens"]
                    if key not in hyps:
                        texts = [""] * len(src)
                        for i, h in zip(order, r["hyps"]):
                            texts[i] = tok.decode(h)
                        hyps[key] = texts
                    done += 1
                    rate = r["tokens"] / r["seconds"]
                    print(
                        f"[{done}/{total}] {wname:<11} {engine:<15} threads={t or 'auto'}: "
                        f"{rate:8.0f} tokens/s",
                        file=sys.stderr,
                        flush=True,
                    )
    return times, tokens, hyps


def _row(wname, engine, keys, times, tokens, hyps, refs, sacrebleu) -> dict:
    """One engine at one workload, at its best thread setting; keys maps threads to result keys."""

    def tps(t):
        return tokens[keys[t]] / statistics.median(times[keys[t]])

    best_t = max(keys, key=tps)
    return {
        "workload": wname,
        "engine": engine,
        "threads": best_t,
        "tokens_per_s": tps(best_t),
        "bleu": sacrebleu.corpus_bleu(hyps[keys[best_t]], [refs]).score,
        "all_threads": {str(t or "auto"): tps(t) for t in keys},
        # tokens/s of each repeat at one thread, in run order: paired with the other engines'
        "rates_t1": [tokens[keys[1]] / s for s in times[keys[1]]] if 1 in keys else [],
    }


def _threads_label(threads: int | None) -> str:
    return "auto" if threads is None else f"t{threads}"


def _paired(a: dict | None, b: dict | None) -> list[float]:
    """Per-repeat speed ratios a / b at one thread each (repeat i of both ran back to back)."""
    ra, rb = (r.get("rates_t1", []) if r else [] for r in (a, b))
    return [x / y for x, y in zip(ra, rb)] if ra and len(ra) == len(rb) else []


def _report(
    rows: list[dict], engines: list[str], out: Path, n: int, repeats: int, workloads: list[str]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(rows, indent=1))
    get = {(r["workload"], r["engine"]): r for r in rows}
    lines = [
        f"{n} test sentences per workload, medians of {repeats} interleaved repeats, each engine "
        "at its best thread setting (1, 2, or for traductor also its default `auto`).",
        "",
        *_best_table(get, engines, workloads),
        *_paired_table(get, workloads),
        *_threads_table(rows),
    ]
    text = "\n".join(lines) + "\n"
    (out / "compare.md").write_text(text)
    print(text)


def _best_table(get: dict, engines: list[str], workloads: list[str]) -> list[str]:
    """Each engine at its best thread setting, and traductor int8's ratios to the others."""
    baseline = "baseline-int8" in engines
    lines = [
        "| workload | "
        + " | ".join(engines)
        + " | int8 vs CT2 int8 | same, one thread each | int8 vs PyTorch |"
        + (" baseline int8 vs CT2 int8 |" if baseline else ""),
        "|---|" + "---|" * (len(engines) + 3 + baseline),
    ]

    def ratio(w: str, mine: str, other: str) -> str:
        a, b = get.get((w, mine)), get.get((w, other))
        return f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x" if a and b else "-"

    def ratio_t1(w: str, mine: str, other: str) -> str:
        """Per core: both engines on one thread (the best setting can be two cores for one)."""
        a, b = (get.get((w, e), {}).get("all_threads", {}).get("1") for e in (mine, other))
        return f"{a / b:.2f}x" if a and b else "-"

    for w in workloads:
        cells = [
            f"{r['tokens_per_s']:,.0f} tok/s ({_threads_label(r['threads'])}), BLEU {r['bleu']:.2f}"
            for r in (get[(w, e)] for e in engines if (w, e) in get)
        ]
        extra = f" {ratio(w, 'baseline-int8', 'ct2-int8')} |" if baseline else ""
        lines.append(
            f"| {w} | "
            + " | ".join(cells)
            + f" | {ratio(w, 'traductor-int8', 'ct2-int8')}"
            + f" | {ratio_t1(w, 'traductor-int8', 'ct2-int8')}"
            + f" | {ratio(w, 'traductor-int8', 'pytorch')} |"
            + extra
        )
    return lines


def _paired_table(get: dict, workloads: list[str]) -> list[str]:
    """traductor int8 / CTranslate2 int8 repeat by repeat (empty without one-thread runs)."""
    paired = [
        (w, _paired(get.get((w, "traductor-int8")), get.get((w, "ct2-int8")))) for w in workloads
    ]
    if not any(r for _, r in paired):
        return []
    lines = [
        "",
        "traductor int8 / CTranslate2 int8 per repeat, one thread each (each repeat ran both back "
        "to back):",
        "",
        "| workload | median | min | max | repeats at or above 1.00x | every repeat |",
        "|---|---|---|---|---|---|",
    ]
    for w, r in paired:
        if r:
            lines.append(
                f"| {w} | {statistics.median(r):.3f}x | {min(r):.3f}x | {max(r):.3f}x"
                f" | {sum(x >= 1 for x in r)} of {len(r)} | "
                + " ".join(f"{x:.2f}" for x in r)
                + " |"
            )
    return lines


def _threads_table(rows: list[dict]) -> list[str]:
    lines = [
        "",
        "Every thread setting (tokens/s, same run):",
        "",
        "| workload | engine | " + " | ".join(["auto", "t1", "t2"]) + " |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            f"{r['all_threads'][k]:,.0f}" if k in r["all_threads"] else "-"
            for k in ("auto", "1", "2")
        ]
        lines.append(f"| {r['workload']} | {r['engine']} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
