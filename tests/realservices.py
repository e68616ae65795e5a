"""The machine's real services for tests: check one is reachable, start, stop or restart it.

A test that needs an absent service fails loudly (never skips): `require("postgres")` fails
the test with what was tried. The start and stop commands are those the machine's services
were started with; tests that stop a server always leave it running again.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Service:
    port: int
    start: str
    stop: str | None = None
    start_wait: float = 30.0


def _postgres_version() -> str:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        raise RuntimeError("no PostgreSQL cluster under /etc/postgresql")
    return versions[-1]


SERVICES: dict[str, Service] = {
    "postgres": Service(
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | tail -1) main start",
    ),
    "mariadb": Service(
        3306, "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
    ),
    "redis": Service(
        6379,
        "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
        start_wait=15.0,
    ),
    "rabbitmq": Service(5672, "rabbitmq-server -detached", "rabbitmqctl stop", 60.0),
    "mqtt": Service(
        1883,
        "mosquitto -d -c /etc/mosquitto/mosquitto.conf",
        "start-stop-daemon --stop --oknodo --retry TERM/10/KILL/5 --exec /usr/sbin/mosquitto",
        15.0,
    ),
    "nats": Service(
        4222,
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- "
        "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log",
        "start-stop-daemon --stop --oknodo --retry TERM/10/KILL/5 --exec /usr/sbin/nats-server",
        15.0,
    ),
}

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql://root@127.0.0.1:3306/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def reachable(name: str, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", SERVICES[name].port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(name: str, up: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reachable(name, timeout=0.5) == up:
            return True
        time.sleep(0.05)  # polling a port another process opens; there is no event to wait on
    return False


def require(name: str) -> None:
    """Service `name` accepts connections, started here if it was down; else the test fails."""
    if reachable(name):
        return
    service = SERVICES[name]
    result = subprocess.run(service.start, shell=True, capture_output=True, text=True, check=False)
    if not _wait(name, True, service.start_wait):
        pytest.fail(
            f"{name} is not reachable on 127.0.0.1:{service.port} and did not start with "
            f"`{service.start}` (exit {result.returncode}: {result.stderr.strip()[-500:]})",
            pytrace=False,
        )


def stop(name: str) -> None:
    """Stop service `name` (only those with a stop command); callers start it again."""
    command = SERVICES[name].stop
    assert command is not None, f"no stop command for {name}"
    subprocess.run(command, shell=True, capture_output=True, check=False)
    if not _wait(name, False, 30.0):
        pytest.fail(f"the {name} server did not stop with `{command}`", pytrace=False)


def postgres_ctl(action: str) -> None:
    """Stop or start the machine's PostgreSQL (fast shutdown: open sessions are ended)."""
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", _postgres_version(), "main", action]
    if action == "stop":
        command += ["--", "-m", "fast"]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)
