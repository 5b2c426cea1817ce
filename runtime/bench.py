"""`traductor bench`: speed of a model package per execution provider, variant and setting.

Each (provider, variant, threads) runs in a fresh child process, so model load time and peak RSS
are its own. Inside, every (batch size, beam size) setting is warmed up, then timed `repeats`
times over the same sentences; medians are reported. Writes results.json, results.md and a PNG.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .machine import cpu_summary
from .onnx_model import PROVIDER_ALIASES
from .package import InputError

DEFAULT_SENTENCES = Path(__file__).resolve().parent.parent / "benchmarks" / "test-books.es.txt"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_worker(spec: dict) -> dict:
    """One provider x variant x threads: load once, then every batch/beam setting."""
    from .translator import Translator

    t0 = time.perf_counter()
    tr = Translator(
        spec["model"],
        providers=(spec["provider"],),
        variant=spec["variant"],
        intra_threads=spec["threads"],
    )
    load_s = time.perf_counter() - t0
    sentences = spec["sentences"]
    src = [s for s in sentences if s.strip()]
    rows = [
        _time_setting(tr, src, beam, batch, spec["repeats"])
        for beam in spec["beam_sizes"]
        for batch in spec["batch_sizes"]
    ]
    first = _first_token_seconds(tr, sentences[: min(20, len(sentences))])
    cold = None
    if spec.get("cold_start"):
        cold = load_s + (first[0] if first else 0.0)
    return {
        "provider": tr.providers[0],
        "asked_provider": spec["provider"],
        "variant": tr.variant,
        "threads": spec["threads"],
        "load_s": load_s,
        "first_token_ms_p50": 1000 * statistics.median(first) if first else None,
        "cold_start_s": cold,
        "peak_rss_mb": _peak_rss_mb(),
        "settings": rows,
    }


def _time_setting(tr, src: list[str], beam: int, batch: int, repeats: int) -> dict:
    """One (beam, batch) setting: a warm-up, then `repeats` timed passes over `src`."""
    opts = {"beam_size": beam, "batch_size": batch}
    tr.translate_batch(src[: max(batch, 1)], **opts)  # warm-up: first-run allocations, thread pools
    runs, latencies, tokens = [], [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        n_tokens = 0
        for i in range(0, len(src), batch):
            b0 = time.perf_counter()
            results = tr.translate_batch(src[i : i + batch], **opts)
            dt = time.perf_counter() - b0
            latencies += [dt] * len(results)  # each sentence waits for its whole batch
            n_tokens += sum(len(r.hypotheses[0].tokens) + 1 for r in results)  # + end token
        runs.append(time.perf_counter() - start)
        tokens = n_tokens
    seconds = statistics.median(runs)
    return {
        "beam": beam,
        "batch": batch,
        "sentences": len(src),
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "sentences_per_s": len(src) / seconds,
        "latency_p50_ms": 1000 * _percentile(latencies, 0.5),
        "latency_p90_ms": 1000 * _percentile(latencies, 0.9),
        "latency_p99_ms": 1000 * _percentile(latencies, 0.99),
        "seconds_median": seconds,
    }


def _first_token_seconds(tr, texts: list[str]) -> list[float]:
    """Seconds from asking to the first streamed piece, per text that yields one."""
    first = []
    for text in texts:
        t0 = time.perf_counter()
        for _ in tr.translate_stream(text):
            first.append(time.perf_counter() - t0)
            break
    return first


def _available(provider: str) -> bool:
    import onnxruntime as ort

    return PROVIDER_ALIASES.get(provider.lower(), provider) in ort.get_available_providers()


def _machine() -> dict:
    import onnxruntime as ort

    return {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "cpu": cpu_summary(),
        "cores": os.cpu_count(),
        "host": platform.node(),
    }


def bench_main(args) -> int:
    if args.merge:
        return _merge(args)
    from .models import resolve_model
    from .package import read_config

    model = resolve_model(args.model)
    cfg = read_config(model)
    batch_sizes, beam_sizes = (
        _ints(args.batch_sizes, "--batch-sizes"),
        _ints(args.beam_sizes, "--beam-sizes"),
    )
    threads = _threads(args.threads)
    sentences = _sentences(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    variants = _variants(args.variants, model, cfg)
    base = {
        "model": str(model),
        "sentences": sentences,
        "batch_sizes": batch_sizes,
        "beam_sizes": beam_sizes,
        "repeats": args.repeats,
    }
    results, skipped = _run_workers(
        base, [(p, v, t) for p in providers for v in variants for t in threads]
    )
    report = {
        "model": str(model),
        "machine": _machine(),
        "sentences": len(sentences),
        "results": results,
        "skipped": skipped,
    }
    _write(report, out)
    return 0


def _variants(asked: str | None, model: Path, cfg) -> list[str]:
    """--variants (comma-separated; default: those installed), each checked against the package."""
    from .package import installed_variants

    present = installed_variants(model, cfg)
    variants = [v for v in (asked.split(",") if asked else present) if v]
    unknown = [v for v in variants if v not in cfg.variants]
    if unknown:
        raise InputError(
            f"--variants: the model has no {', '.join(unknown)}; it has {', '.join(cfg.variants)}"
        )
    absent = [v for v in variants if v not in present]
    if absent:
        raise InputError(
            f"--variants: {', '.join(absent)} not installed in {model} (it has "
            f"{', '.join(present)})"
        )
    return variants


def _run_workers(base: dict, jobs: list[tuple[str, str, int | None]]) -> tuple[list, list]:
    """Each (provider, variant, threads) in its own child process -> (results, skipped)."""
    results, skipped = [], []
    for n, (p, v, t) in enumerate(jobs, start=1):
        if not _available(p):
            if not any(s["provider"] == p for s in skipped):
                skipped.append({"provider": p, "reason": "not available in this onnxruntime"})
                print(f"[{n}/{len(jobs)}] {p}: skipped (not installed)", file=sys.stderr)
            continue
        print(f"[{n}/{len(jobs)}] {p} {v} threads={t or 'auto'} ...", file=sys.stderr, flush=True)
        spec = {**base, "provider": p, "variant": v, "threads": t, "cold_start": True}
        proc = subprocess.run(
            [sys.executable, "-m", "traductor.runtime.bench"],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            reason = proc.stderr.strip().splitlines()[-1][:300]
            skipped.append({"provider": p, "variant": v, "threads": t, "reason": reason})
            print(f"    failed: {reason}", file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout))
    return results, skipped


def _threads(text: str) -> list[int | None]:
    """--threads: integers and/or `auto` (the Translator's default, intra_threads=None)."""
    words = [x.strip() for x in text.split(",") if x.strip()]
    if "auto" not in words:
        return _ints(text, "--threads")
    rest = [w for w in words if w != "auto"]
    return [None, *(_ints(",".join(rest), "--threads") if rest else [])]


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{flag} takes integers >= 1, got {text!r}")
    return values


def _sentences(args) -> list[str]:
    default = (
        DEFAULT_SENTENCES
        if DEFAULT_SENTENCES.is_file()
        else Path.cwd() / "benchmarks" / DEFAULT_SENTENCES.name
    )
    path = Path(args.input) if args.input else default
    if not path.is_file():
        raise InputError(
            f"sentence file not found: {path} (pass --input FILE, one sentence per line)"
        )
    lines = [
        line.split("\t")[0].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return lines[: args.limit] if args.limit else lines


def _merge(args) -> int:
    reports = [json.loads((Path(d) / "results.json").read_text()) for d in args.merge]
    merged = {
        "model": reports[0]["model"],
        "machine": reports[0]["machine"],
        "sentences": reports[0]["sentences"],
        "results": [r for rep in reports for r in rep["results"]],
        "skipped": _unique_skips(reports),
    }
    _write(merged, Path(args.out))
    return 0


def _unique_skips(reports: list[dict]) -> list[dict]:
    ran = {r["asked_provider"] for rep in reports for r in rep["results"]}
    out: list[dict] = []
    for s in (s for rep in reports for s in rep["skipped"]):
        if s["provider"] not in ran and not any(o["provider"] == s["provider"] for o in out):
            out.append(s)
    return out


def _write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1))
    lines = [
        f"Model `{report['model']}`, {report['sentences']} sentences; medians of repeated runs "
        "after warm-up.",
        "",
        "| provider | variant | threads | beam | batch | tokens/s | sentences/s | latency p50 / "
        "p90 / p99 (ms) | first token (ms) | load (ms) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        short = {v: k for k, v in PROVIDER_ALIASES.items()}.get(r["provider"], r["provider"])
        for s in r["settings"]:
            lines.append(
                f"| {short} | {r['variant']} | {r['threads'] or 'auto'} | {s['beam']} | "
                f"{s['batch']} | {s['tokens_per_s']:,.0f} | {s['sentences_per_s']:.1f} | "
                f"{s['latency_p50_ms']:.1f} / {s['latency_p90_ms']:.1f} / "
                f"{s['latency_p99_ms']:.1f} | "
                f"{r['first_token_ms_p50']:.1f} | {1000 * r['load_s']:.0f} | "
                f"{r['peak_rss_mb']:.0f} |"
            )
    if report["skipped"]:
        lines.append("")
    for s in report["skipped"]:
        lines.append(f"Skipped: {s['provider']} ({s['reason']})")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _chart(report, out / "tokens_per_s.png")


def _chart(report: dict, png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart)", file=sys.stderr)
        return
    short = {v: k for k, v in PROVIDER_ALIASES.items()}
    configs = [
        f"{short.get(r['provider'], r['provider'])} {r['variant']} "
        f"{'auto' if r['threads'] is None else 't' + str(r['threads'])}"
        for r in report["results"]
    ]
    settings = sorted({(s["beam"], s["batch"]) for r in report["results"] for s in r["settings"]})
    if not configs or not settings:
        return
    width = 0.8 / len(configs)
    fig, ax = plt.subplots(figsize=(2.2 * len(settings) + 3, 4.5))
    colors = plt.get_cmap("tab20").colors  # 20 distinct colors: the default cycle repeats after 10
    for c, (label, r) in enumerate(zip(configs, report["results"])):
        speed = {(s["beam"], s["batch"]): s["tokens_per_s"] for s in r["settings"]}
        ax.bar(
            [i + c * width for i in range(len(settings))],
            [speed.get(k, 0) for k in settings],
            width,
            label=label,
            color=colors[c % len(colors)],
        )
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(settings))],
        [f"beam {b}, batch {n}" for b, n in settings],
    )
    ax.set_ylabel("target tokens / s")
    ax.set_title(f"traductor bench: {Path(report['model']).name}, {report['sentences']} sentences")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    print(json.dumps(run_worker(json.loads(sys.stdin.read()))))
