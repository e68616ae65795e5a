"""Listen addresses: `host:port` text to (host, port) and back to a URL."""

from __future__ import annotations


def split_address(address: str) -> tuple[str, int]:
    """`host:port` -> (host, port); `[::1]:80` for IPv6; an empty host means 127.0.0.1."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise ValueError(f"address {address!r} must be host:port, e.g. 127.0.0.1:8080")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"address {address!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"address {address!r}: port must be 0-65535 (0 picks a free port)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", port


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
