"""Write a list of sections as report.md (PNGs beside it) and a self-contained report.html.

Inputs: :class:`Section` s whose blocks are plain paragraphs (str; one wrapped in ``**`` is a
bold warning), :class:`Table`, :class:`Figure` (PNG bytes) or :class:`Pre` (preformatted text).
Outputs: ``<out>/report.md`` referencing ``<out>/<figure>.png``, and ``<out>/report.html`` with
the same PNGs inlined as base64 data URIs, so the HTML file can be mailed or copied alone. All
text is escaped; nothing is interpreted as markup but a bold paragraph's ``**``.

    sections = [Section("Stages", ["2 stages", Table(["a"], [["1"]])])]
    write_files(sections, out, "HEAL run report", "runs/x")
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from heal_batch.store.atomic import write_text_atomic


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    name: str  # file stem, [a-z0-9_-]
    png: bytes
    caption: str


@dataclass
class Pre:
    text: str


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Figure | Pre] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1080px; margin: 2em auto; padding: 0 1.5em; }
h1 { margin-bottom: 0.1em; } \
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #666; margin-top: 0; }
nav ol { columns: 2; padding-left: 1.4em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
pre { background: #f6f6f6; padding: 0.7em; white-space: pre-wrap; word-break: break-word; \
font-size: 12.5px; }
.empty { color: #888; font-style: italic; }
"""


def write_files(sections: list[Section], out: Path, title: str, subtitle: str) -> Path:
    """Write report.md, the PNGs and report.html into `out`; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    for section in sections:
        for block in section.blocks:
            if isinstance(block, Figure):
                (out / f"{block.name}.png").write_bytes(block.png)
    write_text_atomic(out / "report.md", to_markdown(sections, title, subtitle))
    html_path = out / "report.html"
    write_text_atomic(html_path, to_html(sections, title, subtitle))
    return html_path


def to_markdown(sections: list[Section], title: str, subtitle: str) -> str:
    lines = [f"# {title}", "", subtitle, ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _md_block(block) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_block(block) -> list[str]:
    if isinstance(block, Table):
        rows = [block.headers, ["---"] * len(block.headers), *block.rows]
        return ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    if isinstance(block, Figure):
        return [f"![{block.caption}]({block.name}.png)", "", f"*{block.caption}*"]
    if isinstance(block, Pre):
        return ["```text", block.text, "```"]
    return [block]


def to_html(sections: list[Section], title: str, subtitle: str) -> str:
    esc = html.escape
    toc = "".join(f'<li><a href="#{s.anchor}">{esc(s.title)}</a></li>' for s in sections)
    body = []
    for section in sections:
        body.append(f'<section id="{section.anchor}"><h2>{esc(section.title)}</h2>')
        body += [_html_block(block) for block in section.blocks]
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="meta">{esc(subtitle)}</p>'
        f"<nav><ol>{toc}</ol></nav>\n" + "\n".join(body) + "\n</body></html>\n"
    )


NUMBER = re.compile(r"^[-+]?[\d.,]+%?( ± [\d.]+)?$|^\d+/\d+$|^-$|^\?$")


def _html_cell(value) -> str:
    text = str(value)
    css = ' class="num"' if NUMBER.match(text) else ""
    return f"<td{css}>{html.escape(text)}</td>"


def _html_block(block) -> str:
    esc = html.escape
    if isinstance(block, Table):
        head = "".join(f"<th>{esc(str(h))}</th>" for h in block.headers)
        rows = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img alt="{esc(block.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Pre):
        return f"<pre>{esc(block.text)}</pre>"
    if len(block) > 4 and block.startswith("**") and block.endswith("**"):  # a warning
        return f"<p><strong>{esc(block[2:-2])}</strong></p>"
    css = ' class="empty"' if block.startswith(("Not run yet", "Could not read")) else ""
    return f"<p{css}>{esc(block)}</p>"
