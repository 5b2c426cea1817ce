"""Same weights, side by side, one run: PyTorch eager (KV cache), traductor fp32/int8 and
CTranslate2 float32/int8, all built from the weights of one model package.

    .venv/bin/python benchmarks/compare_engines.py --model models/es-en --out benchmarks/results

Every measurement runs in a fresh child process (load and warm-up excluded from the timing), and
the engines are interleaved: for each repeat, each workload, each engine in turn. Tokenisation is
done once up front, so all engines decode the same id sequences in the same batches. CTranslate2
runs with OMP_WAIT_POLICY=ACTIVE (slow on this AMD CPU otherwise); every engine is tried with 1 and
2 threads, traductor also at its default (`auto`: threads by batch size), and reported at its best. Prints tokens/s, the ratios and BLEU per engine.
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
        sys.path.insert(0, str(HERE))
        from same_weights import load_model_weights

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
    if spec["engine"].startswith(
        "baseline"
    ):  # an older checkout's runtime and model, imported first
        env["PYTHONPATH"] = spec["baseline_path"]
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


def main() -> int:
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
        "models/es-en int8 run as engine 'baseline-int8', interleaved with the others (before/after in one run)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
        return 0

    import sacrebleu
    from tokenizers import Tokenizer

    sys.path.insert(0, str(HERE))
    from same_weights import load_model_weights, to_ctranslate2, token_strings

    from traductor.runtime.package import read_config

    model_dir = Path(args.model)
    cfg = read_config(model_dir)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    vocab = token_strings(tok)
    lines = [
        line.split("\t")
        for line in Path(args.data).read_text(encoding="utf-8").splitlines()
        if "\t" in line
    ][: args.sentences or None]
    src_text, refs = [s for s, _ in lines], [r for _, r in lines]
    eos, max_len = cfg.special_tokens.eos_id, cfg.dims.max_len
    src = [tok.encode(s, add_special_tokens=False).ids[: max_len - 1] + [eos] for s in src_text]
    engines = [e for e in args.engines.split(",") if e]
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not names or any(w not in WORKLOADS for w in names):
        p.error(f"--workloads: expected names from {', '.join(WORKLOADS)}, got {args.workloads!r}")
    workloads = {w: WORKLOADS[w] for w in names}
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

    ct2_dir = {}
    if any(e.startswith("ct2") for e in engines):
        model = load_model_weights(model_dir)
        for q, name in ((None, "ct2-float32"), ("int8", "ct2-int8")):
            d = Path(args.out) / "ct2" / name
            to_ctranslate2(model, vocab, d, quantization=q)
            ct2_dir[name] = str(d)

    # Map hypotheses back to input order for BLEU (batches are length-sorted).
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    times: dict[tuple, list[float]] = {}
    hyps: dict[tuple, list[str]] = {}
    tokens: dict[tuple, int] = {}
    total = args.repeats * len(workloads) * sum(len(v) for v in settings.values())
    done = 0
    for rep in range(args.repeats):
        for wname, (beam, bsize) in workloads.items():
            batches = _batches(src, bsize)
            for engine in engines:
                for t in settings[engine]:
                    spec = {
                        "engine": engine,
                        "threads": t,
                        "beam": beam,
                        "batches": batches,
                        "model": str(model_dir),
                        "ct2_dir": ct2_dir,
                        "vocab": vocab,
                        "max_len": max_len,
                        **baseline,
                    }
                    r = _measure(spec)
                    key = (wname, engine, t)
                    times.setdefault(key, []).append(r["seconds"])
                    tokens[key] = r["tokens"]
                    if key not in hyps:
                        texts = [""] * len(src)
                        for i, h in zip(order, r["hyps"]):
                            texts[i] = tok.decode(h)
                        hyps[key] = texts
                    done += 1
                    print(
                        f"[{done}/{total}] {wname:<11} {engine:<15} threads={t or 'auto'}: {r['tokens'] / r['seconds']:8.0f} tokens/s",
                        file=sys.stderr,
                        flush=True,
                    )

    rows = []
    for wname in workloads:
        for engine in engines:
            best_t = max(
                settings[engine],
                key=lambda t: (
                    tokens[(wname, engine, t)] / statistics.median(times[(wname, engine, t)])
                ),
            )
            key = (wname, engine, best_t)
            tps = tokens[key] / statistics.median(times[key])
            bleu = sacrebleu.corpus_bleu(hyps[key], [refs]).score
            rows.append(
                {
                    "workload": wname,
                    "engine": engine,
                    "threads": best_t,
                    "tokens_per_s": tps,
                    "bleu": bleu,
                    "all_threads": {
                        str(t or "auto"): tokens[(wname, engine, t)]
                        / statistics.median(times[(wname, engine, t)])
                        for t in settings[engine]
                    },
                    # tokens/s of each repeat at one thread, in run order: paired with the other engines' repeats
                    "rates_t1": [tokens[(wname, engine, 1)] / s for s in times[(wname, engine, 1)]]
                    if 1 in settings[engine]
                    else [],
                }
            )
    _report(rows, engines, Path(args.out), len(src), args.repeats, list(workloads))
    return 0


def _threads_label(threads: int | None) -> str:
    return "auto" if threads is None else f"t{threads}"


def _paired(a: dict | None, b: dict | None) -> list[float]:
    """Per-repeat speed ratios a / b at one thread each (repeat i of both engines ran back to back)."""
    ra, rb = (r.get("rates_t1", []) if r else [] for r in (a, b))
    return [x / y for x, y in zip(ra, rb)] if ra and len(ra) == len(rb) else []


def _report(
    rows: list[dict], engines: list[str], out: Path, n: int, repeats: int, workloads: list[str]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(rows, indent=1))
    get = {(r["workload"], r["engine"]): r for r in rows}
    lines = [
        f"{n} test sentences per workload, medians of {repeats} interleaved repeats, each engine at its best thread setting (1, 2, or for traductor also its default `auto`).",
        "",
        "| workload | "
        + " | ".join(engines)
        + " | int8 vs CT2 int8 | same, one thread each | int8 vs PyTorch |"
        + (" baseline int8 vs CT2 int8 |" if "baseline-int8" in engines else ""),
        "|---|" + "---|" * (len(engines) + 3 + ("baseline-int8" in engines)),
    ]

    def ratio(w: str, mine: str, other: str) -> str:
        a, b = get.get((w, mine)), get.get((w, other))
        return f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x" if a and b else "-"

    def ratio_t1(w: str, mine: str, other: str) -> str:
        """Per core: both engines on one thread (the best setting can be two cores for one engine)."""
        a, b = (get.get((w, e), {}).get("all_threads", {}).get("1") for e in (mine, other))
        return f"{a / b:.2f}x" if a and b else "-"

    for w in workloads:
        cells = [
            f"{get[(w, e)]['tokens_per_s']:,.0f} tok/s ({_threads_label(get[(w, e)]['threads'])}), BLEU {get[(w, e)]['bleu']:.2f}"
            for e in engines
            if (w, e) in get
        ]
        extra = f" {ratio(w, 'baseline-int8', 'ct2-int8')} |" if "baseline-int8" in engines else ""
        lines.append(
            f"| {w} | "
            + " | ".join(cells)
            + f" | {ratio(w, 'traductor-int8', 'ct2-int8')} | {ratio_t1(w, 'traductor-int8', 'ct2-int8')}"
            f" | {ratio(w, 'traductor-int8', 'pytorch')} |" + extra
        )
    paired = [
        (w, _paired(get.get((w, "traductor-int8")), get.get((w, "ct2-int8")))) for w in workloads
    ]
    if any(r for _, r in paired):
        lines += [
            "",
            "traductor int8 / CTranslate2 int8 per repeat, one thread each (each repeat ran both back to back):",
            "",
            "| workload | median | min | max | repeats at or above 1.00x | every repeat |",
            "|---|---|---|---|---|---|",
        ]
        for w, r in paired:
            if r:
                lines.append(
                    f"| {w} | {statistics.median(r):.3f}x | {min(r):.3f}x | {max(r):.3f}x | {sum(x >= 1 for x in r)} of {len(r)} | "
                    + " ".join(f"{x:.2f}" for x in r)
                    + " |"
                )
    lines += [
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
    text = "\n".join(lines) + "\n"
    (out / "compare.md").write_text(text)
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())
