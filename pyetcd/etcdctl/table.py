"""olekukonko/tablewriter as etcdctl's `-w table` uses it: centred headers, right-aligned cells."""
from __future__ import annotations


def render(header: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"

    def centred(text: str, width: int) -> str:
        left = (width - len(text)) // 2
        return " " * left + text + " " * (width - len(text) - left)

    head = "|" + "|".join(f" {centred(h, w)} " for h, w in zip(header, widths)) + "|\n"
    body = "".join("|" + "|".join(f" {c.rjust(w)} " for c, w in zip(r, widths)) + "|\n" for r in rows)
    return line + head + line + body + line
