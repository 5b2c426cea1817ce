"""Load on `traductor serve`, with and without request batching, on loopback.

    .venv/bin/python benchmarks/serve_load.py --out benchmarks/results/serve_load.md

Modes: one request at a time (--no-batching --workers 1, the baseline), batching with 1 worker,
batching with 2 workers (the default on 2 cores: two batches decoded at once), the same with
continuous batching (--continuous: a request joins the running beam search between steps instead of
waiting for the batch to finish), and no batching with 2
workers (two requests at a time: how much of the gain is the second core rather than batching).
For each round and mode a server process is started with the shipped model; then for 1, 8, 32 and 64
concurrent clients, each client thread sends test-book verses, one verse per JSON request over its
own keep-alive connection, until the level's requests are done (bounded by --requests and
--max-seconds). Rounds interleave the modes; medians over rounds are reported: requests/s, p50/p99
latency, failures, whether every answer equals the serial one (the same verse translated alone
through the same server, before the load), and the cores kept busy by the server process and by the
client threads (CPU seconds over wall seconds; the server's from /proc, Linux only). The table is
printed; --out FILE.md also writes it there, with every run in FILE.json. Exit status 1 if any
request failed or any answer differed from the serial one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from traductor.runtime.machine import cpu_summary

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One client's keep-alive connection (as HTTP clients with a session, and load generators, keep
    theirs): each request costs the client and the server no TCP handshake."""

    def __init__(self, url: str, timeout: float = 120):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def post(self, payload: dict) -> tuple[int, dict]:
        body = json.dumps(payload).encode()
        for attempt in (0, 1):
            try:
                self.conn.request(
                    "POST", "/translate", body=body, headers={"Content-Type": "application/json"}
                )
                r = self.conn.getresponse()
                return r.status, json.loads(r.read() or b"{}")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()  # the server closed an idle connection: reconnect once
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def start(args, batching: bool, workers: int, extra: str = "") -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "traductor",
        "serve",
        "--port",
        str(port),
        "--model",
        args.model,
        "--workers",
        str(workers),
        *args.server_args.split(),
        *extra.split(),
    ]
    if not batching:
        cmd.append("--no-batching")
    # The server's log goes to a file: a pipe nobody reads fills up and blocks the server.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(log.read()) from None
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, all its threads (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def level(
    url: str,
    verses: list[str],
    clients: int,
    n_requests: int,
    max_seconds: float,
    serial: dict,
    server_pid: int,
) -> dict:
    """One load level: `clients` threads share n_requests; throughput, latency, CPU use."""
    server_cpu, client_cpu = process_cpu_seconds(server_pid), time.process_time()
    t0 = time.perf_counter()
    latencies, failures, mismatches = _send(url, verses, clients, n_requests, max_seconds, serial)
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu  # this process: the client threads
    server_after = process_cpu_seconds(server_pid)
    server_cpu = (
        server_after - server_cpu if server_cpu is not None and server_after is not None else None
    )
    done = len(latencies)
    lat = sorted(latencies)
    return {
        "clients": clients,
        "requests": done + len(failures),
        "ok": done,
        "failed": len(failures),
        "mismatched": len(mismatches),
        "seconds": wall,
        "requests_per_s": done / wall,
        "sentences_per_s": done / wall,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
        # cores kept busy on average: the server process (decoding and HTTP) and the clients
        "server_cores": server_cpu / wall if server_cpu is not None else None,
        "client_cores": client_cpu / wall,
    }


def _send(
    url: str, verses: list[str], clients: int, n_requests: int, max_seconds: float, serial: dict
) -> tuple[list[float], list, list[str]]:
    """Client threads, each on its own connection, send verses until n_requests are sent or
    max_seconds have passed. Returns latencies of the answers, failures, and verses whose answer
    differed from `serial`."""
    lock = threading.Lock()
    next_i = [0]
    latencies, failures, mismatches = [], [], []
    stop_at = time.perf_counter() + max_seconds

    def client():
        conn = Client(url)
        try:
            run(conn)
        finally:
            conn.close()

    def run(conn: Client):
        while True:
            with lock:
                i = next_i[0]
                if i >= n_requests or time.perf_counter() > stop_at:
                    return
                next_i[0] += 1
            verse = verses[i % len(verses)]
            t0 = time.perf_counter()
            try:
                status, body = conn.post({"q": verse, "source": "es", "target": "en"})
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
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures, mismatches


MODES = {  # name: (batching, workers, extra server arguments)
    "one at a time": (False, 1, ""),
    "batching 1 worker": (True, 1, ""),
    "batching 2 workers": (True, 2, ""),
    "continuous batching 2 workers": (True, 2, "--continuous"),
    "no batching 2 workers": (False, 2, ""),
}


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=str(ROOT / "models" / "es-en"), help="model package served")
    p.add_argument(
        "--verses",
        default=str(ROOT / "benchmarks" / "test-books.es.txt"),
        help="sentences sent, one per line",
    )
    p.add_argument("--clients", default="1,8,32,64", help="concurrent clients of each level")
    p.add_argument("--requests", type=int, default=320, help="requests per level")
    p.add_argument("--max-seconds", type=float, default=60, help="time bound per level")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds over every mode, interleaved (medians reported)",
    )
    p.add_argument("--modes", default=",".join(MODES), help="which of: " + ", ".join(MODES))
    p.add_argument(
        "--server-args", default="", help='extra `traductor serve` options, e.g. "--beam 1"'
    )
    p.add_argument("--out", help="write the report (markdown) here too, and its .json beside it")
    args = p.parse_args()
    verses = [v for v in Path(args.verses).read_text(encoding="utf-8").splitlines() if v.strip()][
        : args.requests
    ]
    levels = [int(c) for c in args.clients.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    if unknown := [m for m in modes if m not in MODES]:
        p.error(f"unknown modes {unknown}")
    rows = _medians(_run_rounds(args, verses, modes, levels))
    report = "\n".join(_report(rows, args, modes, levels)) + "\n"
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["failed"] == 0 and r["mismatched"] == 0 for r in rows) else 1


