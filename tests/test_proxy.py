"""`http.proxy` between a real client and a real upstream (both aiohttp/httpx on 127.0.0.1).

The streaming tests hand chunks across in lock-step: the upstream must see the first chunk of
an upload before the client sends the rest (and the client the first chunk of a download
before the upstream sends the rest). A proxy that buffered whole bodies would deadlock there,
and the test would fail on its timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from flownb.testing import Harness, run_engine

CHUNK = 256 * 1024


@dataclass
class Upstream:
    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    upload_started: asyncio.Event = field(default_factory=asyncio.Event)
    download_go: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        state.seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.raw_path.partition("?")[2],
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return web.json_response(
            {"path": request.path, "size": len(body)},
            status=int(request.query.get("status", "200")),
            headers={
                "Connection": "X-Upstream-Private",
                "X-Upstream-Private": "hop",
                "Keep-Alive": "timeout=5",
                "X-Upstream": "yes",
            },
        )

    async def upload(request: web.Request) -> web.Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(CHUNK):
            if not state.upload_started.is_set():
                state.upload_started.set()
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"size": size, "sha256": digest.hexdigest()})

    async def download(request: web.Request) -> web.StreamResponse:
        chunks = int(request.query["chunks"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        await response.write(b"a" * CHUNK)
        await state.download_go.wait()
        for _ in range(chunks - 1):
            await response.write(b"b" * CHUNK)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(10 * CHUNK)})
        await response.prepare(request)
        await response.write(b"x" * CHUNK)
        assert request.transport is not None
        request.transport.close()  # the upstream dies part way through
        return response

    app = web.Application()
    app.router.add_post("/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_get("/slow", slow)
    app.router.add_get("/broken", broken)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.download_go.set()
        await runner.cleanup()


def config(target: str, **extra: Any) -> str:
    options = ", ".join(f"{k}: {v}" for k, v in extra.items())
    return f"""
modules:
  - name: server
    type: http.server
    config: {{address: "127.0.0.1:0", maxBodyBytes: 1024}}
  - name: router
    type: http.router
  - name: ids
    type: http.middleware.requestid
  - name: upstream
    type: http.proxy
    config: {{target: "{target}", pathRewrite: {{"^/api": ""}}, timeout: 500ms,
              headers: {{X-Proxy-Secret: s1}}{", " + options if options else ""}}}
workflows:
  http:
    middlewares: [ids]
    routes:
      - method: [GET, POST, PUT, PATCH, DELETE, HEAD]
        path: "/api/{{rest:.*}}"
        handler: upstream
