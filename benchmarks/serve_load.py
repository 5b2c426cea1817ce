"""Load on `traductor serve`, with and without request batching, on loopback.

    .venv/bin/python benchmarks/serve_load.py --out benchmarks/results/serve_load.md

For each mode (batching on, then off: one request at a time) a server process is started with the
shipped model; then for 1, 8, 32 and 64 concurrent clients, each client thread sends test-book verses,
one verse per JSON request, until the level's requests are done (bounded by --requests and
--max-seconds). Reports requests/s, sentences/s, p50/p99 latency, failures, and whether every answer
equals the serial one (the same verse translated alone through the same server, before the load).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, payload: dict, timeout: float = 120) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/translate", data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def start(args, batching: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "traductor", "serve", "--port", str(port), "--model", args.model, *args.server_args.split()]
    if not batching:
        cmd.append("--no-batching")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read())
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def level(url: str, verses: list[str], clients: int, n_requests: int, max_seconds: float, serial: dict) -> dict:
    lock = threading.Lock()
    next_i = [0]
    latencies, failures, mismatches = [], [], []
    stop_at = time.perf_counter() + max_seconds

    def client():
        while True:
            with lock:
                i = next_i[0]
                if i >= n_requests or time.perf_counter() > stop_at:
                    return
                next_i[0] += 1
            verse = verses[i % len(verses)]
            t0 = time.perf_counter()
            try:
                status, body = post(url, {"q": verse, "source": "es", "target": "en"})
            except OSError as e:
                status, body = 0, {"error": str(e)}
            dt = time.perf_counter() - t0
            with lock:
                if status != 200:
                    failures.append((status, body))
                else:
                    latencies.append(dt)
                    if body["translatedText"] != serial[verse]:
                        mismatches.append(verse)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = len(latencies)
    lat = sorted(latencies)
    return {"clients": clients, "requests": done + len(failures), "ok": done, "failed": len(failures), "mismatched": len(mismatches),
            "seconds": wall, "requests_per_s": done / wall, "sentences_per_s": done / wall,
            "p50_ms": 1000 * lat[len(lat) // 2] if lat else None, "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "es-en"))
    p.add_argument("--verses", default=str(ROOT / "benchmarks" / "test-books.es.txt"))
    p.add_argument("--clients", default="1,8,32,64")
    p.add_argument("--requests", type=int, default=160, help="requests per level")
    p.add_argument("--max-seconds", type=float, default=90, help="time bound per level")
    p.add_argument("--server-args", default="", help="extra `traductor serve` options, e.g. \"--threads 1\"")
    p.add_argument("--out", help="write the report (markdown) here too")
    args = p.parse_args()
    verses = [v for v in Path(args.verses).read_text(encoding="utf-8").splitlines() if v.strip()][: args.requests]
    levels = [int(c) for c in args.clients.split(",")]
    rows = []
    serial: dict[str, str] = {}
    for batching in (True, False):
        proc, url = start(args, batching)
        try:
            if not serial:  # one request at a time, before any load: the reference answers
                for v in verses:
                    status, body = post(url, {"q": v, "source": "es", "target": "en"})
                    serial[v] = body["translatedText"]
            else:
                post(url, {"q": verses[0], "source": "es", "target": "en"})  # warm-up
            for clients in levels:
                r = level(url, verses, clients, args.requests, args.max_seconds, serial)
                r["batching"] = "on" if batching else "off"
                rows.append(r)
                print(f"batching {r['batching']:>3}, {clients:>2} clients: {r['requests_per_s']:.1f} req/s, p50 {r['p50_ms']:.0f} ms, "
                      f"p99 {r['p99_ms']:.0f} ms, failed {r['failed']}, mismatched {r['mismatched']}", file=sys.stderr)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    by = {(r["batching"], r["clients"]): r for r in rows}
    lines = [f"`traductor serve` on loopback, model {Path(args.model).name} (default variant and beam), one verse per request, "
             f"{args.requests} requests per level; {cpu()}.", "",
             "| clients | batching | requests/s | sentences/s | p50 latency (ms) | p99 latency (ms) | failed | answers equal to serial | speed-up from batching |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        off = by.get(("off", r["clients"]))
        gain = f"{r['requests_per_s'] / off['requests_per_s']:.2f}x" if r["batching"] == "on" and off else ""
        lines.append(f"| {r['clients']} | {r['batching']} | {r['requests_per_s']:.1f} | {r['sentences_per_s']:.1f} | {r['p50_ms']:.0f} | "
                     f"{r['p99_ms']:.0f} | {r['failed']} | {r['ok'] - r['mismatched']}/{r['ok']} | {gain} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["failed"] == 0 and r["mismatched"] == 0 for r in rows) else 1


def cpu() -> str:
    sys.path.insert(0, str(ROOT))
    from traductor.runtime.bench import cpu_summary

    return cpu_summary()


if __name__ == "__main__":
    sys.exit(main())
