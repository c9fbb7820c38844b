"""Model instances from hand-written SQL, for the few hot reads where compiling an ORM query
costs more than PostgreSQL takes to answer it (a join of four tables with a subquery: ~4 ms of
Python per page view against well under 1 ms in the database).

`Columns` lists the concrete columns of some models under table aliases, for the SELECT list
of the hand-written query, and turns a fetched row back into instances, through the same
per-field converters the ORM applies (JSON, dates, arrays read exactly as the ORM reads them).
A field left out is deferred: reading it loads it, as with `.defer()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Model
from django.db.models.sql import Query


@dataclass(frozen=True)
class Part:
    """One model's columns in a query: its table under `alias`, without `leave_out`."""

    model: type[Model]
    alias: str
    leave_out: tuple[str, ...] = ()

    @property
    def fields(self) -> list:
        return [f for f in self.model._meta.concrete_fields if f.name not in self.leave_out]


class Columns:
    """The SELECT list of several models' columns and the way back from a row to instances."""

    def __init__(self, *parts: Part):
        self.parts = parts
        self._fields = [(part, part.fields) for part in parts]
        self.width = sum(len(fields) for _, fields in self._fields)
        self._readers: list | None = None  # per part: (compiler, converters, pk position)

    @property
    def sql(self) -> str:
        """`alias."column", ...` for every part, in order."""
        return ", ".join(
            f'{part.alias}."{f.column}"' for part, fields in self._fields for f in fields
        )

    def instances(self, row: Sequence) -> list[Model | None]:
        """The instances in `row[:width]`, one per part; None for a part whose primary key is
        NULL (the missing side of a LEFT JOIN)."""
        if self._readers is None:
            self._readers = [self._reader(part, fields) for part, fields in self._fields]
        out: list[Model | None] = []
        at = 0
        for (part, fields), (compiler, converters, pk_at) in zip(
            self._fields, self._readers, strict=True
        ):
            values = list(row[at : at + len(fields)])
            at += len(fields)
            if converters:
                values = next(iter(compiler.apply_converters([values], converters)))
            if values[pk_at] is None:
                out.append(None)
                continue
            out.append(part.model.from_db(connection.alias, [f.attname for f in fields], values))
        return out

    @staticmethod
    def _reader(part: Part, fields: list) -> tuple:
        compiler = Query(part.model).get_compiler(connection=connection)
        converters = compiler.get_converters([f.get_col(part.alias) for f in fields])
        return compiler, converters, next(i for i, f in enumerate(fields) if f.primary_key)
