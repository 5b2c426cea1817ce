"""Document translation against translate_batch: speed per format, and memory against page count.

    .venv/bin/python benchmarks/documents_speed.py --out benchmarks/results/documents_speed.md

Speed: the first --verses test-book verses (test-books.es.txt) become one document of each format,
one verse per paragraph (txt: blank-line separated; md and html: paragraphs; srt and vtt: one cue
each; docx and odt: paragraphs; pptx and odp: 5 per slide, in two text frames; epub: chapters of
20), built with the formats' own libraries (python-docx, python-pptx, odfpy, ebooklib). Each
document goes through translate_document, and in the same run the same sentences (the verses split
by sentencex, as the document core splits them) go through one translator.translate_batch call;
the two alternate in every repeat, medians are reported, sentences/s of each and their ratio
(target: the document at >= 0.85 of translate_batch). "html+inline" is the html document with a
<b> on one word of every verse, which makes every sentence take the alignment pass.

Memory: a docx of --pages pages (--per-page verse paragraphs each, the verses repeated), translated
greedily in a fresh process per measurement, peak RSS (VmHWM) after loading the model; after
parsing the docx; after translate_batch of its sentences; after translate_document. The growth
from the small document to the large one is set against the size of the document itself (zip,
document.xml, the parsed document's RSS).

Prints markdown tables; with --out also writes them there and the figures as JSON beside it (same
name, .json).
"""

from __future__ import annotations

import argparse
import datetime
import html
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from traductor.runtime import Translator
from traductor.runtime.machine import cpu_summary

HERE = Path(__file__).resolve().parent
FORMATS = ("txt", "md", "html", "srt", "vtt", "docx", "pptx", "odt", "odp", "epub")
EXTRA = ("html+inline",)  # measured too, not one of the formats


def chunks(items: list, n: int) -> list[list]:
    return [items[i : i + n] for i in range(0, len(items), n)]


# -- documents, one verse per paragraph ------------------------------------------------------


def build_txt(verses: list[str]) -> bytes:
    return ("\n\n".join(verses) + "\n").encode()


def build_md(verses: list[str]) -> bytes:
    return build_txt(verses)


def build_html(verses: list[str], inline: bool = False) -> bytes:
    def para(v: str) -> str:
        words = html.escape(v, quote=False).split(" ")
        if inline and len(words) > 3:  # one bold word: the sentence needs its alignment
            words[2] = f"<b>{words[2]}</b>"
        return "<p>" + " ".join(words) + "</p>"

    body = "\n".join(para(v) for v in verses)
    return (
        '<!DOCTYPE html>\n<html lang="es"><head><meta charset="utf-8"><title>1</title></head>'
        f"<body>\n{body}\n</body></html>\n"
    ).encode()


def _cue_times(i: int, sep: str) -> str:
    def t(s: int) -> str:
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{sep}000"

    return f"{t(3 * i + 1)} --> {t(3 * i + 3)}"


def build_srt(verses: list[str]) -> bytes:
    return "".join(f"{i + 1}\n{_cue_times(i, ',')}\n{v}\n\n" for i, v in enumerate(verses)).encode()


def build_vtt(verses: list[str]) -> bytes:
    cues = "".join(f"{_cue_times(i, '.')}\n{v}\n\n" for i, v in enumerate(verses))
    return ("WEBVTT\n\n" + cues).encode()


def build_docx(verses: list[str]) -> bytes:
    from docx import Document

    doc = Document()
    for v in verses:
        doc.add_paragraph(v)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def build_pptx(verses: list[str]) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    for chunk in chunks(verses, 5):
        slide = prs.slides.add_slide(prs.slide_layouts[6])  # blank layout
        for top, part in ((0.5, chunk[:2]), (3.5, chunk[2:])):
            if not part:
                continue
            frame = slide.shapes.add_textbox(Inches(0.5), Inches(top), Inches(9), Inches(3))
            frame.text_frame.word_wrap = True
            frame.text_frame.text = part[0]
            for v in part[1:]:
                frame.text_frame.add_paragraph().text = v
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def build_odt(verses: list[str]) -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.text import P

    doc = OpenDocumentText()
    for v in verses:
        doc.text.addElement(P(text=v))
    buf = io.BytesIO()
    doc.write(buf)
    return buf.getvalue()


