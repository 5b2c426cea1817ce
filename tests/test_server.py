"""`traductor serve`: a real server process on 127.0.0.1, driven over HTTP and by the real
LibreTranslate clients (libretranslatepy, libretranslate-aio). LibreTranslate's own API test cases
are reproduced with this project's es->en and en->es test packages."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("py3langid")

from traductor.runtime import Translator  # noqa: E402
from traductor.runtime.package import write_manifest  # noqa: E402

from .conftest import TINY_MODEL  # noqa: E402

SPANISH = ["sol luna", "casa perro gato", "el rey y el pan", "agua fuego tierra cielo mar"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "traductor", "serve", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read()}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        ctype: str | None = None,
        headers=None,
    ):
        req = urllib.request.Request(
            self.url + path,
            data=body,
            method=method,
            headers={**({"Content-Type": ctype} if ctype else {}), **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None, dict(e.headers)

    def get(self, path: str):
        return self.request("GET", path)[:2]

    def post_json(self, path: str, payload) -> tuple[int, object]:
        return self.request("POST", path, json.dumps(payload).encode(), "application/json")[:2]

    def post_form(self, path: str, fields: dict | list) -> tuple[int, object]:
        from urllib.parse import urlencode

        return self.request(
            "POST",
            path,
            urlencode(fields, doseq=True).encode(),
            "application/x-www-form-urlencoded",
        )[:2]

    def stop(self) -> bool:
        """SIGTERM, as a service manager stops it -> whether it shut down by itself. (uvicorn
        re-raises the signal once it has shut down gracefully, so the exit status is -SIGTERM.)"""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return False
        return code in (0, -signal.SIGTERM) and "Traceback" not in self.proc.stderr.read()


@pytest.fixture(scope="module")
def en_es(tmp_path_factory) -> Path:
    """A second package that declares English -> Spanish (the tiny model's weights, relabelled)."""
    pkg = tmp_path_factory.mktemp("pkg") / "en-es"
    shutil.copytree(TINY_MODEL, pkg)
    cfg = json.loads((pkg / "config.json").read_text())
    cfg["source_language"], cfg["target_language"] = "en", "es"
    (pkg / "config.json").write_text(json.dumps(cfg))
    (pkg / "reference.json").unlink()
    write_manifest(pkg)
    return pkg


@pytest.fixture(scope="module")
def server(en_es):
    s = Server("--model", str(TINY_MODEL), "--model", str(en_es), "--alternatives-limit", "3")
    yield s
    assert s.stop()


def alone(texts, **options):
    return [r.text for r in Translator(TINY_MODEL).translate_batch(texts, **options)]


# -- LibreTranslate's API test cases, es->en -----------------------------------------------------


def test_translate_form_and_batch_json(server):
    status, body = server.post_form(
        "/translate", {"q": "sol luna", "source": "es", "target": "en", "format": "text"}
    )
    assert status == 200 and body == {"translatedText": alone(["sol luna"])[0]}
    status, body = server.post_json(
        "/translate", {"q": SPANISH[:2], "source": "es", "target": "en", "format": "text"}
    )
    assert status == 200 and body["translatedText"] == alone(SPANISH[:2])


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"q": "sol", "source": "es", "target": "zz"}, "zz is not supported"),
        ({"q": "sol", "source": "zz", "target": "en"}, "zz is not supported"),
        ({"source": "es", "target": "en"}, "Invalid request: missing q parameter"),
        ({"q": "sol", "target": "en"}, "Invalid request: missing source parameter"),
        ({"q": "sol", "source": "es"}, "Invalid request: missing target parameter"),
        (
            {"q": "sol", "source": "es", "target": "en", "format": "xml"},
            "xml format is not supported",
        ),
        (
            {"q": "sol", "source": "es", "target": "en", "alternatives": "abc"},
            "Invalid request: alternatives parameter is not a number",
        ),
        (
            {"q": "sol", "source": "es", "target": "en", "alternatives": 4},
            "Invalid request: alternatives parameter must be <= 3",
        ),
        (
            {"q": "sol", "source": "es", "target": "es"},
            "Spanish (es) is not available as a target language from Spanish (es)",
        ),
    ],
)
def test_translate_errors(server, fields, message):
    assert server.post_form("/translate", fields) == (400, {"error": message})


