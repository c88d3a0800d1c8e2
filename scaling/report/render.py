"""Sections rendered three ways: Markdown (report.md), HTML with the figures embedded
(report.html) and rich renderables for the terminal."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from rich.table import Table

from .sections import Code, Frame, Section

CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f4f4f4}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}img{max-width:100%;margin:1em 0}"""


def markdown(sections: list[Section], out_dir: Path) -> str:
    """The report in Markdown; figures linked relative to ``out_dir``."""
    lines = []
    for i, section in enumerate(sections):
        lines.append(("# " if i == 0 else "## ") + section.heading + "\n")
        for b in section.blocks:
            if isinstance(b, Frame):
                lines.append(b.table.to_markdown(index=False) + "\n")
            elif isinstance(b, Code):
                lines.append(f"```{b.language}\n{b.text.rstrip()}\n```\n")
            else:
                lines.append(b + "\n")
        lines += [f"![{f.stem}]({f.relative_to(out_dir).as_posix()})\n" for f in _pngs(section)]
    return "\n".join(lines)


def page(sections: list[Section], title: str) -> str:
    """The report as one HTML page, its figures embedded."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body>"]  # fmt: skip
    for i, section in enumerate(sections):
        tag = "h1" if i == 0 else "h2"
        parts.append(f"<{tag}>{html.escape(section.heading)}</{tag}>")
        parts += [_html_block(b) for b in section.blocks]
        for f in _pngs(section):
            data = base64.b64encode(f.read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(f.stem)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_block(b) -> str:
    if isinstance(b, Frame):
        return b.table.to_html(index=False, border=0, escape=True)
    if isinstance(b, Code):
        return f"<pre>{html.escape(b.text)}</pre>"
    if b.startswith("- "):
        return (
            "<ul>"
            + "".join(f"<li>{html.escape(line[2:])}</li>" for line in b.splitlines())
            + "</ul>"
        )
    return f"<p>{_bold(html.escape(b), '<b>', '</b>')}</p>"


def terminal(sections: list[Section]) -> list:
    """Rich renderables for the console: each heading, its text and its tables."""
    out = []
    for section in sections:
        out.append(f"[bold underline]{section.heading}[/]")
        for b in section.blocks:
            if isinstance(b, Frame):
                out.append(_rich_table(b))
            elif isinstance(b, Code):
                out.append(b.text)
            else:
                out.append(_bold(b.replace("[", r"\["), "[bold]", "[/bold]"))
    return out


def _rich_table(frame: Frame) -> Table:
    table = Table()
    for i, column in enumerate(frame.table.columns):
        table.add_column(str(column), justify="left" if i == 0 else "right")
    for row in frame.table.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    return table


def _bold(text: str, on: str, off: str) -> str:
    while "**" in text:  # the only markup the blocks use
        text = text.replace("**", on, 1).replace("**", off, 1)
    return text


def _pngs(section: Section) -> list[Path]:
    return [f for f in section.figures if f.suffix == ".png"]
