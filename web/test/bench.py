"""The page's speed next to the Python runtime's on the same machine and sentences; writes
benchmarks/results/web/results.md (+ results.json) and the screenshot page.png.

    .venv/bin/python web/test/bench.py [--sentences 20] [--repeats 3] [--variants int8,fp32] \
        [--threads 1,2]

Greedy and beam 4, one sentence at a time (batch 1), tokens/s = (target tokens + one end token per
sentence) / seconds, as `traductor bench` counts; medians over the repeats. The page runs in
Debian's headless Chromium, each (variant, threads) in a fresh browser context (empty cache) served
by web/serve.py from this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
MODEL = ROOT / "models" / "es-en"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def python_runs(sentences: list[str], variants: list[str], repeats: int) -> list[dict]:
    """The Python runtime on the same sentences: each variant on one thread and on as many as it
    chooses."""
    import onnxruntime

    out = []
    for variant in variants:
        for threads in (1, None):
            r = _python_run(sentences, variant, threads, repeats)
            out.append({**r, "onnxruntime": onnxruntime.__version__})
            print(
                f"python {variant} threads {r['threads']}: greedy {r['runs'][1]['median']:.0f}, "
                f"beam 4 {r['runs'][4]['median']:.0f} tokens/s",
                file=sys.stderr,
            )
    return out


def _python_run(sentences: list[str], variant: str, threads: int | None, repeats: int) -> dict:
    """Load time, bytes on disk and tokens/s (greedy and beam 4, medians) of one Translator."""
    from traductor.runtime import Translator

    t0 = time.perf_counter()
    tr = Translator(MODEL, variant=variant, intra_threads=threads)
    load_s = time.perf_counter() - t0
    runs = {}
    for beam in (1, 4):
        for s in sentences[:3]:  # warm up
            tr.translate_batch([s], beam_size=beam, batch_size=1)
        rates = []
        for _ in range(repeats):
            tokens, t0 = 0, time.perf_counter()
            for s in sentences:
                r = tr.translate_batch([s], beam_size=beam, batch_size=1)[0]
                tokens += len(r.hypotheses[0].tokens) + 1
            rates.append(tokens / (time.perf_counter() - t0))
        runs[beam] = {"median": statistics.median(rates), "all": rates}
    files = tr.config.variants[variant]
    size = sum(
        (MODEL / f).stat().st_size
        for f in (files.encoder, files.decoder, tr.config.tokenizers.source)
    )
    return {
        "variant": variant,
        "threads": threads or "auto",
        "load_s": load_s,
        "bytes": size,
        "runs": runs,
    }


def page_runs(sentences: list[str], args: argparse.Namespace, variants: list[str]) -> dict:
    """The page in headless Chromium (web/test/bench.mjs), served by web/serve.py on a free port;
    writes the screenshot to args.out / page.png."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "s.json").write_text(json.dumps(sentences, ensure_ascii=False))
        server = subprocess.Popen(
            [sys.executable, str(WEB / "serve.py"), "--port", "0", "--quiet"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            url = server.stdout.readline().split()[1]
            subprocess.run(
                [
                    "node",
                    str(WEB / "test" / "bench.mjs"),
                    "--url",
                    url,
                    "--sentences",
                    str(Path(tmp) / "s.json"),
                    "--out",
                    str(Path(tmp) / "page.json"),
                    "--variants",
                    ",".join(variants),
                    "--threads",
                    args.threads,
                    "--repeats",
                    str(args.repeats),
                    "--screenshot",
                    str(args.out / "page.png"),
                ],
                check=True,
            )
        finally:
            server.terminate()
            server.wait(10)
        return json.loads((Path(tmp) / "page.json").read_text())


def results_table(page: dict, py: list[dict]) -> list[str]:
    """The page's rows, then the Python runtime's, as markdown table lines."""
    package = WEB / "node_modules" / "onnxruntime-web" / "package.json"
    ort_web = json.loads(package.read_text())["version"]
    rows = [
        "| engine | variant | threads | load (s) | download (MB): model + runtime "
        "| greedy tokens/s | beam 4 tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in page["runs"]:
        model = r["info"]["downloadBytes"]
        threads = f"{r['info']['threads']}" + ("" if r["isolated"] else " (not isolated)")
        rows.append(
            f"| page: onnxruntime-web {ort_web} (wasm), Chromium {page['browser']} "
            f"| {r['variant']} | {threads} | "
            f"{r['readyMs'] / 1000:.2f} | {model / 1e6:.1f} + {(r['bytes'] - model) / 1e6:.1f} | "
            f"{r['runs']['1']['median']:.0f} | {r['runs']['4']['median']:.0f} |"
        )
    for r in py:
        rows.append(
            f"| Python runtime: onnxruntime {r['onnxruntime']} | {r['variant']} | {r['threads']} "
            f"| {r['load_s']:.2f} | ({r['bytes'] / 1e6:.1f} on disk) "
            f"| {r['runs'][1]['median']:.0f} | {r['runs'][4]['median']:.0f} |"
        )
    return rows


def results_text(rows: list[str], n_sentences: int, repeats: int, load: tuple[float, float]) -> str:
    """results.md: the machine, the method, the table and the screenshot."""
    wasm = WEB / "node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm"
    table = "\n".join(rows)
    return f"""# traductor in the browser: speed next to the Python runtime

Measured {time.strftime("%Y-%m-%d")} by `web/test/bench.py` on {cpu_name()}, {os.cpu_count()} cores,
a shared machine (load average {load[0]:.1f} before, {load[1]:.1f} after: medians of {repeats} runs,
expect noise). Shipped es-en package; the first {n_sentences} verses of
benchmarks/test-books.es.txt one at a time (batch 1), greedy and beam 4; tokens/s counts target
tokens plus one end token per sentence, as `traductor bench` does.

- Page: headless Chromium driven by playwright-core, served by `web/serve.py` (COOP/COEP on, so
  cross-origin isolated); each row a fresh browser context (empty cache). "load" is navigation start
  to `traductor.ready`: the page, onnxruntime-web's wasm, the model files (fetched, sizes and sha256
  checked against manifest.json) and both sessions. "runtime" is the rest of the download: the wasm
  binary ({wasm.stat().st_size / 1e6:.1f} MB, uncompressed: `web/serve.py` does not compress) and
  the scripts.
- Python runtime: `Translator(variant=..., intra_threads=...)` in this process (threads "auto": one
  thread below 24 decoder rows, as the runtime chooses); "load" is the constructor (files read from
  a warm page cache, sha256 checked).

{table}

![the page mid-translation](page.png)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sentences", type=int, default=20, help="the first N test-book verses (default 20)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per row (default 3)")
    ap.add_argument("--variants", default="int8,fp32", help="variants, comma-separated")
    ap.add_argument("--threads", default="1,2", help="page thread counts, comma-separated")
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "web",
        help="where results.md, results.json and page.png go",
    )
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    lines = (ROOT / "benchmarks" / "test-books.es.txt").read_text(encoding="utf-8").splitlines()
    sentences = [v for v in lines if v.strip()][: args.sentences]
    args.out.mkdir(parents=True, exist_ok=True)

    load_before = os.getloadavg()[0]
    py = python_runs(sentences, variants, args.repeats)
    page = page_runs(sentences, args, variants)
    load_after = os.getloadavg()[0]

    rows = results_table(page, py)
    text = results_text(rows, len(sentences), args.repeats, (load_before, load_after))
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(
        json.dumps({"page": page, "python": py, "sentences": len(sentences)}, indent=1)
    )
    print(text)


if __name__ == "__main__":
    main()
