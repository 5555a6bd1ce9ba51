"""A self-contained ``report.html``: the same blocks as report.md, inline CSS, plots as base64 PNG.

The page loads nothing from anywhere: a Content-Security-Policy forbids every external resource, images are
``data:`` URIs, and a small inline script marks ``<body data-plots-loaded="true">`` once every image has decoded, so
a headless browser can check that the plots render.
"""

from __future__ import annotations

import base64
import html
import re
import struct

from overtonlite.errors import MissingDependencyError
from overtonlite.report import RunData
from overtonlite.report.markdown import Block, Bullets, Heading, Para, PlotSlot, Table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #ffffff; --zebra: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; background: #eef0f4; color: var(--fg);
       font: 15px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1040px; margin: 24px auto; padding: 28px 36px; background: var(--bg);
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.08); }
h1 { font-size: 1.6em; margin: 0 0 .6em; line-height: 1.25; }
h2 { font-size: 1.25em; margin: 1.8em 0 .5em; padding-bottom: .2em; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 1.4em 0 .4em; }
p, ul { margin: .5em 0; }
code { font: 0.88em/1.4 "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #f0f2f5; padding: 1px 4px;
       border-radius: 3px; }
.banner { border: 1px solid #e0a800; border-left: 6px solid #e0a800; background: #fff8e1; padding: 10px 14px;
          border-radius: 4px; margin: 0 0 1em; }
.banner strong { color: #8a5a00; }
.note { color: var(--muted); border-left: 3px solid var(--line); padding-left: 10px; }
.verdict { font-size: 1.05em; margin: 1em 0 .3em; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; color: #fff; font-size: .85em;
         font-weight: 600; margin-right: 8px; background: #6b7280; }
.verdict-supported .badge { background: #2e7d32; }
.verdict-not-supported .badge { background: #c62828; }
.verdict-inconclusive .badge { background: #8d6e00; }
.table-wrap { overflow-x: auto; margin: .6em 0 1em; }
table { border-collapse: collapse; font-size: .88em; min-width: 50%; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--zebra); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody td:first-child { white-space: nowrap; }
table.numeric th:not(:first-child) { text-align: right; }
td.num .ci { display: block; font-size: .82em; color: var(--muted); }
figure.plot { margin: 1em 0 1.4em; }
figure.plot img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .85em; }
footer#signature { margin-top: 2em; padding-top: .8em; border-top: 1px solid var(--line); color: var(--muted);
                   font-size: .85em; overflow-wrap: anywhere; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.body.setAttribute("data-plots-decoded", String(decoded));
  document.body.setAttribute("data-plots-loaded", decoded === images.length ? "true" : "false");
});
"""

_NUMERIC = re.compile(r"^(—|-?[0-9][0-9.,]*%?( \[.*\])?)$")


def inline(text: str) -> str:
    """Escape text, then turn ``code`` spans and **bold** into tags (the only inline markup the report uses)."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _cell(text: str, numeric: bool) -> str:
    if not numeric or not _NUMERIC.match(text):
        return f"<td>{inline(text)}</td>"
    mean, _, ci = text.partition(" [")
    ci_html = f' <span class="ci">[{inline(ci)}</span>' if ci else ""
    return f'<td class="num">{inline(mean)}{ci_html}</td>'


def _table(block: Table) -> str:
    head = "".join(f"<th>{inline(h)}</th>" for h in block.headers)
    body = []
    for row in block.rows:
        cells = "".join(_cell(c, block.numeric and i > 0) for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    ident = f' id="{_attr(block.id)}"' if block.id else ""
    ident += ' class="numeric"' if block.numeric else ""
    return (
        f'<div class="table-wrap"><table{ident}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _plot(block: PlotSlot, order: list[str]) -> str:
    from overtonlite.report.plots import render_plot

    try:
        png = render_plot(block.kind, block.payload, title=block.title, order=order)
    except MissingDependencyError as exc:
        return f'<p class="note" id="{_attr(block.id)}-missing">Plot not drawn: {inline(str(exc))}</p>'
    width, height = _png_size(png)
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (
        f'<figure class="plot" id="fig-{_attr(block.id)}"><img id="{_attr(block.id)}" class="plot-img" '
        f'alt="{_attr(block.alt)}" width="{width}" height="{height}" src="{src}">'
        f"<figcaption>{inline(block.alt)}.</figcaption></figure>"
    )


def _para(block: Para) -> str:
    if block.kind == "callout":
        return f'<div class="banner" id="banner" role="note"><strong>Caution.</strong> {inline(block.text)}</div>'
    if block.kind == "verdict":
        slug = re.sub(r"[^a-z]+", "-", block.verdict.lower()).strip("-") or "none"
        name = block.text.split(":", 1)[0].strip("*")
        return (
            f'<p class="verdict verdict-{slug}"><span class="badge">{inline(block.verdict)}</span>'
            f" <strong>{inline(name)}</strong></p>"
        )
    if block.kind == "signature":
        return f'<footer id="signature">{inline(block.text)}</footer>'
    cls = ' class="note"' if block.kind == "note" else ""
    return f"<p{cls}>{inline(block.text)}</p>"


def render_html(doc: list[Block], data: RunData, *, plots: bool = True) -> str:
    """The whole page as one string; ``plots=False`` leaves the plot slots out."""
    order = data.systems
    title = next((b.text for b in doc if isinstance(b, Heading) and b.level == 1), "overtonlite report")
    parts: list[str] = []
    n_plots = 0
    for block in doc:
        if isinstance(block, Heading):
            ident = f' id="{_attr(block.id)}"' if block.id else ""
            parts.append(f"<h{block.level}{ident}>{inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            parts.append(_para(block))
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, PlotSlot) and plots:
            parts.append(_plot(block, order))
            n_plots += parts[-1].startswith("<figure")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f'<body data-plots-loaded="pending" data-plots-expected="{n_plots}">\n<main>\n{body}\n</main>\n'
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
