"""The page shipped in the package (runtime/serve/page/): served at / when no in-browser page is
set up (a pip install), and at /page/ always; it translates text and documents through the HTTP
API. Checked over HTTP, and driven in Debian's headless Chromium where node, playwright-core
(web/node_modules) and /usr/bin/chromium are there."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from traductor.runtime import Translator  # noqa: E402
from traductor.runtime.serve import Settings  # noqa: E402
from traductor.runtime.serve.app import create_app  # noqa: E402
from traductor.runtime.serve.static import PAGE_DIR  # noqa: E402

from .conftest import TINY_MODEL  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLAYWRIGHT = ROOT / "web" / "node_modules" / "playwright-core" / "index.mjs"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def translator():
    return Translator(TINY_MODEL)


def test_the_shipped_page_is_small_and_served_at_the_root_without_a_web_dir(translator):
    files = sorted(p.name for p in PAGE_DIR.iterdir())
    assert files == ["index.html", "page.css", "page.js"]
    assert sum(p.stat().st_size for p in PAGE_DIR.iterdir()) < 12_000  # a few KB, no build step
    with TestClient(create_app([translator], Settings(web_dir=None))) as c:
        for path in ("/", "/page/"):
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            assert r.text == (PAGE_DIR / "index.html").read_text()
        # The page's own files, relative to either address.
        assert c.get("/page.js").text == c.get("/page/page.js").text
        assert c.get("/page.css").headers["content-type"].startswith("text/css")
        assert c.get("/page/../../settings.py").status_code == 404
        assert c.get("/page/%2E%2E/settings.py").status_code == 404


def test_an_in_browser_page_keeps_the_root_and_the_shipped_page_moves_to_page(translator, tmp_path):
    (tmp_path / "index.html").write_text("<p>in the browser</p>")
    with TestClient(create_app([translator], Settings(web_dir=tmp_path))) as c:
        assert c.get("/").text == "<p>in the browser</p>"
        assert c.get("/page/").text == (PAGE_DIR / "index.html").read_text()
        assert c.get("/page/page.js").status_code == 200


def test_the_page_translates_through_the_http_api():
    """Its script calls the API's endpoints relative to the server's root, and builds its
    language selectors from /languages."""
    js = (PAGE_DIR / "page.js").read_text()
    html = (PAGE_DIR / "index.html").read_text()
    for call in ('api("translate"', 'api("translate_file"', 'api("languages")'):
        assert call in js
    assert 'api("frontend/settings")' in js and "translatedFileUrl" in js
    assert 'src="page.js"' in html and 'href="page.css"' in html  # relative: / and /page/ alike
    assert "onnxruntime" not in js + html and "innerHTML" not in js
    # ROOT: the API's address from the page's, as the script computes it.
    root = re.search(r"const ROOT = location\.pathname(.*);", js).group(1)
    assert '.replace(/page\\/(index\\.html)?$/, "")' in root


needs_browser = pytest.mark.skipif(
    NODE is None or not PLAYWRIGHT.is_file() or not CHROMIUM.is_file(),
    reason="needs node, web/node_modules (make -f web/web.mk web-deps) and /usr/bin/chromium",
)

DRIVE = """
import { chromium } from %(playwright)s;
const [url, file, out] = process.argv.slice(2);
const root = typeof process.getuid === "function" && process.getuid() === 0;
const browser = await chromium.launch({ executablePath: %(chromium)s,
                                        args: root ? ["--no-sandbox"] : [] });
const report = {};
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => { report.error = String(e); });
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector("#source").options.length > 0);
  report.sources = await page.$$eval("#source option", (os) => os.map((o) => o.value));
  report.targets = await page.$$eval("#target option", (os) => os.map((o) => o.value));
  await page.fill("#q", "sol luna");
  await page.click("#go");
  await page.waitForFunction(() => !["", "…"].includes(document.querySelector("#out").textContent));
  report.text = await page.textContent("#out");
  await page.setInputFiles("#file", file);
  await page.click("#go-file");
  await page.waitForSelector("#download:not([hidden])");
  report.href = await page.getAttribute("#download", "href");
  report.accept = await page.getAttribute("#file", "accept");
} finally {
  await browser.close();
}
(await import("node:fs")).writeFileSync(out, JSON.stringify(report));
"""


class ThreadServer:
    """create_app on uvicorn in a thread: a real HTTP server with the settings a test chooses (a
    `traductor serve` from this checkout would find web/ and put it at /)."""

    def __init__(self, translator: Translator, settings: Settings):
        import threading

        import uvicorn

        from .test_server import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app([translator], settings), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive(), "server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.mark.slow
@needs_browser
@pytest.mark.parametrize("path", ["/", "/page/"])
def test_the_page_in_headless_chromium_translates_text_and_a_file(path, translator, tmp_path):
    pytest.importorskip("uvicorn")
    from traductor.runtime.documents.api import translate_document

    script = tmp_path / "drive.mjs"
    script.write_text(
        DRIVE % {"playwright": json.dumps(str(PLAYWRIGHT)), "chromium": json.dumps(str(CHROMIUM))}
    )
    doc, out = tmp_path / "carta.txt", tmp_path / "out.json"
    doc.write_text("El sol y la luna.\n", encoding="utf-8")
    web_dir = None
    if path == "/page/":  # an in-browser page at /: the shipped one is at /page/
        web_dir = tmp_path / "web"
        web_dir.mkdir()
        (web_dir / "index.html").write_text("<p>in the browser</p>")
    s = ThreadServer(translator, Settings(web_dir=web_dir))
    try:
        proc = subprocess.run(
            [NODE, str(script), s.url + path, str(doc), str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(out.read_text())
        with urllib.request.urlopen(report["href"], timeout=30) as r:
            downloaded = r.read()
    finally:
        s.stop()
    assert "error" not in report
    assert report["sources"] == ["es"] and report["targets"] == ["en"]
    assert report["text"] == translator.translate("sol luna")
    assert ".txt" in report["accept"].split(",")
    assert report["href"].startswith(s.url + "/download_file/")
    assert downloaded == translate_document(translator, doc.read_bytes(), "txt")