def build_odp(verses: list[str]) -> bytes:
    from odf.draw import Frame, Page, TextBox
    from odf.opendocument import OpenDocumentPresentation
    from odf.style import MasterPage, PageLayout, PageLayoutProperties
    from odf.text import P

    doc = OpenDocumentPresentation()
    layout = PageLayout(name="slide")
    layout.addElement(PageLayoutProperties(pagewidth="28cm", pageheight="21cm"))
    doc.automaticstyles.addElement(layout)
    master = MasterPage(name="Default", pagelayoutname=layout)
    doc.masterstyles.addElement(master)
    for k, chunk in enumerate(chunks(verses, 5)):
        page = Page(name=f"slide{k + 1}", masterpagename=master)
        doc.presentation.addElement(page)
        for y, part in (("1cm", chunk[:2]), ("10cm", chunk[2:])):
            if not part:
                continue
            frame = Frame(width="26cm", height="9cm", x="1cm", y=y)
            box = TextBox()
            frame.addElement(box)
            for v in part:
                box.addElement(P(text=v))
            page.addElement(frame)
    buf = io.BytesIO()
    doc.write(buf)
    return buf.getvalue()


def build_epub(verses: list[str]) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("test-books")
    book.set_title("1")  # a number: every format holds exactly the verses' sentences
    book.set_language("es")
    chapters = []
    for k, chunk in enumerate(chunks(verses, 20)):
        c = epub.EpubHtml(title=str(k + 1), file_name=f"c{k + 1}.xhtml", lang="es")
        paras = "".join(f"<p>{html.escape(v, quote=False)}</p>" for v in chunk)
        c.content = f"<html><head><title>{k + 1}</title></head><body>{paras}</body></html>"
        book.add_item(c)
        chapters.append(c)
    book.toc = chapters
    book.spine = ["nav", *chapters]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    buf = io.BytesIO()
    epub.write_epub(buf, book)
    return buf.getvalue()


def build(fmt: str, verses: list[str]) -> tuple[bytes, str]:
    """(document bytes, the format name translate_document takes)."""
    if fmt == "html+inline":
        return build_html(verses, inline=True), "html"
    return globals()[f"build_{fmt}"](verses), fmt


def sentences_of(verses: list[str], language: str) -> list[str]:
    """The sentences the document core sends to the model: sentencex's, words single-spaced."""
    from sentencex import segment

    out = []
    for v in verses:
        out += [" ".join(s.split()) for s in segment(language, v) if s.strip()]
    return out


# -- speed -----------------------------------------------------------------------------------


def speed(tr: Translator, verses: list[str], formats, beams, repeats: int) -> dict:
    from traductor.runtime.documents.api import translate_document

    sentences = sentences_of(verses, tr.config.source_language)
    docs = {fmt: build(fmt, verses) for fmt in formats}
    out = {}
    for beam in beams:
        tr.translate_batch(sentences[:16], beam_size=beam)  # warm-up
        times = {fmt: {"document": [], "batch": []} for fmt in formats}
        for rep in range(repeats):
            for fmt, (data, name) in docs.items():
                order = ("document", "batch") if rep % 2 == 0 else ("batch", "document")
                for kind in order:
                    start = time.perf_counter()
                    if kind == "document":
                        translate_document(tr, data, name, beam_size=beam)
                    else:
                        tr.translate_batch(sentences, beam_size=beam)
                    times[fmt][kind].append(time.perf_counter() - start)
        out["greedy" if beam == 1 else f"beam {beam}"] = {
            fmt: _speed_row(t, len(sentences), len(docs[fmt][0])) for fmt, t in times.items()
        }
    return {"sentences": len(sentences), "verses": len(verses), "runs": out}


def _speed_row(t: dict, n: int, size: int) -> dict:
    doc, batch = statistics.median(t["document"]), statistics.median(t["batch"])
    return {
        "bytes": size,
        "document_s": doc,
        "batch_s": batch,
        "document_sent_per_s": n / doc,
        "batch_sent_per_s": n / batch,
        "ratio": batch / doc,
        "document_times": t["document"],
        "batch_times": t["batch"],
    }


# -- memory ----------------------------------------------------------------------------------


