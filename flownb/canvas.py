"""`flownb.Canvas`: the node canvas widget, bound to a `flownb.Workflow`.

The canvas itself is TypeScript (extension/), bundled into flownb/static/canvas.js and sent
to the browser once per kernel with `ipyreact.define_module`; no CDN is involved. This
widget is its Python half: synced traits and `event_*` methods exactly as docs/canvas.md
lists them. Python-side changes to the workflow are sent to the canvas; the canvas' own
edits come in as `patch` events and are not echoed back (the canvas already shows them), so
a move costs one small message each way, not the whole config.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import traitlets

from flownb.errors import FlownbError

try:
    import ipyreact
except ImportError as exc:  # pragma: no cover - exercised without the notebook extra
    raise ImportError(
        "flownb.Canvas needs the notebook extra: pip install 'flownb[notebook]'"
    ) from exc

if TYPE_CHECKING:
    from flownb.workflow import Workflow

log = logging.getLogger("flownb.canvas")

MODULE = "flownb-canvas"
EXPORT = "Canvas"
BUNDLE = Path(__file__).resolve().parent / "static" / "canvas.js"

# What was sent with define_module in this kernel: (path, mtime). ipyreact keeps modules per
# kernel, so this is kernel-scoped by nature; a rebuilt bundle is sent again.
_defined: dict[str, tuple[str, int]] = {}


class BundleMissing(FlownbError):
    """The canvas bundle was not built (a source checkout before `make setup`)."""


def define_bundle(path: Path | None = None) -> None:
    """Send the canvas' ES module to the front end, once per kernel (again if rebuilt)."""
    bundle = path or BUNDLE
    if not bundle.is_file():
        raise BundleMissing(
            f"the canvas bundle {bundle} is not built; run `make setup` "
            "(or `npm ci --prefix extension && npm run --prefix extension build`)"
        )
    stamp = (str(bundle), bundle.stat().st_mtime_ns)
    if _defined.get(MODULE) == stamp:
        return
    ipyreact.define_module(MODULE, bundle)
    _defined[MODULE] = stamp


