"""The `data.transformer` module: named pipelines of extract/map/filter/convert operations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from flownb.errors import UnknownNameError
from flownb.fields import Name, Spec
from flownb.module import Module
from flownb.registry import ModuleType
from flownb.template import Templates
from flownb.transform import Op, TransformOp, compile_ops

if TYPE_CHECKING:
    from flownb.engine import Engine


class DataTransformerConfig(Spec):
    pipelines: dict[Name, list[TransformOp]] = Field(
        default_factory=dict,
        description="name -> operations applied in order (extract, map, filter, convert)",
    )


class DataTransformer(Module[DataTransformerConfig]):
    """Holds the compiled pipelines; `pipeline(name)` is what a `transform` step uses."""

    def __init__(self, name: str, config: DataTransformerConfig) -> None:
        super().__init__(name, config)
        self._compiled: dict[str, Op] = {}
        self._templates: Templates | None = None

    async def init(self, engine: Engine) -> None:
        self._templates = engine.templates
        for name in self.config.pipelines:
            self.pipeline(name)

    @property
    def names(self) -> list[str]:
        return list(self.config.pipelines)

    def pipeline(self, name: str) -> Op:
        """The compiled pipeline `name`: a function from a value to the transformed value."""
        compiled = self._compiled.get(name)
        if compiled is None:  # not initialised yet (a dry `Engine.check()`), or unknown
            ops = self.config.pipelines.get(name)
            if ops is None:
                raise UnknownNameError("transformer pipeline", name, self.names)
            if self._templates is None:
                self._templates = Templates()
            compiled = self._compiled[name] = compile_ops(ops, self._templates)
        return compiled

    def transform(self, name: str, value: Any) -> Any:
        """Apply pipeline `name` to `value` (for Python code; steps use `pipeline`)."""
        return self.pipeline(name)(value)


TYPES: list[ModuleType] = [
    ModuleType(
        "data.transformer",
        "Integration",
        "Named pipelines of data operations (extract, map, filter, convert).",
        DataTransformerConfig,
        DataTransformer,
        provides=("transformer",),
    ),
]