def _peak_mb() -> float:
    """This process's peak RSS. getrusage's ru_maxrss is not used: Linux carries the parent's peak
    over into a child at exec, so every child would report at least the parent's RSS. VmHWM is
    the high-water mark of this process's own memory map."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: KiB or bytes


def child(args) -> int:
    """One memory measurement in this fresh process; prints one JSON line."""
    from traductor.runtime.documents.api import translate_document
    from traductor.runtime.documents.formats import get_format

    fmt = get_format("docx")
    paras = _pages(args.pages, args.per_page)
    data = Path(args.docx).read_bytes()
    tr = Translator(args.memory_model, intra_threads=args.threads)
    sentences = sentences_of(paras, tr.config.source_language)
    tr.translate_batch(sentences[:8], beam_size=1)  # sessions and arenas set up
    loaded = _peak_mb()
    start = time.perf_counter()
    if args.child == "parse":
        parsed = fmt.parse(data)
        assert len(parsed.paragraphs) >= len(paras)
    elif args.child == "batch":
        tr.translate_batch(sentences, beam_size=1)
    elif args.child == "document":
        translate_document(tr, data, "docx", beam_size=1)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        xml = z.getinfo("word/document.xml").file_size
    row = {
        "mode": args.child,
        "pages": args.pages,
        "paragraphs": len(paras),
        "sentences": len(sentences),
        "docx_bytes": len(data),
        "document_xml_bytes": xml,
        "loaded_mb": loaded,
        "peak_mb": _peak_mb(),
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(row))
    return 0


def _pages(pages: int, per_page: int) -> list[str]:
    """pages * per_page paragraphs: the test-book verses, repeated."""
    verses = _verses(None)
    return (verses * (pages * per_page // len(verses) + 1))[: pages * per_page]


def memory(args) -> list[dict]:
    """The docx is built here, so the children hold only its bytes."""
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="documents_speed_"))
    for pages in args.pages_list:
        path = tmp / f"{pages}.docx"
        path.write_bytes(build_docx(_pages(pages, args.per_page)))
        for mode in ("load", "parse", "batch", "document"):
            cmd = [sys.executable, __file__, "--child", mode, "--pages", str(pages)]
            cmd += ["--docx", str(path)]
            cmd += ["--per-page", str(args.per_page), "--memory-model", args.memory_model]
            cmd += ["--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"memory child {mode} {pages} pages failed:\n{done.stderr}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {pages} pages, {mode}: {rows[-1]['peak_mb']:.0f} MB", file=sys.stderr)
        path.unlink()
    tmp.rmdir()
    return rows


# -- report ----------------------------------------------------------------------------------


def report(meta: dict, sp: dict | None, mem: list[dict] | None) -> str:
    lines = [
        f"{meta['machine']}, {meta['date']}, {meta['model']} ({meta['variant']}), "
        f"{meta['threads']} intra-op thread(s).",
    ]
    if sp:
        lines += [
            "",
            f"Speed: {sp['verses']} verses = {sp['sentences']} sentences per document, medians of "
            f"{meta['repeats']} interleaved repeats; ratio = document sentences/s over "
            "translate_batch sentences/s on the same sentences (target >= 0.85).",
        ]
        for decoding, rows in sp["runs"].items():
            lines += [
                "",
                f"### {decoding}",
                "",
                "| format | document size | document sent/s | translate_batch sent/s | ratio |",
                "|---|---|---|---|---|",
            ]
            for fmt, r in rows.items():
                lines.append(
                    f"| {fmt} | {r['bytes'] / 1024:.1f} KiB | {r['document_sent_per_s']:.1f} "
                    f"| {r['batch_sent_per_s']:.1f} | {r['ratio']:.3f} |"
                )
    if mem:
        lines += ["", *memory_table(mem, meta)]
    if "speed_command" in meta:
        lines += ["", f"Speed: `{meta['speed_command']}` ({meta['speed_date']})."]
        lines += [f"Memory: `{meta['command']}` ({meta['date']})."]
    else:
        lines += ["", f"Command: `{meta['command']}`"]
    return "\n".join(lines) + "\n"


def memory_table(mem: list[dict], meta: dict) -> list[str]:
    by = {(r["pages"], r["mode"]): r for r in mem}
    pages = sorted({r["pages"] for r in mem})
    lines = [
        f"### Memory: docx, {meta['per_page']} paragraphs a page, greedy, "
        f"{meta['memory_model']}; peak RSS in a fresh process each",
        "",
        "| pages | paragraphs | sentences | docx | document.xml | model loaded | + parse "
        "| + translate_batch | + translate_document | document s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pages:
        load = by[p, "load"]["peak_mb"]
        d = by[p, "document"]
        lines.append(
            f"| {p} | {d['paragraphs']} | {d['sentences']} | {d['docx_bytes'] / 2**20:.2f} MB "
            f"| {d['document_xml_bytes'] / 2**20:.2f} MB | {load:.0f} MB "
            f"| {by[p, 'parse']['peak_mb'] - load:+.0f} MB "
            f"| {by[p, 'batch']['peak_mb'] - load:+.0f} MB "
            f"| {d['peak_mb'] - load:+.0f} MB | {d['seconds']:.1f} |"
        )
    if len(pages) >= 2:
        lo, hi = pages[0], pages[-1]

        def grow(mode):
            return (by[hi, mode]["peak_mb"] - by[hi, "load"]["peak_mb"]) - (
                by[lo, mode]["peak_mb"] - by[lo, "load"]["peak_mb"]
            )

        lines += [
            "",
            f"From {lo} to {hi} pages: translate_document's peak grows by {grow('document'):.0f} "
            f"MB; parsing alone by {grow('parse'):.0f} MB, translate_batch of the same sentences "
            f"by {grow('batch'):.0f} MB.",
        ]
    return lines


def _verses(n: int | None) -> list[str]:
    text = (HERE / "test-books.es.txt").read_text(encoding="utf-8")
    return [v for v in text.splitlines() if v.strip()][:n]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=str(HERE.parent / "models" / "es-en"), help="model package")
    p.add_argument("--variant", default=None, help="graph variant (default: the runtime's choice)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (every run)")
    p.add_argument("--verses", type=int, default=200, help="verses per document (speed)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (medians reported)")
    p.add_argument("--beams", default="1,4", help="beam sizes (1 = greedy)")
    p.add_argument(
        "--formats", default=",".join(FORMATS + EXTRA), help="formats for the speed runs"
    )
    p.add_argument("--pages", default="20,200", help="docx page counts for the memory runs")
    p.add_argument("--per-page", type=int, default=20, help="paragraphs (verses) per docx page")
    p.add_argument(
        "--memory-model", default=None, help="model for the memory runs (default: --model)"
    )
    p.add_argument(
        "--skip-speed",
        action="store_true",
        help="memory runs only (the speed figures already in --out's JSON are kept)",
    )
    p.add_argument("--skip-memory", action="store_true", help="speed runs only")
    p.add_argument("--out", help="write the tables here (markdown) and the figures beside (.json)")
    p.add_argument(
        "--child", choices=("load", "parse", "batch", "document"), help=argparse.SUPPRESS
    )
    p.add_argument("--docx", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.memory_model = args.memory_model or args.model
    if args.child:
        args.pages = int(args.pages)
        return child(args)
    args.pages_list = [int(x) for x in args.pages.split(",")]
    tr = Translator(args.model, variant=args.variant, intra_threads=args.threads)
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": cpu_summary(),
        "model": os.path.relpath(args.model),
        "variant": tr.variant,
        "threads": args.threads,
        "repeats": args.repeats,
        "per_page": args.per_page,
        "memory_model": os.path.relpath(args.memory_model),
        "command": ".venv/bin/python benchmarks/documents_speed.py " + " ".join(sys.argv[1:]),
    }
    sp = None
    if args.skip_speed and args.out and Path(args.out).with_suffix(".json").exists():
        # keep the speed figures already written there (a memory-only rerun)
        old = json.loads(Path(args.out).with_suffix(".json").read_text(encoding="utf-8"))
        sp = old.get("speed")
        meta["speed_command"] = old["meta"].get("speed_command", old["meta"]["command"])
        meta["speed_date"] = old["meta"].get("speed_date", old["meta"]["date"])
    if not args.skip_speed:
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        beams = [int(b) for b in args.beams.split(",")]
        sp = speed(tr, _verses(args.verses), formats, beams, args.repeats)
    mem = None if args.skip_memory else memory(args)
    text = report(meta, sp, mem)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(
            json.dumps({"meta": meta, "speed": sp, "memory": mem}, indent=1) + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
