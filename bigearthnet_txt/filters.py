"""Row filters of the official loader: countries, seasons, climate zones, categories and types.

``row_filter(countries=["Austria"], categories=["presence"])`` returns a :class:`RowFilter`, a plain
``{column: values}`` mapping (picklable, hashable into ``datasets`` fingerprints) with:

* ``.expression()`` — the ``pyarrow.dataset`` expression (``None`` when nothing is filtered), usable
  as ``filters=`` of ``datasets``' Parquet builder and with ``pyarrow.Table.filter``;
* ``.mask(table)`` — a boolean ``np.ndarray[len(table)]``.

Values are checked against ``schema`` (a typo raises ``ValueError`` instead of silently matching
nothing); climate zones are free text in the release and are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bigearthnet_txt.schema import CATEGORIES, COUNTRIES, SEASONS, TYPES

FILTER_COLUMNS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "countries": ("country", COUNTRIES),
    "seasons": ("season", SEASONS),
    "climate_zones": ("climate_zone", None),
    "categories": ("category", CATEGORIES),
    "types": ("type", TYPES),
}


class RowFilter(dict):
    """``{column: (value, ...)}``: keep rows whose every listed column holds one of its values."""

    def expression(self):
        """The ``pyarrow.dataset.Expression`` of the filter, or ``None`` for no filter."""
        import pyarrow.dataset as ds

        expr = None
        for column, values in self.items():
            term = ds.field(column).isin(list(values))
            expr = term if expr is None else expr & term
        return expr

    def mask(self, table: pa.Table) -> np.ndarray:
        """Boolean mask ``[table.num_rows]`` of the rows kept."""
        keep = np.ones(table.num_rows, dtype=bool)
        for column, values in self.items():
            hit = pc.is_in(table[column], value_set=pa.array(list(values), pa.string()))
            keep &= hit.to_numpy(zero_copy_only=False)
        return keep


def row_filter(
    countries: Iterable[str] | None = None,
    seasons: Iterable[str] | None = None,
    climate_zones: Iterable[str] | None = None,
    categories: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
) -> RowFilter:
    """Build a :class:`RowFilter`; ``None`` leaves a column unfiltered,
    a string counts as one value."""
    given = {
        "countries": countries,
        "seasons": seasons,
        "climate_zones": climate_zones,
        "categories": categories,
        "types": types,
    }
    result = RowFilter()
    for argument, values in given.items():
        if values is None:
            continue
        values = (values,) if isinstance(values, str) else tuple(values)
        column, allowed = FILTER_COLUMNS[argument]
        unknown = [v for v in values if allowed is not None and v not in allowed]
        if unknown:
            raise ValueError(f"{argument}: unknown value(s) {unknown}; expected some of {allowed}")
        result[column] = tuple(sorted(set(values)))
    return result
