"""Reading untrusted zip packages and XML safely, and writing a package back with only some of its
members changed (docx, pptx, odt, odp and epub are all zip archives of XML).

Zip: the member count and the total uncompressed size are bounded before anything is read (a zip
bomb), member names with '..' or absolute paths are refused, and so are encrypted members and
OLE compound files (a password-protected Office document is an encrypted OLE file, not a zip).

XML: lxml with entity resolution, DTD loading and network access off, and huge_tree off; a DOCTYPE
that declares entities (billion laughs, external entities) is refused before it is parsed.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from .base import DocumentError

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The internal subset of a DOCTYPE: <!DOCTYPE name ... [ subset ]>
_DECLARATION = re.compile(rb"^(?:\xef\xbb\xbf)?<\?xml[^>]*\?>\s*")
_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^\[>]*\[(.*?)\]\s*>", re.DOTALL)


def etree():
    """lxml.etree, or one line saying how to install it."""
    try:
        from lxml import etree as lxml_etree
    except ImportError as e:
        raise DocumentError(
            "office and e-book documents need lxml: pip install 'traductor[documents]'"
        ) from e
    return lxml_etree


@dataclass(frozen=True)
class ZipLimits:
    """What a package may hold; checked on the central directory before any member is read."""

    max_members: int = 10_000  # an epub with thousands of images stays well under this
    max_total_bytes: int = 1 << 30  # 1 GiB uncompressed in all (declared sizes; reads stop there)


def _check_name(name: str) -> None:
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise DocumentError(f"unsafe member name {name!r} in the package ('..' or absolute path)")


class SafeZip:
    """A zip package read from bytes, checked on open; members are read one at a time."""

    def __init__(self, data: bytes, kind: str, limits: ZipLimits = ZipLimits()):
        self.kind = kind
        if data[:8] == OLE_SIGNATURE:
            raise DocumentError(
                f"this {kind} is password protected (an encrypted OLE compound file, or a legacy "
                "binary Office file): save it without a password, in the current format"
            )
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
            raise DocumentError(
                f"not a valid {kind} file: not a zip archive, or a corrupt one ({e})"
            ) from e
        if len(infos) > limits.max_members:
            raise DocumentError(
                f"{kind} has {len(infos)} zip members, over the limit of {limits.max_members} "
                "(a zip bomb?)"
            )
        total = sum(info.file_size for info in infos)
        if total > limits.max_total_bytes:
            raise DocumentError(
                f"{kind} would unpack to {total:,} bytes, over the limit of "
                f"{limits.max_total_bytes:,} (a zip bomb?)"
            )
        seen = set()
        for info in infos:
            _check_name(info.filename)
            if info.flag_bits & 0x1:
                raise DocumentError(
                    f"this {kind} is password protected (member {info.filename!r} is encrypted)"
                )
            if info.filename in seen:
                raise DocumentError(f"{kind} has two zip members named {info.filename!r}")
            seen.add(info.filename)
        self.infos = infos
        self.names = [info.filename for info in infos]

    def __contains__(self, name: str) -> bool:
        return name in self.zip.NameToInfo

    def read(self, name: str) -> bytes:
        """A member's bytes; a missing or corrupt member raises DocumentError."""
        if name not in self:
            raise DocumentError(f"not a valid {self.kind} file: {name!r} is missing")
        try:
            return self.zip.read(name)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, ValueError) as e:
            raise DocumentError(f"{self.kind}: cannot read member {name!r} ({e})") from e

    def write(self, replaced: dict[str, bytes], mimetype_first: bool = False) -> bytes:
        """The package with the members in `replaced` changed: same member order, each member's
        compression kept, untouched members' contents as they were. mimetype_first puts a
        'mimetype' member first and stored, as ODF and EPUB require."""
        infos = list(self.infos)
        if mimetype_first and "mimetype" in self:
            infos.sort(key=lambda info: info.filename != "mimetype")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", allowZip64=True) as zout:
            zout.comment = self.zip.comment
            for info in infos:
                data = replaced.get(info.filename)
                if data is None:
                    data = self.read(info.filename)
                new = zipfile.ZipInfo(info.filename, info.date_time)
                new.compress_type = info.compress_type
                if mimetype_first and info.filename == "mimetype":
                    new.compress_type = zipfile.ZIP_STORED
                new.external_attr = info.external_attr
                new.create_system = info.create_system
                new.comment = info.comment
                zout.writestr(new, data)
        return out.getvalue()


def parse_xml(data: bytes, where: str):
    """An lxml tree from untrusted bytes: no entities, no DTD, no network; `where` names the part
    in errors."""
    et = etree()
    head = data[:65536]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    subset = _DOCTYPE_SUBSET.search(head)
    if subset and b"<!ENTITY" in subset.group(1):
        raise DocumentError(
            f"{where}: XML declares entities in its DOCTYPE; refused (entity "
            "expansion and external entities are not allowed)"
        )
    parser = et.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        strip_cdata=False,
    )
    parser.resolvers.add(_refusing_resolver(where))
    try:
        root = et.fromstring(data, parser)
    except et.XMLSyntaxError as e:
        raise DocumentError(f"{where}: malformed XML ({e})") from e
    tree = root.getroottree()
    dtd = tree.docinfo.internalDTD
    if dtd is not None and list(dtd.entities()):
        raise DocumentError(f"{where}: XML declares entities in its DOCTYPE; refused")
    return tree


def _refusing_resolver(where: str):
    """An lxml resolver that refuses every external resource (DTDs, entities, XIncludes)."""

    class Refuse(etree().Resolver):
        def resolve(self, url, pubid, context):
            raise DocumentError(f"{where}: refers to an external resource {url!r}; refused")

    return Refuse()


def serialize_xml(tree, original: bytes) -> bytes:
    """A tree back to bytes, with the original's XML declaration as it was written (or none)."""
    et = etree()
    declaration = _DECLARATION.match(original)
    encoding = (tree.docinfo.encoding or "UTF-8").upper().replace("_", "-")
    if declaration is None or encoding in ("UTF-8", "UTF8"):
        body = et.tostring(tree, encoding="UTF-8", xml_declaration=False)
        return (declaration.group(0) if declaration else b"") + body
    return et.tostring(
        tree, encoding=encoding, xml_declaration=True, standalone=tree.docinfo.standalone
    )
