"""Small text tables for ``cnnx.summary`` and ``cnnx.analysis``: aligned plain text or Markdown."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


def count(n: int) -> str:
    """An exact count with thousands separators: 15,470,264,320."""
    return f"{n:,}"


def human(n: float) -> str:
    """A count in K/M/G (powers of 1000): 15.47 G."""
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:g}"


def nbytes(n: float) -> str:
    """A size in both decimal and binary units, each labelled: 553.4 MB (527.8 MiB)."""
    for dec, bin_, unit, digits in ((1e9, 2**30, "G", 2), (1e6, 2**20, "M", 1), (1e3, 2**10, "K", 1)):
        if n >= dec:
            return f"{n / dec:,.{digits}f} {unit}B ({n / bin_:,.{digits}f} {unit}iB)"
    return f"{int(n)} B"


def render(head: Sequence[str], rows: Sequence[Sequence[str]], align: str, markdown: bool = False) -> str:
    """``align``: one letter per column, "l" or "r". Markdown puts the alignment in the rule line."""
    if markdown:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")
        rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
        lines = ["| " + " | ".join(head) + " |", rule]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(c) for c in col) for col in zip(head, *rows)]

    def line(cells):
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align)).rstrip()
    out = [line(head), "-" * len(line(["x" * w for w in widths]))]
    out += [line(r) for r in rows]
    return "\n".join(out)


@dataclass
class Table:
    """A titled table with notes under it; ``str()`` for the terminal, ``to_markdown()`` for docs."""

    title: str
    head: list
    rows: list
    align: str
    notes: list = field(default_factory=list)
    data: dict = field(default_factory=dict)  # the numbers behind the table, for scripts and tests

    def __str__(self) -> str:
        parts = [self.title, render(self.head, self.rows, self.align)]
        if self.notes:
            parts.append("\n".join(f"* {n}" for n in self.notes))
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        parts = [f"### {self.title}", render(self.head, self.rows, self.align, markdown=True)]
        if self.notes:
            parts.append("\n".join(f"* {n}" for n in self.notes))
        return "\n\n".join(parts)

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": list(self.head), "rows": [list(r) for r in self.rows],
                "notes": list(self.notes), **self.data}
