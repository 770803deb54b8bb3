"""The data-quality verdict at the top of an output: a red banner on the terminal, comment lines in CSV."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from cquin.dataset.quality import ACCEPTED, PASSED, DataQuality


def render_quality_banner(console: Console, quality: DataQuality) -> None:
    """The verdict, first, when the check did not pass; nothing when it did."""
    if quality.status == PASSED:
        return
    lines = quality.lines()
    style = "yellow" if quality.status == ACCEPTED else "bold red"
    console.print(f"[{style}]{escape(lines[0])}[/]")
    for line in lines[1:]:
        console.print(escape(line))
    console.print()


def quality_csv_preamble(quality: DataQuality) -> str:
    """Lines starting ``#`` to put before a CSV's header when the check did not pass (spreadsheets show them as text)."""
    return "".join(f"# {line.strip()}\n" for line in quality.lines())
