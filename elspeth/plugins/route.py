"""The `route` transform: send a row to a sink chosen by one field's value."""

from __future__ import annotations

from attrs import frozen

from elspeth.api import Context, Error, Routed, Row, Success, Transform, TransformResult


@frozen
class RouteConfig:
    field: str
    routes: dict[str, str]
    """Value (compared as `str(value)`, as YAML keys are) -> sink name."""
    default: str | None = None
    """Sink for values not in `routes`; None sends them on down the pipeline."""


class Route(Transform):
    """Looks `field` up in `routes`: a match goes to that sink, anything else to `default`."""

    name = "route"
    config_class = RouteConfig
    config: RouteConfig

    def process(self, row: Row, ctx: Context) -> TransformResult:
        cfg = self.config
        if cfg.field not in row:
            return Error(reason=f"field {cfg.field!r} (option `field`) is not in the row")
        sink = cfg.routes.get(str(row[cfg.field]), cfg.default)
        if sink is None:
            return Success(row)
        return Routed(sink, row)
