"""The `field_map` transform: rename, select and add fields."""

from __future__ import annotations

from attrs import field, frozen

from elspeth.api import Context, Error, Row, Success, Transform, TransformResult
from elspeth.errors import ConfigError
from elspeth.options import no_duplicates


@frozen
class FieldMapConfig:
    rename: dict[str, str] = field(factory=dict)
    """Old name -> new name; the field keeps its place."""
    select: list[str] | None = field(default=None, validator=no_duplicates)
    """Keep only these fields (named after renaming), in this order."""
    constants: dict[str, str] = field(factory=dict)
    """Fields set to a fixed value, after renaming; they replace a field of the same name."""

    def __attrs_post_init__(self) -> None:
        targets: dict[str, str] = {}
        for old, new in self.rename.items():
            if new in targets:
                raise ConfigError(
                    f"option `rename` renames both {targets[new]!r} and {old!r} to {new!r}; give them different names"
                )
            targets[new] = old
        if self.select is not None:
            for name in self.constants:
                if name not in self.select:
                    raise ConfigError(
                        f"option `constants` sets {name!r}, which `select` would drop; add it to `select`"
                    )


class FieldMap(Transform):
    """Renames fields, adds constants, then keeps the selected ones. A missing field is the row's Error."""

    name = "field_map"
    config_class = FieldMapConfig
    config: FieldMapConfig

    def process(self, row: Row, ctx: Context) -> TransformResult:
        rename = self.config.rename
        for old in rename:
            if old not in row:
                return Error(reason=f"field {old!r} (option `rename`) is not in the row; it has {_names(row)}")
        out = {rename.get(key, key): value for key, value in row.items()}
        if len(out) < len(row):
            clash = next(new for old, new in rename.items() if new in row and new not in rename)
            return Error(reason=f"renaming to {clash!r} (option `rename`) would overwrite the row's own {clash!r}")
        out.update(self.config.constants)
        select = self.config.select
        if select is not None:
            for name in select:
                if name not in out:
                    return Error(
                        reason=f"field {name!r} (option `select`) is not in the row after renaming; "
                        f"it has {_names(out)}"
                    )
            out = {name: out[name] for name in select}
        return Success(out)


def _names(row: Row) -> str:
    return ", ".join(repr(key) for key in row) or "no fields"
