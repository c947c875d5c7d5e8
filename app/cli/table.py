"""Rows on the terminal as a table with a header: columns padded to their widest
cell (East Asian wide characters counted twice), so that they line up."""

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import typer


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def print_table(header: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    cells = [list(header), *([cell(row.get(name)) for name in header] for row in rows)]
    widths = [max(width(line[i]) for line in cells) for i in range(len(header))]
    for line in cells:
        padded = [text + " " * (w - width(text)) for text, w in zip(line, widths, strict=True)]
        typer.echo("  ".join(padded).rstrip())