def _run_rounds(args, verses: list[str], modes: list[str], levels: list[int]) -> dict:
    """Every round starts a server per mode and runs every level on it: {(mode, clients): runs}."""
    runs: dict[tuple[str, int], list[dict]] = {}
    serial: dict[str, str] = {}
    for repeat in range(args.repeats):
        for mode in modes:
            batching, workers, extra = MODES[mode]
            proc, url = start(args, batching, workers, extra)
            try:
                _serial_answers(url, verses, serial)
                for clients in levels:
                    r = level(
                        url, verses, clients, args.requests, args.max_seconds, serial, proc.pid
                    )
                    runs.setdefault((mode, clients), []).append(r)
                    print(
                        f"round {repeat + 1}, {mode}, {clients:>2} clients: "
                        f"{r['requests_per_s']:.1f} req/s, p50 {r['p50_ms']:.0f} ms, "
                        f"p99 {r['p99_ms']:.0f} ms, failed {r['failed']}, "
                        f"mismatched {r['mismatched']}",
                        file=sys.stderr,
                    )
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    return runs


def _serial_answers(url: str, verses: list[str], serial: dict[str, str]) -> None:
    """Fill `serial` on the first server, one request at a time before any load (the reference
    answers); on later servers send one warm-up request."""
    one = Client(url)
    if not serial:
        for v in verses:
            status, body = one.post({"q": v, "source": "es", "target": "en"})
            serial[v] = body["translatedText"]
    else:
        one.post({"q": verses[0], "source": "es", "target": "en"})  # warm-up
    one.close()


def _medians(runs: dict) -> list[dict]:
    """One row per mode and level: medians over the rounds, counts summed, every run kept."""
    rows = []
    for (mode, clients), rs in runs.items():

        def med(key, rs=rs):
            return statistics.median(r[key] for r in rs)

        cores = [r["server_cores"] for r in rs if r["server_cores"] is not None]
        rows.append(
            {
                "mode": mode,
                "clients": clients,
                "rounds": len(rs),
                "requests_per_s": med("requests_per_s"),
                "p50_ms": med("p50_ms"),
                "server_cores": statistics.median(cores) if cores else None,
                "client_cores": med("client_cores"),
                "p99_ms": med("p99_ms"),
                "requests": sum(r["requests"] for r in rs),
                "failed": sum(r["failed"] for r in rs),
                "ok": sum(r["ok"] for r in rs),
                "mismatched": sum(r["mismatched"] for r in rs),
                "runs": rs,
            }
        )
    return rows


def _report(rows: list[dict], args, modes: list[str], levels: list[int]) -> list[str]:
    by = {(r["mode"], r["clients"]): r for r in rows}
    lines = [
        f"`traductor serve {args.server_args}`".replace(" `", "`")
        + f" on loopback, model {Path(args.model).name}, one verse per "
        f"request over a keep-alive connection per client, {args.requests} requests per level; "
        f"medians of {args.repeats} interleaved rounds; {cpu_summary()}.",
        "",
        "| clients | mode | requests/s | p50 latency (ms) | p99 latency (ms) | failed "
        "| answers equal to serial | vs one at a time | cores busy: server / clients |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for clients in levels:
        for mode in modes:
            r = by[(mode, clients)]
            base = by.get(("one at a time", clients))
            gain = (
                f"{r['requests_per_s'] / base['requests_per_s']:.2f}x"
                if base and mode != "one at a time"
                else ""
            )
            server = "-" if r["server_cores"] is None else f"{r['server_cores']:.2f}"
            lines.append(
                f"| {clients} | {mode} | {r['requests_per_s']:.1f} | {r['p50_ms']:.0f} "
                f"| {r['p99_ms']:.0f} | {r['failed']} | {r['ok'] - r['mismatched']}/{r['ok']} "
                f"| {gain} | {server} / {r['client_cores']:.2f} |"
            )
    return lines


if __name__ == "__main__":
    sys.exit(main())