def test_alternatives_come_from_the_n_best(server):
    status, body = server.post_json(
        "/translate", {"q": "casa perro gato", "source": "es", "target": "en", "alternatives": 2}
    )
    tr = Translator(TINY_MODEL)
    nbest = tr.translate(
        "casa perro gato", beam_size=max(tr.defaults.beam_size, 3), num_hypotheses=3
    )
    assert status == 200 and body["translatedText"] == nbest.text
    assert body["alternatives"] == [c.text for c in nbest.hypotheses[1:] if c.text != nbest.text]
    status, body = server.post_json(
        "/translate", {"q": ["sol", "luna"], "source": "es", "target": "en", "alternatives": 2}
    )
    assert (
        status == 200
        and len(body["alternatives"]) == 2
        and all(isinstance(a, list) for a in body["alternatives"])
    )


def test_auto_detects_among_the_loaded_sources(server):
    status, body = server.post_form(
        "/translate",
        {
            "q": "Esta es una oración escrita en español para probar",
            "source": "auto",
            "target": "en",
        },
    )
    assert (
        status == 200
        and body["detectedLanguage"]["language"] == "es"
        and body["detectedLanguage"]["confidence"] > 50
    )
    status, body = server.post_json(
        "/translate",
        {
            "q": ["Hello there, my friend", "Good morning to you all"],
            "source": "auto",
            "target": "es",
        },
    )
    assert status == 200 and [d["language"] for d in body["detectedLanguage"]] == ["en", "en"]
    status, body = server.post_json("/detect", {"q": "This is an English sentence for detection"})
    assert (
        status == 200
        and body[0]["language"] == "en"
        and {d["language"] for d in body} == {"en", "es"}
    )
    assert server.post_form("/detect", {"q": "Hola"})[0] == 200
    assert server.post_json("/detect", {"q": ["This is English", "Esto es español"]})[0] == 200
    assert server.request("POST", "/detect")[:2] == (
        400,
        {"error": "Invalid request: missing q parameter"},
    )
    assert server.get("/detect")[0] == 405


def test_html_keeps_every_tag_and_attribute(server):
    doc = (
        '<div class="a" data-x="1"><p>sol <b title="t">luna</b> &amp; perro</p><!-- note -->'
        '<script>var x = "sol";</script><br/>casa</div>'
    )
    status, body = server.post_form(
        "/translate", {"q": doc, "source": "es", "target": "en", "format": "html"}
    )
    assert status == 200
    out = body["translatedText"]
    for markup in (
        '<div class="a" data-x="1">',
        "<p>",
        '<b title="t">',
        "</b>",
        "</p>",
        "<!-- note -->",
        '<script>var x = "sol";</script>',
        "<br/>",
        "</div>",
    ):
        assert markup in out
    assert alone(["luna"])[0] in out and alone(["casa"])[0] in out
    status, body = server.post_json(
        "/translate",
        {"q": ["<p>sol</p>", "<p>luna</p>"], "source": "es", "target": "en", "format": "html"},
    )
    assert status == 200 and body["translatedText"] == [
        f"<p>{t}</p>" for t in alone(["sol", "luna"])
    ]


def test_non_translatable_text_comes_back_as_is(server):
    assert server.post_form("/translate", {"q": "😀", "source": "es", "target": "en"}) == (
        200,
        {"translatedText": "😀"},
    )
    assert server.post_json("/translate", {"q": ["😀", "123"], "source": "es", "target": "en"}) == (
        200,
        {"translatedText": ["😀", "123"]},
    )


def test_languages_settings_health_cors_and_methods(server):
    assert server.get("/languages") == (
        200,
        [
            {"code": "en", "name": "English", "targets": ["es"]},
            {"code": "es", "name": "Spanish", "targets": ["en"]},
        ],
    )
    status, settings = server.get("/frontend/settings")
    assert (
        status == 200
        and settings["charLimit"] == -1
        and settings["apiKeys"] is False
        and settings["language"]["source"]["code"] == "en"
    )
    assert server.get("/health") == (200, {"status": "ok"})
    status, body, headers = server.request("GET", "/translate")
    assert status == 405 and "error" in body
    assert (
        headers["access-control-allow-origin"] == "*"
        and headers["access-control-allow-methods"] == "GET, POST"
    )
    assert server.request("OPTIONS", "/translate")[0] == 200
    assert server.request("GET", "/nope")[0] == 404


