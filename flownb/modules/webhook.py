"""The `webhook.sender` module: deliver JSON to a URL, retrying until it lands or a dead letter.

A delivery is tried, then retried after exponentially growing waits (with jitter) while the
target fails in a way that may pass: no connection, a timeout, 5xx, 408, 429 (a longer
`Retry-After` is honoured). A 4xx that is the request's fault is not retried. After the last
try the delivery becomes a dead letter in `engine.stores.dead_letters` (kind "webhook"), with
its payload, target, idempotency key and last error; `replay(letter)` (and through it the API,
the CLI and notebooks) sends it once more. Every try of one delivery, replays included,
carries the same `Idempotency-Key`, so a target that saw it before can ignore the repeat.

By default `send` returns at once and the delivery goes on in the background (`wait: true`
waits for the outcome). Deliveries still pending when the engine stops become dead letters.
Headers from the config (credentials included) are applied at every try and replay, and are
never written into a dead letter.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import Field

from flownb.backoff import Backoff, retry_after, should_retry
from flownb.deadletters import DeadLetter
from flownb.errors import ExecutionError
from flownb.execution import ExecutionContext, new_id
from flownb.fields import Duration, Spec
from flownb.module import Module
from flownb.registry import ModuleType

if TYPE_CHECKING:
    import httpx

    from flownb.engine import Engine
    from flownb.health import Check
    from flownb.template import Compiled

log = logging.getLogger("flownb.webhook")

KIND = "webhook"
_SECRET_WORDS = ("authorization", "cookie", "key", "token", "secret", "password", "signature")


class WebhookSenderConfig(Spec):
    url: str | None = Field(
        None,
        description="target URL; may be a template over the payload, e.g. "
        "https://partner.example/hooks/{{ data.customer }}; a send may give its own",
    )
    method: Literal["POST", "PUT", "PATCH"] = Field("POST", description="HTTP method")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="sent with every try, e.g. Authorization: Bearer ${PARTNER_TOKEN}",
    )
    timeout: Duration = Field(Duration("10s"), description="per-try timeout")
    max_retries: int = Field(
        5, alias="maxRetries", ge=0, description="retries after the first try, then dead letter"
    )
    initial_backoff: Duration = Field(
        Duration("1s"), alias="initialBackoff", description="wait before the first retry"
    )
    max_backoff: Duration = Field(
        Duration("60s"), alias="maxBackoff", description="longest wait between tries"
    )
    multiplier: float = Field(2.0, ge=1.0, description="each wait is this many times the last")
    jitter: float = Field(
        0.2, ge=0.0, le=1.0, description="random part taken off each wait (0.2: up to 20%)"
    )
    idempotency_header: str = Field(
        "Idempotency-Key",
        alias="idempotencyHeader",
        description="header carrying the delivery's key (the same on every try and replay)",
    )
    signing_secret: str | None = Field(
        None,
        alias="signingSecret",
        description="HMAC-SHA256 the body with this secret, e.g. ${WEBHOOK_SECRET}",
    )
    signature_header: str = Field(
        "X-Webhook-Signature",
        alias="signatureHeader",
        description="header carrying sha256=<hex HMAC of the body>",
    )


@dataclass
class Delivery:
    """One payload on its way to one URL."""

    url: str
    payload: Any
    body: bytes
    headers: dict[str, str]  # this delivery's own headers (idempotency key, extras)
    id: str = field(default_factory=new_id)
    attempts: int = 0
    error: str = ""


@dataclass
class _Try:
    """The outcome of one try."""

    ok: bool
    error: str = ""
    status: int | None = None
    retry: bool = True
    wait: float | None = None  # what Retry-After asked for


def _storable(headers: dict[str, str], keep: str) -> dict[str, str]:
    """Headers safe to keep in a dead letter: `keep` (the idempotency key), and nothing else
    that looks like a credential."""
    return {
        k: v
        for k, v in headers.items()
        if k == keep or not any(w in k.lower() for w in _SECRET_WORDS)
    }


class WebhookSender(Module[WebhookSenderConfig]):
    """Delivers payloads with retries; a `Handler` too (the data is the payload)."""

    def __init__(self, name: str, config: WebhookSenderConfig) -> None:
        super().__init__(name, config)
        self._pending: dict[str, tuple[asyncio.Task[dict[str, Any]], Delivery]] = {}
        self.stats = {"delivered": 0, "retried": 0, "dead": 0}

    async def init(self, engine: Engine) -> None:
        config = self.config
        self.engine = engine
        self.clock = engine.clock
        self.backoff = Backoff(
            float(config.initial_backoff),
            float(config.max_backoff),
            config.multiplier,
            config.jitter,
        )
        self._url: Compiled | None = (
            None if config.url is None else engine.templates.value(config.url)
        )
        self._secret = config.signing_secret.encode() if config.signing_secret else None
        engine.replayers.register(KIND, self._replayer(engine))

    @staticmethod
    def _replayer(engine: Engine) -> Any:
        async def replay(letter: DeadLetter) -> dict[str, Any]:
            module = engine.modules.get(letter.source)
            if not isinstance(module, WebhookSender):
                raise ExecutionError(
                    f"dead letter {letter.id} came from webhook.sender {letter.source!r}, which "
                    "is not in this config; add it back to replay the letter",
                    status=409,
                )
            return await module.replay(letter)

        return replay

    # --- sending --------------------------------------------------------------------------
    async def send(
        self,
        payload: Any,
        *,
        url: str | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
    ) -> dict[str, Any]:
        """Deliver `payload` as JSON; returns {id, status: queued | delivered | dead, ...}."""
        target = url or (None if self._url is None else str(self._url({"data": payload})))
        if not target:
            raise ExecutionError(
                f"webhook.sender {self.name!r} has no url: set url in its config or in the send",
                status=400,
            )
        try:
            body = orjson.dumps(payload)
        except TypeError as exc:
            raise ExecutionError(f"the webhook payload is not JSON: {exc}", status=400) from None
        own = {str(k): str(v) for k, v in (headers or {}).items()}
        own[self.config.idempotency_header] = idempotency_key or new_id()
        delivery = Delivery(target, payload, body, own)
        if wait:
            return await self._deliver(delivery)
        task = asyncio.create_task(self._deliver(delivery), name=f"webhook {self.name}")
        self._pending[delivery.id] = (task, delivery)
        task.add_done_callback(lambda _t: self._pending.pop(delivery.id, None))
        return {
            "id": delivery.id,
            "status": "queued",
            "url": target,
            "idempotencyKey": own[self.config.idempotency_header],
        }

    async def handle(self, ctx: ExecutionContext, data: Any) -> Any:
        """As a handler (a route, a subscription, a hook): send the data, in the background."""
        return await self.send(data)

    async def _deliver(self, delivery: Delivery) -> dict[str, Any]:
        retries = self.config.max_retries
        while True:
            outcome = await self._try(delivery)
            if outcome.ok:
                self.stats["delivered"] += 1
                return {
                    "id": delivery.id,
                    "status": "delivered",
                    "attempts": delivery.attempts,
                    "statusCode": outcome.status,
                }
            retry = delivery.attempts - 1
            if not outcome.retry or retry >= retries:
                letter = await self._dead_letter(delivery)
                return {
                    "id": delivery.id,
                    "status": "dead",
                    "attempts": delivery.attempts,
                    "error": delivery.error,
                    "deadLetter": letter.id,
                }
            delay = self.backoff.delay(retry)
            if outcome.wait is not None:
                delay = min(max(delay, outcome.wait), float(self.config.max_backoff))
            self.stats["retried"] += 1
            log.info(
                "webhook %s: %s %s: %s; try %d of %d in %.2fs",
                self.name,
                self.config.method,
                delivery.url,
                delivery.error,
                delivery.attempts + 1,
                retries + 1,
                delay,
            )
            await self.clock.sleep_until(self.clock.now() + delay)

    def _headers(self, delivery_headers: dict[str, str], body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.config.headers, **delivery_headers}
        if self._secret is not None:
            digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers[self.config.signature_header] = f"sha256={digest}"
        return headers

    async def _try(self, delivery: Delivery) -> _Try:
        import httpx

        delivery.attempts += 1
        client = self.engine.http_client()
        timeout = float(self.config.timeout)
        try:
            reply = await client.request(
                self.config.method,
                delivery.url,
                content=delivery.body,
                headers=self._headers(delivery.headers, delivery.body),
                timeout=timeout,
            )
        except httpx.TimeoutException:
            delivery.error = f"no reply within {timeout:g}s"
            return _Try(False, delivery.error)
        except httpx.HTTPError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return _Try(False, delivery.error)
        return self._judge(reply, delivery)

    def _judge(self, reply: httpx.Response, delivery: Delivery) -> _Try:
        status = reply.status_code
        if 200 <= status < 300:
            return _Try(True, status=status)
        text = reply.text[:200].strip()
        delivery.error = f"replied {status}" + (f": {text}" if text else "")
        if not should_retry(status):
            return _Try(False, delivery.error, status, retry=False)
        asked = retry_after(reply.headers.get("Retry-After"), self.clock.now())
        return _Try(False, delivery.error, status, wait=asked)

    async def _dead_letter(self, delivery: Delivery) -> DeadLetter:
        letter = DeadLetter(
            kind=KIND,
            source=self.name,
            target=delivery.url,
            payload=delivery.payload,
            error=delivery.error,
            attempts=delivery.attempts,
            headers=_storable(delivery.headers, self.config.idempotency_header),
            id=delivery.id,
            created=self.clock.now(),
        )
        await self.engine.stores.dead_letters.add(letter)
        self.stats["dead"] += 1
        log.warning(
            "webhook %s: %s gave up after %d tries (%s); dead letter %s",
            self.name,
            delivery.url,
            delivery.attempts,
            delivery.error,
            letter.id,
        )
        return letter

    # --- replaying -------------------------------------------------------------------------
    async def replay(self, letter: DeadLetter) -> dict[str, Any]:
        """Send a dead letter once more (no retries); raises `ExecutionError` (502) on failure."""
        body = orjson.dumps(letter.payload)
        delivery = Delivery(letter.target, letter.payload, body, dict(letter.headers), letter.id)
        outcome = await self._try(delivery)
        if not outcome.ok:
            raise ExecutionError(
                f"webhook {self.name!r}: replay of dead letter {letter.id} to {letter.target} "
                f"failed: {outcome.error}",
                status=502,
            )
        self.stats["delivered"] += 1
        return {"id": letter.id, "status": "delivered", "statusCode": outcome.status}

    # --- lifecycle -------------------------------------------------------------------------
    async def stop(self) -> None:
        """Deliveries still pending become dead letters, to be replayed later."""
        pending = list(self._pending.values())
        self._pending.clear()
        for task, _ in pending:
            task.cancel()
        for task, delivery in pending:
            try:
                await task
            except asyncio.CancelledError:
                reason = delivery.error or "no try finished"
                delivery.error = f"not delivered before the engine stopped ({reason})"
                await self._dead_letter(delivery)
            except Exception:
                log.exception("webhook %s: delivery %s failed", self.name, delivery.id)

    @property
    def pending(self) -> int:
        """Deliveries still being tried in the background."""
        return len(self._pending)

    async def wait_idle(self) -> None:
        """Wait until every background delivery has landed or become a dead letter."""
        while self._pending:
            await asyncio.gather(*(t for t, _ in list(self._pending.values())))

    async def health(self) -> Check:
        """Healthy, with the counts: a failing target is the target's problem (its deliveries
        become dead letters), not this engine's."""
        from flownb.health import Check

        stats = self.stats
        return Check.healthy(
            f"{stats['delivered']} delivered, {stats['retried']} retries, {stats['dead']} dead "
            f"letters, {self.pending} pending"
        )


TYPES: list[ModuleType] = [
    ModuleType(
        "webhook.sender",
        "Integration",
        "delivers JSON to a URL with exponential backoff and jitter, an idempotency key and "
        "dead letters that can be replayed",
        WebhookSenderConfig,
        WebhookSender,
        provides=("webhook.sender", "handler"),
    ),
]
