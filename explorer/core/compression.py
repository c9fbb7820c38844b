"""Gzip for pages and JSON: Django's GZipMiddleware, with what this app's streams need.

Buffered responses (pages, JSON answers) go through GZipMiddleware unchanged: a client that
sends `Accept-Encoding: gzip` gets them compressed when they are 200 bytes or more and come out
shorter, with `Vary: Accept-Encoding` on every response it could have compressed, and a strong
ETag made weak. Its BREACH mitigation is kept: since Django 4.2 each gzip header carries a
file name of random length (0-99 bytes, `max_random_bytes`), so a response's length no longer
tells an attacker whether a guessed secret compressed well ("Heal The BREACH"); Django's CSRF
tokens are masked per response besides. The same random name goes into streamed bodies here.

What differs from Django 5.2's middleware:

- Only text formats are compressed (`COMPRESSED_TYPES`): HTML, JSON, CSV, JavaScript, SVG.
- `text/event-stream` (steering's Server-Sent Events) is left alone, uncompressed and
  unbuffered: each event must reach the client when it is sent, and an encoded event stream
  gives every decoder and proxy on the way a reason to hold bytes back.
- A streamed body (the exports) is one gzip stream flushed after every chunk (Z_SYNC_FLUSH), so
  the client can decode each chunk as soon as it arrives, in constant memory, at a cheaper
  level than pages (`STREAM_LEVEL`). Django 5.2 keeps a synchronous stream in zlib until
  about 32 KiB of output is ready (Django ticket #36293), and compresses each chunk of an
  asynchronous one as a gzip member of its own (a header, a random name and a trailer per
  chunk, no shared dictionary: a one-row chunk comes out longer than it went in, and a client
  that reads one member only sees the first chunk). Chunk boundaries stay the view's: a view
  that wants a better ratio yields bigger chunks.

Websockets never pass through HTTP middleware (explorer/asgi.py routes them to Channels).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from gzip import GzipFile

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware, re_accepts_gzip
from django.utils.cache import patch_vary_headers
from django.utils.text import StreamingBuffer

EVENT_STREAM = "text/event-stream"
# Media types worth compressing (the part before any `;`); `+json` and `+xml` suffixes too.
COMPRESSED_TYPES = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/xml",
        "image/svg+xml",
        "text/css",
        "text/csv",
        "text/html",
        "text/javascript",
        "text/plain",
        "text/xml",
    }
)
# zlib level of streamed bodies. Buffered ones keep Django's 6 (a 256 KB feature page: 11 ms,
# 27 KB). Exports run to hundreds of MB, compressed in the event loop as they go: level 1 is
# about 4x faster than 6 on them, for about a fifth more bytes (0.29 of the JSON vs 0.24).
STREAM_LEVEL = 1


def media_type(response: HttpResponseBase) -> str:
    return response.get("Content-Type", "").split(";")[0].strip().lower()


def compressible(response: HttpResponseBase) -> bool:
    """Whether `response`'s body is a text format worth compressing (never an event stream)."""
    kind = media_type(response)
    if kind == EVENT_STREAM:
        return False
    return kind in COMPRESSED_TYPES or kind.endswith(("+json", "+xml"))


class GzipStream:
    """One gzip member written chunk by chunk: `chunk(data)` returns every byte needed to
    decode `data` (the header first), `end()` the trailer. Holds zlib's window only."""

    def __init__(self, *, max_random_bytes: int, level: int = STREAM_LEVEL) -> None:
        self._buffer = StreamingBuffer()
        # Django's random-length name (BREACH), as its compress_string writes it.
        name = b"a" * secrets.randbelow(max_random_bytes) if max_random_bytes else None
        self._file = GzipFile(
            filename=name, mode="wb", compresslevel=level, fileobj=self._buffer, mtime=0
        )

    def chunk(self, data: bytes) -> bytes:
        self._file.write(data)
        self._file.flush()  # Z_SYNC_FLUSH: all of `data` is decodable from what is returned
        return self._buffer.read()

    def end(self) -> bytes:
        self._file.close()
        return self._buffer.read()


def gzip_chunks(chunks: Iterable[bytes], *, max_random_bytes: int) -> Iterator[bytes]:
    """`chunks` as one gzip stream, one compressed chunk per non-empty chunk. A stream that
    fails stops without the trailer, so the client sees a truncated body, not a short one."""
    stream = GzipStream(max_random_bytes=max_random_bytes)
    for data in chunks:
        if data:
            yield stream.chunk(data)
    yield stream.end()


async def agzip_chunks(
    chunks: AsyncIterable[bytes], *, max_random_bytes: int
) -> AsyncIterator[bytes]:
    """`gzip_chunks` of an asynchronous stream."""
    stream = GzipStream(max_random_bytes=max_random_bytes)
    async for data in chunks:
        if data:
            yield stream.chunk(data)
    yield stream.end()


class CompressionMiddleware(GZipMiddleware):
    """GZipMiddleware for text formats, streamed bodies flushed chunk by chunk, and no SSE.

    Sits right after WhiteNoiseMiddleware (static files are served, precompressed, before it)
    and before every middleware that makes or changes a body, so their output is compressed.
    """

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not compressible(response):
            return response
        if not response.streaming:
            return super().process_response(request, response)
        if response.has_header("Content-Encoding"):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if not re_accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            return response
        source = response.streaming_content
        if response.is_async:
            response.streaming_content = agzip_chunks(
                source, max_random_bytes=self.max_random_bytes
            )
        else:
            response.streaming_content = gzip_chunks(source, max_random_bytes=self.max_random_bytes)
        del response.headers["Content-Length"]  # unknown until the stream ends
        etag = response.get("ETag")
        if etag and etag.startswith('"'):
            response.headers["ETag"] = "W/" + etag
        response.headers["Content-Encoding"] = "gzip"
        return response