@pytest.mark.parametrize(
    "body, ctype",
    [
        (b"{not json", "application/json"),
        (b'["a", "b"]', "application/json"),
        (b'{"q": 5, "source": "es", "target": "en"}', "application/json"),
        (b'{"q": [1, 2], "source": "es", "target": "en"}', "application/json"),
        (b'{"q": {"a": 1}, "source": "es", "target": "en"}', "application/json"),
        (b'{"q": "sol", "source": ["es"], "target": "en"}', "application/json"),
        (b'{"q": [], "source": "es", "target": "en"}', "application/json"),
        (b"q=%FF%FEsol&source=es&target=en", "application/x-www-form-urlencoded"),
        (b'{"q": "sol", "source": "es", "target": "en", "format": "pdf"}', "application/json"),
        (b'{"q": "sol", "source": "xx", "target": "en"}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    ],
)
def test_bad_inputs_get_a_400_and_the_server_stays_up(server, body, ctype):
    status, answer, _ = server.request("POST", "/translate", body, ctype)
    assert status == 400 and set(answer) == {"error"} and answer["error"]
    assert server.get("/health") == (200, {"status": "ok"})


def test_libretranslatepy_client(server):
    from libretranslatepy import LibreTranslateAPI

    lt = LibreTranslateAPI(server.url)
    assert lt.translate("sol luna", "es", "en") == alone(["sol luna"])[0]
    assert lt.detect("This is an English sentence")[0]["language"] == "en"
    assert {lang["code"] for lang in lt.languages()} == {"en", "es"}


def test_libretranslate_aio_clients(server):
    from libretranslate_aio import AsyncLibreTranslate, LibreTranslate
    from libretranslate_aio.exceptions import BadRequestError

    with LibreTranslate(base_url=server.url) as lt:
        assert lt.translate("sol luna", "es", "en").translated_text == alone(["sol luna"])[0]
        assert lt.translate(SPANISH, "es", "en").translated_text == alone(
            SPANISH
        )  # repeated q fields in a form
        assert lt.detect("Esta es una frase en español")[0].language == "es"
        assert {lang.code for lang in lt.languages()} == {"en", "es"}
        assert lt.health() is True and lt.frontend_settings().char_limit == -1
        with pytest.raises(BadRequestError, match="zz is not supported"):
            lt.translate("sol", "es", "zz")

    async def run():
        async with AsyncLibreTranslate(base_url=server.url) as lt:
            return await asyncio.gather(*(lt.translate(t, "es", "en") for t in SPANISH))

    assert [r.translated_text for r in asyncio.run(run())] == alone(SPANISH)


def _post_concurrently(server, verses: list[str]) -> list:
    """Each verse from its own client thread, all at once -> the (status, body) of each."""
    answers: dict[int, object] = {}

    def client(i: int):
        answers[i] = server.post_json(
            "/translate", {"q": verses[i], "source": "es", "target": "en"}
        )

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(verses))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [answers[i] for i in range(len(verses))]


def test_concurrent_requests_equal_their_serial_answers(server):
    verses = (
        (Path(__file__).parents[1] / "benchmarks" / "test-books.es.txt")
        .read_text(encoding="utf-8")
        .splitlines()[:40]
    )
    answers = _post_concurrently(server, verses)
    assert all(a[0] == 200 for a in answers)
    assert [a[1]["translatedText"] for a in answers] == [
        server.post_json("/translate", {"q": v, "source": "es", "target": "en"})[1][
            "translatedText"
        ]
        for v in verses
    ]


def test_the_batcher_gathers_requests_and_keeps_each_answer(tmp_path):
    from traductor.runtime.serve import Batcher, Settings

    tr = Translator(TINY_MODEL, intra_threads=1)
    batcher = Batcher(tr, Settings(batch_wait_ms=50, max_batch_sentences=64, continuous=False))
    verses = [
        " ".join(SPANISH[i % 4].split()[: 1 + i % 3]) + f" {w}"
        for i, w in enumerate("sol luna casa perro gato agua fuego mar rey pan vino monte".split())
    ]
    futures = [batcher.submit([v], {"target_language": None}) for v in verses]
    got = [f.result(timeout=60)[0].text for f in futures]
    batcher.close()
    assert got == alone(verses) and batcher.batches < len(verses)


@pytest.mark.parametrize("batching", [True, False])
def test_several_workers_decode_batches_at_once_and_close_drains_the_queue(batching):
    from traductor.runtime.serve import Batcher, Settings

    tr = Translator(TINY_MODEL, intra_threads=1)
    verses = [
        " ".join("casa perro gato sol luna agua fuego mar".split()[i % 5 : i % 5 + 1 + i % 4])
        for i in range(60)
    ]
    batcher = Batcher(
        tr,
        Settings(
            batch_wait_ms=5, max_batch_sentences=8, workers=3, batching=batching, continuous=False
        ),
    )
    assert len(batcher.threads) == 3
    inside, most = [0], [0]
    lock = threading.Lock()
    original = tr.translate_batch

    def counting(texts, **options):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.02)  # long enough for the other workers to start theirs
            return original(texts, **options)
        finally:
            with lock:
                inside[0] -= 1

    tr.translate_batch = counting
    futures = [batcher.submit([v], {"target_language": None}) for v in verses]
    batcher.close()  # returns once every queued job is answered
    assert all(f.done() for f in futures)
    assert [f.result()[0].text for f in futures] == alone(verses)
    assert most[0] > 1  # batches overlapped
    assert batcher.jobs == len(verses) and (batcher.batches < len(verses)) == batching
    assert all(not t.is_alive() for t in batcher.threads)


