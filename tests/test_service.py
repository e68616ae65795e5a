"""EngineService: reloads without a failed request, failed reloads that change nothing,
audit events with a diff summary, sockets that follow the config."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from flownb.errors import BuildError, ConfigError, FlownbError
from flownb.history import MemoryHistory
from flownb.loader import parse_config
from flownb.service import EngineService, config_diff, diff_summary

CONFIG = """
modules:
  - {{name: server, type: http.server, config: {{address: "{address}"}}}}
  - {{name: router, type: http.router}}
workflows:
  http:
    routes: [{{method: GET, path: /hello, handler: hello}}]
pipelines:
  hello:
    - {{type: respond, body: {{version: "{version}", q: "{{{{ request.query.n }}}}"}}}}
"""


def config(version: str, address: str = "127.0.0.1:0") -> str:
    return CONFIG.format(version=version, address=address)


def server_url(service: EngineService) -> str:
    assert service.engine is not None
    return service.engine.modules["server"].url  # type: ignore[attr-defined]


async def test_ten_reloads_under_load_fail_no_request() -> None:
    history = MemoryHistory()
    service = EngineService(parse_config(config("v0")), history=history, drain_timeout=5)
    await service.start()
    url = server_url(service)
    done = asyncio.Event()
    seen: set[str] = set()
    failures: list[str] = []
    count = 0
    enough = asyncio.Event()  # set once requests flowed after the last reload
    wanted = 0

    async def hammer(client: httpx.AsyncClient) -> None:
        nonlocal count
        n = 0
        while not done.is_set():
            n += 1
            try:
                reply = await client.get("/hello", params={"n": n})
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            count += 1
            if wanted and count >= wanted:
                enough.set()
            if reply.status_code != 200:
                failures.append(f"{reply.status_code}: {reply.text}")
            else:
                body = reply.json()
                seen.add(body["version"])
                if body["q"] != str(n):
                    failures.append(f"wrong reply {body}")

    kept = [httpx.AsyncClient(base_url=url, timeout=10) for _ in range(3)]  # keep-alive
    fresh = httpx.AsyncClient(  # a new connection for every request
        base_url=url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    )
    clients = [*kept, fresh]
    workers = [asyncio.create_task(hammer(c)) for c in clients]
    try:
        for i in range(1, 11):
            await asyncio.sleep(0.05)  # let requests flow between reloads
            result = await service.reload(parse_config(config(f"v{i}")), actor="test")
            assert result.revision == i + 1 and result.drained
        wanted = count + 20  # requests after the last reload, on the new config
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        done.set()
        await asyncio.gather(*workers)
        for client in clients:
            await client.aclose()
        await service.stop()
    assert failures == []
    assert count > 100
    assert "v10" in seen and len(seen) >= 3, seen
    assert server_url(service) if service.engine else True
    events = await history.audit_events(limit=20)
    assert [e.action for e in events] == ["config.reload"] * 10
    assert events[0].summary == "pipelines ~hello" and events[0].actor == "test"


async def test_the_socket_survives_a_reload_and_closes_on_stop() -> None:
    service = EngineService(parse_config(config("a")))
    await service.start()
    url = server_url(service)
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/hello")).json()["version"] == "a"
        await service.reload(parse_config(config("b")))
        assert server_url(service) == url
        assert (await client.get("/hello")).json()["version"] == "b"
    await service.stop()
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_a_config_that_cannot_start_leaves_the_old_one_serving() -> None:
    history = MemoryHistory()
    service = EngineService(parse_config(config("old")), history=history)
    await service.start()
    url = server_url(service)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = f"127.0.0.1:{blocker.getsockname()[1]}"
    broken = (
        config("new")
        .replace(
            "  - {name: router, type: http.router}",
            "  - {name: router, type: http.router}\n"
            f'  - {{name: other, type: http.server, config: {{address: "{taken}"}}}}',
        )
        .replace("  http:\n", "  http:\n    server: server\n")
    )
    try:
        with pytest.raises(BuildError, match="address already in use"):
            await service.reload(parse_config(broken), actor="tester")
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/hello")).json()["version"] == "old"
        assert service.revision == 1 and service.state == "running"
        [event] = await history.audit_events()
        assert event.action == "config.reload.failed" and "address already in use" in event.summary
    finally:
        blocker.close()
        await service.stop()


async def test_a_new_address_opens_a_new_socket_and_closes_the_old() -> None:
    service = EngineService(parse_config(config("a")))
    await service.start()
    old_url = server_url(service)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free = probe.getsockname()[1]
    probe.close()
    try:
        await service.reload(parse_config(config("b", f"127.0.0.1:{free}")))
        new_url = server_url(service)
        assert new_url.endswith(f":{free}")
        async with httpx.AsyncClient() as client:
            assert (await client.get(new_url + "/hello")).json()["version"] == "b"
            with pytest.raises(httpx.ConnectError):
                await client.get(old_url + "/hello")
    finally:
        await service.stop()


async def test_reload_reads_the_file_again(tmp_path: object) -> None:
    from pathlib import Path

    file = Path(str(tmp_path)) / "wf.yaml"
    file.write_text(config("one"))
    from flownb.loader import load_config

    service = EngineService(load_config(file))
    await service.start()
    try:
        file.write_text(config("two"))
        result = await service.reload()
        assert result.summary == "pipelines ~hello"
        file.write_text("modules: [{name: x, type: no.such.type}]")
        with pytest.raises(ConfigError):
            await service.reload()
        assert service.revision == 2
    finally:
        await service.stop()
    with pytest.raises(FlownbError, match="cannot reload"):
        await service.reload()


def test_config_diff_names_what_changed() -> None:
    old = parse_config(config("a"))
    new = parse_config(
        config("b").replace(
            "  - {name: router, type: http.router}",
            "  - {name: router, type: http.router, config: {prefix: /api}}\n"
            "  - {name: cache, type: cache}",
        )
    )
    changes = config_diff(old, new)
    assert changes["modules"] == {"added": ["cache"], "removed": [], "changed": ["router"]}
    assert diff_summary(changes) == "modules +cache ~router; pipelines ~hello"
    assert diff_summary(config_diff(old, old)) == "no changes"