class Canvas(ipyreact.Widget):  # type: ignore[misc]
    """The canvas of one workflow. `Canvas(wf)` or `wf.canvas()`; a workflow displays as one."""

    schema = traitlets.Dict().tag(sync=True)
    config = traitlets.Dict().tag(sync=True)
    positions = traitlets.Dict().tag(sync=True)
    revision = traitlets.Int(0).tag(sync=True)
    diagnostics: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    running = traitlets.Bool(False).tag(sync=True)
    stats = traitlets.Dict().tag(sync=True)
    inspection = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    # Bumped when a refused edit is answered by sending the state again: ipywidgets drops a
    # resent value equal to the last one, so this is how the canvas learns it must reload.
    reloads = traitlets.Int(0).tag(sync=True)
    # The AI prompt box: {"status": idle|running|done|error, "intent", "message",
    # "explanation", "errors": [...], "components": [...]} (docs/canvas.md, `generate`).
    generation: traitlets.Dict[str, Any] = traitlets.Dict({"status": "idle"}).tag(sync=True)

    def __init__(self, workflow: Workflow, **kwargs: Any) -> None:
        define_bundle(kwargs.pop("bundle", None))
        super().__init__(
            _module=MODULE,
            _type=EXPORT,
            schema=workflow.schema(),
            config=dict(workflow.raw),
            positions=dict(workflow.layout),
            revision=workflow.revision,
            diagnostics=list(workflow.diagnostics),
            running=workflow.running,
            stats=workflow.live.snapshot(),
            **kwargs,
        )
        self.workflow = workflow
        workflow.attach(self)
        workflow.live.subscribe(self._push_stats)

    def __repr__(self) -> str:
        return f"<Canvas of {getattr(self, 'workflow', None)!r}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, with the workflow's summary as the plain-text form."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, None)
        data = {**(data or {}), "text/plain": self.workflow.summary()}
        return data if metadata is None else (data, metadata)

    # --- Python -> canvas ---------------------------------------------------------------------
    def workflow_changed(self, origin: object | None) -> None:
        """Mirror the workflow; the canvas' own edit (origin is self) is not sent back."""
        wf = self.workflow
        raw, layout = dict(wf.raw), dict(wf.layout)
        with self.hold_sync():
            if origin is self:
                # The front end already shows this edit: update the trait without sending it
                # (the same lock ipywidgets uses for values that came from the front end).
                with self._lock_property(config=raw, positions=layout):
                    self.config = raw
                    self.positions = layout
            else:
                self.config = raw
                self.positions = layout
            self.diagnostics = list(wf.diagnostics)
            self.running = wf.running
            self.revision = wf.revision

    def _push_stats(self, delta: dict[str, dict[str, Any]]) -> None:
        self.stats = delta

    def resend(self) -> None:
        """Send the whole state again (after a refused edit the canvas must reload)."""
        self.send_state(["config", "positions", "revision", "diagnostics"])
        self.reloads += 1  # after the state: the canvas reloads from what it now holds

    # --- canvas -> Python (ipyreact calls event_NAME for the prop NAME) -------------------------
    def event_patch(self, data: dict[str, Any]) -> None:
        from flownb.workflow import PatchError, RevisionConflict

        payload = data if isinstance(data, dict) else {}
        try:
            self.workflow.apply_patch(
                payload.get("ops") or [],
                layout=payload.get("layout") or None,
                base=payload.get("base"),
                origin=self,
            )
        except RevisionConflict as exc:
            log.info("canvas edit refused: %s", exc)
            self.resend()
        except PatchError as exc:
            log.warning("canvas edit refused: %s", exc)
            self.resend()

    def event_validate(self, data: Any = None) -> None:
        self.workflow.validate()

    def event_inspect(self, data: dict[str, Any]) -> None:
        node = data.get("id") if isinstance(data, dict) else None
        if isinstance(node, str):
            self.inspection = self.workflow.inspect(node)

    def event_save(self, data: Any = None) -> None:
        wf = self.workflow
        if wf.path is None:
            return
        try:
            wf.save()
        except (OSError, FlownbError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            wf.report(f"cannot save {wf.path}: {reason}")

    def event_generate(self, data: dict[str, Any]) -> None:
        """The prompt box: generate from an intent (this workflow as the context) and, once
        valid, deploy it here; progress and the outcome go to `generation`."""
        intent = data.get("intent") if isinstance(data, dict) else None
        if not isinstance(intent, str) or not intent.strip():
            self.generation = {"status": "error", "message": "say what the workflow should do"}
            return
        if self.generation.get("status") == "running":
            return  # one generation at a time; the box is disabled meanwhile
        self.generation = {"status": "running", "intent": intent, "message": "generating…"}
        from flownb.ai.notebook import start_generation

        start_generation(intent, self.workflow, self._generated)

    def _generated(self, result: Any, error: BaseException | None) -> None:
        from flownb.ai.deployment import deploy

        intent = self.generation.get("intent", "")
        try:
            if error is not None:
                raise error
            deployment = deploy(result, self.workflow)
        except FlownbError as exc:
            errors: list[str] = list(getattr(exc, "errors", []))
            message = str(exc).splitlines()[0] if errors else str(exc)
            failed: dict[str, Any] = {"status": "error", "intent": intent, "message": message}
            self.generation = {**failed, "errors": errors}
            return
        except Exception as exc:  # a bug must still reach the prompt box, not the log only
            log.exception("AI generation failed")
            self.generation = {
                "status": "error",
                "intent": intent,
                "message": f"{type(exc).__name__}: {exc}",
            }
            return
        self.generation = {
            "status": "done",
            "intent": intent,
            "message": result.summary(),
            "explanation": result.explanation,
            "components": [str(p) for p in deployment.components],
        }

    def close(self) -> None:
        """Close the widget and stop following its workflow."""
        workflow = getattr(self, "workflow", None)
        if workflow is not None:
            workflow.detach(self)
            workflow.live.unsubscribe(self._push_stats)
        super().close()