def test_limits_and_api_keys(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# one per line\nsecret-1\n")
    s = Server(
        "--model",
        str(TINY_MODEL),
        "--char-limit",
        "12",
        "--batch-limit",
        "2",
        "--req-limit",
        "6",
        "--api-keys",
        str(keys),
    )
    try:
        ok = {"source": "es", "target": "en", "api_key": "secret-1"}
        assert s.post_form("/translate", {"q": "sol", **ok})[0] == 200
        assert s.post_form("/translate", {"q": "sol", "source": "es", "target": "en"}) == (
            400,
            {"error": "Please contact the server operator to get an API key"},
        )
        assert s.post_form(
            "/translate", {"q": "sol", "source": "es", "target": "en", "api_key": "nope"}
        ) == (403, {"error": "Invalid API key"})
        assert s.post_form("/translate", {"q": "sol luna casa perro", **ok}) == (
            400,
            {"error": "Invalid request: request (19) exceeds text limit (12)"},
        )
        assert s.post_json("/translate", {"q": ["sol", "luna", "casa"], **ok}) == (
            400,
            {"error": "Invalid request: request (3) exceeds text limit (2)"},
        )
        assert s.get("/frontend/settings")[1]["keyRequired"] is True
        statuses = [s.post_form("/translate", {"q": "sol", **ok})[0] for _ in range(4)]
        assert statuses[-1] == 429 and 200 in statuses
        assert (
            s.post_form("/translate", {"q": "sol", **ok})[1]["error"] == "Slowdown: 6 per 1 minute"
        )
        assert s.get("/health") == (200, {"status": "ok"})
    finally:
        assert s.stop()


def test_sigterm_finishes_the_requests_in_flight(tmp_path):
    s = Server("--model", str(TINY_MODEL), "--no-batching")
    texts = [
        " ".join("casa perro gato sol luna agua".split()[: i % 6 + 1]) for i in range(3000)
    ]  # ~3 s of work
    result = {}

    def slow():
        result["answer"] = s.post_json("/translate", {"q": texts, "source": "es", "target": "en"})
        result["done"] = time.perf_counter()

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    signalled = time.perf_counter()
    stopped = s.stop()
    t.join(timeout=120)
    assert result["done"] > signalled  # it was still in flight when SIGTERM came
    assert stopped
    assert result["answer"][0] == 200 and result["answer"][1]["translatedText"] == alone(texts)


def test_serve_refuses_bad_settings_with_one_line(tmp_path):
    for args, message in (
        (["--char-limit", "0"], "--char-limit must be -1"),
        (["--api-keys", str(tmp_path / "none")], "file not found"),
        (["--model", str(tmp_path / "missing")], "model directory not found"),
        (["--workers", "0"], "--workers must be >= 1"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "traductor", "serve", "--port", str(free_port()), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_serve_flags_default_to_the_settings_defaults():
    """`traductor serve` with no flags runs on Settings() as a library user gets it (the page and
    the API keys aside: the CLI finds web/ in a checkout and reads keys from a file)."""
    from dataclasses import fields

    from traductor.cli import build_parser
    from traductor.runtime.serve import Settings
    from traductor.runtime.serve.main import settings_from_args

    from_cli = settings_from_args(build_parser().parse_args(["serve"]))
    for f in fields(Settings):
        if f.name != "web_dir":
            assert getattr(from_cli, f.name) == getattr(Settings(), f.name), f.name


def test_model_files_are_served_with_isolation_headers_and_nothing_else(server):
    req = urllib.request.Request(server.url + "/models/tiny-model/config.json")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read())["source_language"] == "es"
        assert (
            r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            and r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        )
    for path in (
        "/models/tiny-model/reference.json",
        "/models/tiny-model/..%2F..%2Fconftest.py",
        "/models/nope/config.json",
        "/models/tiny-model/%2E%2E/%2E%2E/conftest.py",
    ):
        assert server.request("GET", path)[0] == 404, path


WEB = Path(__file__).parents[1] / "web"


@pytest.mark.skipif(
    not (WEB / "node_modules").is_dir(), reason="web/ is not set up (make web-deps)"
)
def test_the_browser_page_is_served_cross_origin_isolated(tmp_path):
    s = Server("--model", str(Path(__file__).parents[1] / "models" / "es-en"))
    try:
        for path in (
            "/",
            "/traductor.js",
            "/models/es-en/config.json",
            "/models/es-en/decoder.int8.onnx",
        ):
            with urllib.request.urlopen(s.url + path, timeout=30) as r:
                assert r.status == 200 and r.read()
                assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        wasm = next((WEB / "node_modules" / "onnxruntime-web" / "dist").glob("*.wasm"))
        with urllib.request.urlopen(
            f"{s.url}/node_modules/onnxruntime-web/dist/{wasm.name}", timeout=30
        ) as r:
            assert r.headers["Content-Type"] == "application/wasm"
        assert s.request("GET", "/../pyproject.toml")[0] == 404
        assert s.request("GET", "/%2E%2E/pyproject.toml")[0] == 404
    finally:
        assert s.stop()


def test_two_workers_split_a_crowd_of_requests_evenly():
    """A crowd that arrives together is shared between the workers (each batch takes 1/N of the
    requests in play), not taken whole by the worker that happens to be free.

    Timing is taken out of it: the wait is long (a batch closes at its share, not at the deadline,
    so a slow test thread still fills it) and the first two batches decode only once both have been
    gathered, so the first cannot finish and leave play while the second gathers. If one worker
    took the whole crowd there would be no second batch and the barrier breaks."""
    from traductor.runtime.serve import Batcher, Settings

    tr = Translator(TINY_MODEL, intra_threads=1)
    batcher = Batcher(
        tr, Settings(batch_wait_ms=10_000, max_batch_sentences=32, workers=2, continuous=False)
    )
    sizes: list[int] = []
    both_gathered = threading.Barrier(2, timeout=20)
    original = tr.translate_batch

    def recording(texts, **options):
        sizes.append(len(texts))
        if len(sizes) <= 2:
            both_gathered.wait()
        return original(texts, **options)

    tr.translate_batch = recording
    verses = [
        " ".join("casa perro gato sol luna agua".split()[i % 4 : i % 4 + 2]) for i in range(16)
    ]
    batcher.announce(
        len(verses)
    )  # as the server does while it reads the requests: the crowd is in play
    futures = [batcher.submit([v], {"target_language": None}, announced=True) for v in verses]
    got = [f.result(timeout=60)[0].text for f in futures]
    batcher.close()
    assert got == alone(verses)
    assert sorted(sizes) == [8, 8]


def _verses(n: int) -> list[str]:
    words = "casa perro gato sol luna agua fuego mar rey pan vino monte".split()
    return [" ".join(words[(3 * i) % 12 : (3 * i) % 12 + 1 + i % 5]) for i in range(n)]


@pytest.mark.parametrize("workers", [1, 2])
def test_continuous_batching_lets_requests_join_a_running_batch(workers):
    """With continuous batching a request that arrives while a batch decodes joins it at the next
    step. Requests are submitted from inside the decoder steps (so they arrive mid-batch whatever
    the timing): each must still get the answer it gets alone, greedy and other beam options
    included."""
    from traductor.runtime import continuous
    from traductor.runtime.serve import Batcher, Settings

    tr = Translator(TINY_MODEL, intra_threads=1)
    batcher = Batcher(tr, Settings(max_batch_sentences=8, workers=workers, continuous=True))
    assert batcher.continuous
    verses = _verses(24)
    options = [{"target_language": None}] * 20 + [
        {"target_language": None, "beam_size": 1},
        {"target_language": None, "beam_size": 2, "num_hypotheses": 2},
        {"target_language": None},
        {"target_language": None, "beam_size": 1},
    ]
    joined, lock = [], threading.Lock()
    futures: list = []
    original_add, original_step = continuous.ContinuousBeams.add, continuous.ContinuousBeams.step

    def add(self, items):
        with lock:
            joined.append(
                sorted({s.step for s in self.running})
            )  # the steps of the sentences already running
        return original_add(self, items)

    def step(self):
        with lock:
            if len(futures) < len(verses):  # the next request arrives during this step
                i = len(futures)
                futures.append(batcher.submit([verses[i]], options[i]))
        return original_step(self)

    continuous.ContinuousBeams.add, continuous.ContinuousBeams.step = add, step
    try:
        with lock:
            futures.append(batcher.submit([verses[0]], options[0]))
        deadline = time.time() + 60
        while len(futures) < len(verses) and time.time() < deadline:
            time.sleep(0.01)
        results = [f.result(timeout=60) for f in list(futures)]
        batcher.close()
    finally:
        continuous.ContinuousBeams.add, continuous.ContinuousBeams.step = (
            original_add,
            original_step,
        )
    assert len(results) == len(verses)
    for v, o, r in zip(verses, options, results):
        expected = tr.translate_batch([v], **o)[0]
        assert [c.text for c in r[0].hypotheses] == [c.text for c in expected.hypotheses]
        assert [c.score for c in r[0].hypotheses] == [c.score for c in expected.hypotheses]
    assert any(
        steps and max(steps) > 0 for steps in joined
    )  # sentences joined batches already past their first step
    assert batcher.jobs == len(verses)
    assert all(not t.is_alive() for t in batcher.threads)


def test_continuous_batching_survives_a_failing_step_and_a_bad_request():
    from traductor.runtime import continuous
    from traductor.runtime.serve import Batcher, Settings

    tr = Translator(TINY_MODEL, intra_threads=1)
    batcher = Batcher(tr, Settings(workers=1, continuous=True))
    original = continuous.ContinuousBeams.step
    calls = [0]

    def failing(self):
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("decoder broke")
        return original(self)

    continuous.ContinuousBeams.step = failing
    try:
        broken = batcher.submit(["casa perro"], {"target_language": None})
        with pytest.raises(RuntimeError, match="decoder broke"):
            broken.result(timeout=60)
        bad = batcher.submit(["casa"], {"target_language": None, "beam_size": 0})
        with pytest.raises(ValueError, match="beam_size"):
            bad.result(timeout=60)
        fine = batcher.submit(["sol luna"], {"target_language": None})
        assert fine.result(timeout=60)[0].text == alone(["sol luna"])[0]
    finally:
        continuous.ContinuousBeams.step = original
        batcher.close()


def test_serve_continuous_answers_concurrent_requests_as_alone():
    s = Server("--model", str(TINY_MODEL), "--continuous")
    try:
        verses = _verses(16)
        assert _post_concurrently(s, verses) == [
            (200, {"translatedText": t}) for t in alone(verses)
        ]
        assert (
            s.post_json(
                "/translate",
                {"q": ["sol luna", "casa"], "source": "es", "target": "en", "alternatives": 2},
            )[0]
            == 200
        )
    finally:
        assert s.stop()
