"""Translate a whole document and keep its format: the Python entry points.

    from traductor.runtime import Translator
    from traductor.runtime.documents import translate_file
    translate_file(Translator("models/es-en"), "informe.docx")        # -> informe.en.docx

translate_document works on bytes (the server's uploads), translate_file on paths; both take the
options of Translator.translate (beam_size, batch_size, target_language, ...).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .base import DocumentError
from .formats import format_of, get_format
from .glossary import DEFAULT_METHOD, check_terms
from .translate import translate_paragraphs


def translate_document(
    translator,
    data: bytes,
    fmt: str,
    *,
    glossary: Mapping[str, str] | None = None,
    keep: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> bytes:
    """A document's bytes in format `fmt` (a name such as "docx" or an extension such as ".docx")
    -> the translated document's bytes, same structure, only the text changed. progress(done,
    total) is called as sentences are translated. A document the format cannot read raises
    DocumentError (a ValueError)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DocumentError(f"translate_document takes bytes, got {type(data).__name__}")
    check_terms(glossary, keep)
    parsed = get_format(fmt).parse(bytes(data))
    translated = translate_paragraphs(
        translator,
        parsed.paragraphs,
        glossary=glossary,
        keep=keep,
        progress=progress,
        glossary_method=options.pop("glossary_method", DEFAULT_METHOD),
        **options,
    )
    return parsed.render(translated)


def translate_file(
    translator,
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    fmt: str | None = None,
    force: bool = False,
    glossary: Mapping[str, str] | None = None,
    keep: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> Path:
    """Translate the file `src` into `dst` (default: NAME.<target language>.EXT beside it) and
    return the path written. The format comes from src's extension unless fmt names one. An
    existing dst is replaced only with force=True; the file is written under a temporary name in
    dst's folder and renamed when complete, so a failure leaves nothing behind."""
    src = Path(src)
    document_format = format_of(src, fmt)
    target = dst_path(translator, src, dst, document_format, options.get("target_language"))
    if target.exists() and not force:
        raise DocumentError(f"{target} exists; pass --force (force=True) to replace it")
    if not target.parent.is_dir():
        raise DocumentError(f"output folder not found: {target.parent}")
    if not src.is_file():
        raise DocumentError(f"input file not found: {src}")
    data = translate_document(
        translator,
        src.read_bytes(),
        document_format.name,
        glossary=glossary,
        keep=keep,
        progress=progress,
        **options,
    )
    write_atomic(target, data)
    return target


def dst_path(translator, src: Path, dst, document_format, target_language: str | None) -> Path:
    """dst, or NAME.<target>.EXT beside src (EXT: src's, else the format's first)."""
    if dst is not None:
        return Path(dst)
    target = target_language or translator.config.target_language
    suffix = src.suffix or document_format.extensions[0]
    return src.with_name(f"{src.stem if src.suffix else src.name}.{target}{suffix}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to a temporary file in path's folder, then rename it to path: readers see the
    old file or the whole new one, and an error leaves no partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
