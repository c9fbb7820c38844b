"""Gzip (core/compression.py): pages and JSON compressed for a client that accepts it, streamed
exports compressed chunk by chunk, Server-Sent Events never, and nothing changed for a client
that does not ask."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory
from django.urls import include, path

from explorer.core.compression import CompressionMiddleware
from tests.builders import build_indexed_sae

GZIP = {"accept-encoding": "gzip, deflate, br"}
FEATURE_PAGE = "/tiny/res-1/3/"
EVENTS = [b'event: delta\ndata: {"text":"A"}\n\n', b'event: done\ndata: {"row":"steered"}\n\n']
CHUNKS = [b"index,text\n", b"".join(b"%d,row %d of the export\n" % (i, i) for i in range(200))]


async def events_view(request):
    async def events():
        for event in EVENTS:
            yield event
            await asyncio.sleep(0)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


async def csv_view(request):
    async def rows():
        for chunk in CHUNKS:
            yield chunk
            await asyncio.sleep(0)

    return StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")


# The site's routes, and two streams to look at through the whole middleware stack.
urlpatterns = [
    path("test/events/", events_view),
    path("test/rows.csv", csv_view),
    path("", include("explorer.urls")),
]


def gunzip_chunks(chunks: list[bytes]) -> tuple[list[bytes], bool]:
    """What a client decodes of each chunk as it arrives, and whether the gzip stream ended."""
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
    decoded = [decoder.decompress(chunk) for chunk in chunks]
    return decoded, decoder.eof and not decoder.unused_data


@pytest.fixture
def indexed(db):
    return build_indexed_sae(d_sae=24)


def test_a_feature_page_comes_back_gzipped_and_decodes_to_the_same_page(client, indexed):
    plain = client.get(FEATURE_PAGE)
    compressed = client.get(FEATURE_PAGE, headers=GZIP)

    assert compressed.status_code == plain.status_code == 200
    assert compressed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in compressed["Vary"]
    assert int(compressed["Content-Length"]) == len(compressed.content)
    assert gzip.decompress(compressed.content) == plain.content
    assert len(compressed.content) < len(plain.content) / 3


def test_a_json_answer_comes_back_gzipped_and_decodes_to_the_same_json(client, indexed):
    url = "/api/v1/models/tiny/saes/res-1/features/3/examples"
    plain = client.get(url)
    compressed = client.get(url, headers=GZIP)

    assert compressed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in compressed["Vary"]
    assert compressed["Content-Type"] == plain["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(gzip.decompress(compressed.content)) == plain.json()


def test_without_accept_encoding_nothing_is_compressed(client, indexed):
    response = client.get(FEATURE_PAGE)

    assert "Content-Encoding" not in response
    assert response.content.lstrip().lower().startswith(b"<!doctype html")
    assert int(response["Content-Length"]) == len(response.content)
    # A cache must still keep the two forms apart.
    assert "Accept-Encoding" in response["Vary"]


def test_each_compressed_page_carries_a_random_length_name_against_breach(client, indexed):
    sizes = {len(client.get(FEATURE_PAGE, headers=GZIP).content) for _ in range(8)}

    assert len(sizes) > 1


def middleware_response(response: HttpResponse, accept_encoding: str = "gzip") -> HttpResponse:
    request = RequestFactory().get("/", headers={"accept-encoding": accept_encoding})
    return CompressionMiddleware(lambda request: response)(request)


def test_a_short_answer_is_sent_as_it_is():
    response = middleware_response(HttpResponse(b'{"ok": true}', content_type="application/json"))

    assert "Content-Encoding" not in response
    assert response.content == b'{"ok": true}'


def test_a_body_that_is_not_text_is_sent_as_it_is():
    body = bytes(range(256)) * 8
    response = middleware_response(HttpResponse(body, content_type="application/octet-stream"))

    assert "Content-Encoding" not in response
    assert response.content == body


def test_a_synchronous_stream_is_one_gzip_stream_flushed_after_every_chunk():
    response = middleware_response(StreamingHttpResponse(iter(CHUNKS), content_type="text/csv"))

    assert response["Content-Encoding"] == "gzip"
    decoded, ended = gunzip_chunks(list(response.streaming_content))
    assert decoded[: len(CHUNKS)] == CHUNKS  # each chunk whole, as soon as it is sent
    assert b"".join(decoded) == b"".join(CHUNKS) and ended


@pytest.mark.urls(__name__)
def test_an_async_stream_reaches_the_client_chunk_by_chunk(async_client):
    async def scenario():
        response = await async_client.get("/test/rows.csv", headers=GZIP)
        chunks = response.streaming_content
        first = await anext(chunks)
        return response, first, [chunk async for chunk in chunks]

    response, first, rest = async_to_sync(scenario)()

    assert response["Content-Encoding"] == "gzip"
    assert "Content-Length" not in response
    (decoded,), ended = gunzip_chunks([first])
    assert decoded == CHUNKS[0] and not ended  # decodable before the stream goes on
    decoded, ended = gunzip_chunks([first, *rest])
    assert b"".join(decoded) == b"".join(CHUNKS) and ended


@pytest.mark.urls(__name__)
def test_server_sent_events_pass_uncompressed_and_one_by_one(async_client):
    async def scenario():
        response = await async_client.get(
            "/test/events/", headers={**GZIP, "accept": "text/event-stream"}
        )
        return response, [chunk async for chunk in response.streaming_content]

    response, chunks = async_to_sync(scenario)()

    assert "Content-Encoding" not in response
    assert response["Content-Type"] == "text/event-stream"
    assert chunks == EVENTS


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_an_export_streams_gzipped_through_the_asgi_server(live_server_url, bob_key, fmt):
    build_indexed_sae(d_sae=24, examples_per_feature=2)
    url = f"{live_server_url}/api/v1/models/tiny/saes/res-1/export/features?format={fmt}"
    headers = {"Authorization": f"Bearer {bob_key}", "Accept-Encoding": "gzip"}

    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["transfer-encoding"] == "chunked"
        chunks = list(response.iter_raw())

    decoded, ended = gunzip_chunks(chunks)
    assert ended
    text = b"".join(decoded).decode()
    if fmt == "json":
        assert [item["index"] for item in json.loads(text)["items"]] == list(range(24))
    else:
        assert text.startswith("index,") and len(text.strip().splitlines()) == 25