"""


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[Harness]:
    async with run_engine(config(upstream.url)) as harness:
        yield harness


async def test_requests_are_forwarded_with_rewritten_path_and_forwarding_headers(
    proxy: Harness, upstream: Upstream
) -> None:
    reply = await proxy.client.put(
        "/api/items/7?x=1&x=2&y=%20z",
        content=b"hello",
        headers={
            "X-Request-ID": "req-42",
            "Authorization": "Bearer end-to-end",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "private",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "TE": "trailers",
        },
    )
    assert reply.status_code == 200
    assert reply.json() == {"path": "/items/7", "size": 5}
    (seen,) = upstream.seen
    assert seen["method"] == "PUT" and seen["query"] == "x=1&x=2&y=%20z"
    assert seen["body"] == b"hello"
    headers = seen["headers"]
    assert headers["Authorization"] == "Bearer end-to-end"
    assert headers["X-Request-ID"] == "req-42" and reply.headers["X-Request-ID"] == "req-42"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == proxy.url().removeprefix("http://")
    assert headers["X-Proxy-Secret"] == "s1"
    assert headers["Host"] == upstream.url.removeprefix("http://")
    for hop in ("X-Hop", "Keep-Alive", "Proxy-Authorization", "TE"):
        assert hop not in headers, hop
    # hop-by-hop headers of the reply are dropped too; end-to-end ones pass
    assert reply.headers["X-Upstream"] == "yes"
    assert "X-Upstream-Private" not in reply.headers and "Keep-Alive" not in reply.headers


async def test_statuses_and_methods_pass_through(proxy: Harness, upstream: Upstream) -> None:
    missing = await proxy.client.delete("/api/gone?status=404")
    assert missing.status_code == 404 and missing.json()["path"] == "/gone"
    failing = await proxy.client.get("/api/x?status=500")
    assert failing.status_code == 500  # an upstream 500 is the upstream's answer, passed on
    head = await proxy.client.head("/api/h")
    assert head.status_code == 200 and head.content == b""
    assert [s["method"] for s in upstream.seen] == ["DELETE", "GET", "HEAD"]


async def test_a_large_upload_streams_through(proxy: Harness, upstream: Upstream) -> None:
    digest = hashlib.sha256()
    chunks = 40  # 10 MiB, far over the server's 1 KiB body limit for parsed bodies

    async def body() -> AsyncIterator[bytes]:
        for i in range(chunks):
            chunk = bytes([i % 256]) * CHUNK
            digest.update(chunk)
            yield chunk
            if i == 0:  # the upstream must have the start before the rest is sent
                await asyncio.wait_for(upstream.upload_started.wait(), timeout=10)

    reply = await proxy.client.post("/api/upload", content=body())
    assert reply.status_code == 200
    assert reply.json() == {"size": chunks * CHUNK, "sha256": digest.hexdigest()}


async def test_a_large_download_streams_through(proxy: Harness, upstream: Upstream) -> None:
    chunks = 40
    size = 0
    async with proxy.client.stream("GET", f"/api/download?chunks={chunks}") as reply:
        assert reply.status_code == 200
        async for chunk in reply.aiter_raw():
            if size == 0:  # the first chunk arrived before the upstream sent the rest
                upstream.download_go.set()
            size += len(chunk)
    assert size == chunks * CHUNK


async def test_unreachable_upstream_is_a_502_and_a_slow_one_a_504(upstream: Upstream) -> None:
    async with run_engine(config("http://127.0.0.1:1")) as harness:
        reply = await harness.client.get("/api/x")
        assert reply.status_code == 502
        assert "unreachable" in reply.json()["error"]["message"]
    async with run_engine(config(upstream.url)) as harness:
        reply = await harness.client.get("/api/slow")
        assert reply.status_code == 504
        assert "did not answer within 0.5s" in reply.json()["error"]["message"]


async def test_an_upstream_dying_mid_body_cuts_the_reply(proxy: Harness) -> None:
    with pytest.raises(httpx.HTTPError):
        async with proxy.client.stream("GET", "/api/broken") as reply:
            async for _ in reply.aiter_raw():
                pass
    assert (await proxy.client.get("/api/after")).status_code == 200  # the proxy still serves


async def test_body_limit(upstream: Upstream) -> None:
    async with run_engine(config(upstream.url, maxBodyBytes=10)) as harness:
        reply = await harness.client.post("/api/x", content=b"x" * 11)
        assert reply.status_code == 413
        assert upstream.seen == []

        async def chunked() -> AsyncIterator[bytes]:
            yield b"x" * 8
            yield b"x" * 8

        reply = await harness.client.post("/api/x", content=chunked())
        assert reply.status_code == 413


@pytest.mark.parametrize(
    "path", ["/api/../admin", "/api/%2e%2e/admin", "/api/a/./b", "/api/.%2E/x"]
)
async def test_dot_segments_cannot_climb_out_of_the_target(
    proxy: Harness, upstream: Upstream, path: str
) -> None:
    import socket

    host, port = proxy.url().removeprefix("http://").split(":")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, int(port), family=socket.AF_INET)
    writer.write(request.encode())  # sent raw: httpx would normalise the path first
    await writer.drain()
    reply = await reader.read()
    writer.close()
    status = reply.split(b" ", 2)[1]
    assert status in (b"400", b"404"), reply[:200]
    assert upstream.seen == []
