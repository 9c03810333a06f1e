"""Reading simple-API listings: PEP 503 HTML and PEP 691 JSON pages into `IndexFile`s (with
PEP 658 metadata flags and PEP 700 upload times), and telling a listing or a metadata file from
whatever else an index may send (resolver/index/client.py retries what does not parse)."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None
    requires_python: str | None = None
    yanked: bool = False
    has_metadata: bool = False
    # PEP 700 `upload-time` (JSON listings only), e.g. "2025-06-04T17:21:07.123456Z"
    upload_time: str | None = None

    @property
    def metadata_url(self) -> str:
        """Where PEP 658 puts the file's core metadata: its URL, without the hash, + ".metadata"."""
        return self.url.split("#", 1)[0] + ".metadata"


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, dict[str, str | None], str]] = []
        self._current: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            attributes = dict(attrs)
            self._current = (attributes.get("href") or "", attributes)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            href, attributes = self._current
            self.anchors.append((href, attributes, "".join(self._text).strip()))
            self._current = None


class IndexParseError(ValueError):
    """A listing that is not valid PEP 503 HTML or PEP 691 JSON."""


def parse_json_listing(text: str, base_url: str) -> tuple[IndexFile, ...]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IndexParseError(f"malformed JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise IndexParseError("JSON listing has no 'files' list")
    files = []
    for item in data["files"]:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
            raise IndexParseError("JSON listing has a file entry without 'filename'")
        url = urllib.parse.urljoin(base_url, str(item.get("url", "")))
        hashes = item.get("hashes") or {}
        metadata = item.get("core-metadata", item.get("dist-info-metadata", False))
        uploaded = item.get("upload-time")
        files.append(
            IndexFile(
                filename=item["filename"],
                url=url,
                sha256=hashes.get("sha256") if isinstance(hashes, dict) else None,
                requires_python=item.get("requires-python"),
                yanked=bool(item.get("yanked", False)),
                has_metadata=bool(metadata),
                upload_time=uploaded if isinstance(uploaded, str) else None,
            )
        )
    return tuple(files)


def parse_html_listing(text: str, base_url: str) -> tuple[IndexFile, ...]:
    if "<" not in text:
        raise IndexParseError("HTML listing has no markup")
    parser = _AnchorParser()
    try:
        parser.feed(text)
        # html.parser keeps an unterminated tag as unparsed input and drops it at close(): a page
        # cut off inside a link would otherwise read as a shorter (or empty) listing.
        unterminated = parser.rawdata.lstrip().startswith("<")
        parser.close()
    except Exception as exc:  # html.parser raises assorted errors on garbage
        raise IndexParseError(f"malformed HTML: {exc}") from None
    if unterminated or parser._current is not None:
        raise IndexParseError("malformed HTML: the page ends inside a tag or a link")
    files = []
    for href, attributes, label in parser.anchors:
        url, _, fragment = href.partition("#")
        sha256 = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
        filename = urllib.parse.unquote(url.rsplit("/", 1)[-1]) or label
        metadata = attributes.get("data-core-metadata") or attributes.get("data-dist-info-metadata")
        files.append(
            IndexFile(
                filename=filename,
                url=urllib.parse.urljoin(base_url, url),
                sha256=sha256,
                requires_python=attributes.get("data-requires-python"),
                yanked="data-yanked" in attributes,
                has_metadata=metadata is not None and metadata != "false",
            )
        )
    return tuple(files)


def parse_listing(text: str, content_type: str, base_url: str) -> tuple[IndexFile, ...]:
    """A page as its content type says: PEP 691 JSON, else PEP 503 HTML."""
    if JSON_TYPE in content_type or content_type.endswith("json"):
        return parse_json_listing(text, base_url)
    return parse_html_listing(text, base_url)


def is_listing(text: str, content_type: str, url: str) -> bool:
    try:
        parse_listing(text, content_type, url)
    except IndexParseError:
        return False
    return True


def is_metadata(text: str, content_type: str, url: str) -> bool:
    return text.startswith("Metadata-Version")
