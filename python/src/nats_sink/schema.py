"""Column types in RisingWave's SQL spelling, parsed as the guest parses them (rules/src/schema.rs).

The guest is the authority on whether a schema is valid and says why not; the host parses the
same grammar only to know how to convert each Python value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .chrono_parse import _WS

_BASE = {
    "boolean": "boolean", "bool": "boolean",
    "smallint": "smallint", "int2": "smallint",
    "integer": "integer", "int": "integer", "int4": "integer",
    "bigint": "bigint", "int8": "bigint",
    "real": "real", "float4": "real",
    "double precision": "double", "double": "double", "float8": "double",
    "numeric": "numeric", "decimal": "numeric",
    "varchar": "varchar", "character varying": "varchar", "text": "varchar", "string": "varchar",
    "date": "date",
    "time": "time", "time without time zone": "time",
    "timestamp": "timestamp", "timestamp without time zone": "timestamp",
    "timestamptz": "timestamptz", "timestamp with time zone": "timestamptz",
    "interval": "interval", "bytea": "bytea", "jsonb": "jsonb", "serial": "serial", "uuid": "uuid",
}  # fmt: skip


@dataclass(frozen=True)
class ListType:
    element: "DataType"


@dataclass(frozen=True)
class StructType:
    fields: tuple[tuple[str, "DataType"], ...]


# A base type is its canonical name ("integer", "double", ...).
DataType = Union[str, ListType, StructType]


class SchemaSyntaxError(ValueError):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def rest(self) -> str:
        return self.text[self.pos :]

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def eat(self, token: str) -> bool:
        self.skip_ws()
        if self.rest().startswith(token):
            self.pos += len(token)
            return True
        return False

    def data_type(self) -> DataType:
        self.skip_ws()
        rest = self.rest()
        ty: DataType
        if rest[:6].lower() == "struct" and _lstrip(rest[6:]).startswith("<"):
            self.pos += 6
            self.eat("<")
            ty = self.struct_fields()
        else:
            ty = self.base_type()
        while self.eat("[]"):
            ty = ListType(ty)
        return ty

    def base_type(self) -> DataType:
        rest = self.rest()
        end = min([i for i in (rest.find(c) for c in "[],><") if i >= 0], default=len(rest))
        words = [w for w in "".join(" " if c in _WS else c for c in rest[:end]).split(" ") if w]
        name = " ".join(words).lower()
        if name not in _BASE:
            raise SchemaSyntaxError(f"unknown type `{name}`")
        self.pos += len(_rstrip(rest[:end]))
        return _BASE[name]

    def struct_fields(self) -> StructType:
        fields: list[tuple[str, DataType]] = []
        while True:
            name = self.field_name()
            if any(n == name for n, _ in fields):
                raise SchemaSyntaxError(f"struct field `{name}` appears more than once")
            fields.append((name, self.data_type()))
            if self.eat(">"):
                return StructType(tuple(fields))
            if not self.eat(","):
                raise SchemaSyntaxError(f"expected `,` or `>` in `{self.text}`")

    def field_name(self) -> str:
        self.skip_ws()
        rest = self.rest()
        if rest.startswith('"'):
            name, i = "", 1
            while i < len(rest):
                if rest[i] == '"':
                    if rest[i + 1 : i + 2] == '"':
                        name += '"'
                        i += 2
                        continue
                    self.pos += i + 1
                    return name
                name += rest[i]
                i += 1
            raise SchemaSyntaxError(f"unterminated quoted field name in `{self.text}`")
        end = 0
        while end < len(rest) and (rest[end].isalnum() or rest[end] == "_"):
            end += 1
        if end == 0:
            raise SchemaSyntaxError(f"expected a field name in `{self.text}`")
        self.pos += end
        return rest[:end]


def _lstrip(s: str) -> str:
    i = 0
    while i < len(s) and s[i] in _WS:
        i += 1
    return s[i:]


def _rstrip(s: str) -> str:
    end = len(s)
    while end and s[end - 1] in _WS:
        end -= 1
    return s[:end]


def parse_type(text: str) -> DataType:
    parser = _Parser(text)
    ty = parser.data_type()
    parser.skip_ws()
    if parser.pos != len(text):
        raise SchemaSyntaxError(f"unexpected `{text[parser.pos:]}` in type `{text}`")
    return ty
