"""`ttc-agent report LOG --html OUT.html`: a workflow's decisions as one self-contained page.

The page needs nothing at view time (no network, no script from elsewhere): inline SVG draws a
timeline of the calls (each call's measured seconds as a bar, its predicted seconds and 90%
quantile as a marker and whisker, coloured by strategy), predicted against measured tokens, and
under a workflow or session budget what was left after each call with the reserve held back.
Totals by strategy follow, then every decision's full record, opened by a click.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttc_agent.plotting import short_label
from ttc_agent.report import length_cuts_by_strategy

_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_ROW, _LEFT, _WIDTH = 22, 170, 640


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _predicted(record: dict[str, Any]) -> dict[str, Any] | None:
    """The chosen strategy's predictions in a record (``None`` for a stop with no choice)."""
    return next((c for c in record.get("candidates", ()) if c["strategy"] == record.get("choice")), None)


def _colours(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    specs = list(dict.fromkeys(r["choice"] for r in records if r.get("choice")))
    return {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(specs)}


def _bars(records: Sequence[dict[str, Any]], colours: dict[str, str], unit: str) -> str:
    """One row per call: the measured value as a bar, the prediction as a tick and its q90 as a
    whisker (``unit``: ``"seconds"`` or ``"tokens"``). Seconds are a timeline: each bar starts
    when its call started (from the records' end times, else one call after the other)."""
    rows = [r for r in records if r.get("choice")]
    if not rows:
        return "<p>No call ran.</p>"
    measured = [r["actual"]["seconds" if unit == "seconds" else "total_tokens"] for r in rows]
    preds = [_predicted(r) or {} for r in rows]
    median = [p.get(unit, 0.0) for p in preds]
    high = [p.get(f"{unit}_q90", p.get(unit, 0.0)) if unit == "tokens" else p.get("seconds", 0.0) for p in preds]
    starts = [0.0] * len(rows)
    if unit == "seconds":
        ends = [float(r.get("time", 0.0)) for r in rows]
        if all(ends):
            begun = [e - m for e, m in zip(ends, measured, strict=True)]
            starts = [b - min(begun) for b in begun]
        else:
            starts = [sum(measured[:i]) for i in range(len(rows))]
    top = max(
        [*(s + v for s, v in zip(starts, [max(m, q) for m, q in zip(measured, high, strict=True)], strict=True)), 1e-9]
    )
    scale = _WIDTH / top
    height = _ROW * len(rows) + 40
    parts = [
        f'<svg class="bars" role="img" aria-label="{unit} per call" width="{_LEFT + _WIDTH + 90}" height="{height}">'
    ]
    for i, (r, m, p, q, x0) in enumerate(zip(rows, measured, median, high, starts, strict=True)):
        y, left = 10 + i * _ROW, _LEFT + x0 * scale
        colour = colours[r["choice"]]
        label = f"#{i + 1} {short_label(r['choice'])}"
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 14}" text-anchor="end" class="lab">{_esc(label[:28])}</text>')
        parts.append(
            f'<rect class="call" data-call="{i + 1}" x="{left:.1f}" y="{y + 3}" width="{max(m * scale, 1):.1f}" height="{_ROW - 8}" '
            f'fill="{colour}"><title>#{i + 1} {_esc(r["choice"])}: measured {m:.1f}, predicted {p:.1f} (q90 {q:.1f}) {unit}</title></rect>'
        )
        parts.append(
            f'<line x1="{left + p * scale:.1f}" x2="{left + q * scale:.1f}" y1="{y + 11}" y2="{y + 11}" class="whisker"/>'
        )
        parts.append(f'<circle cx="{left + p * scale:.1f}" cy="{y + 11}" r="3.5" class="pred"/>')
        parts.append(f'<text x="{left + max(m, q) * scale + 6:.1f}" y="{y + 14}" class="val">{m:.1f}</text>')
    axis_y = 10 + len(rows) * _ROW + 14
    parts.append(f'<text x="{_LEFT}" y="{axis_y}" class="lab">0</text>')
    span = "seconds since the first call started" if unit == "seconds" else unit
    parts.append(f'<text x="{_LEFT + _WIDTH}" y="{axis_y}" text-anchor="end" class="lab">{top:.1f} {span}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _burn_down(records: Sequence[dict[str, Any]], unit: str) -> str:
    """What a budget had left after each budgeted call, and the reserve the manager held back."""
    rows = [r for r in records if r.get("budget") and r["budget"]["before"].get(f"{unit}_left") is not None]
    if not rows:
        return ""
    before = float(rows[0]["budget"]["before"][f"{unit}_left"])
    left = [float(r["budget"]["after"][f"{unit}_left"]) for r in rows]
    reserve = [float(r["budget"]["reserve"].get(unit) or 0.0) for r in rows]
    top = max([before, *left, 1e-9])
    w, h = _WIDTH, 180
    xs = [40 + w * (i + 1) / len(rows) for i in range(len(rows))]
    ys = [10 + h * (1 - max(v, 0.0) / top) for v in left]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip([40.0, *xs], [10.0 + h * (1 - before / top), *ys], strict=True))
    parts = [f'<svg class="burn" role="img" aria-label="{unit} left" width="{w + 120}" height="{h + 40}">',
             f'<line x1="40" x2="{40 + w}" y1="{10 + h}" y2="{10 + h}" class="axis"/>',
             f'<polyline points="{path}" class="left"/>']  # fmt: skip
    for i, (x, y, res) in enumerate(zip(xs, ys, reserve, strict=True)):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" class="pt"><title>after call {i + 1}: {left[i]:.1f} {unit} left, reserve {res:.1f}</title></circle>'
        )
        if res:
            parts.append(
                f'<rect x="{x - 4:.1f}" y="{10 + h * (1 - res / top):.1f}" width="8" height="{h * res / top:.1f}" class="reserve"/>'
            )
    parts.append(
        f'<text x="36" y="16" text-anchor="end" class="lab">{top:.0f}</text><text x="36" y="{10 + h}" text-anchor="end" class="lab">0</text>'
    )
    parts.append("</svg>")
    return f"<h3>{unit} left after each call</h3><p class='note'>line: left after the call; grey bars: the reserve the manager held back for later calls</p>{''.join(parts)}"


def _totals(records: Sequence[dict[str, Any]], colours: dict[str, str]) -> str:
    cuts = length_cuts_by_strategy(list(records))
    out = ["<table class='totals'><thead><tr><th>strategy</th><th>calls</th><th>tokens</th><th>seconds</th>"
           "<th>replies cut by length</th><th>second rounds</th></tr></thead><tbody>"]  # fmt: skip
    for spec, colour in colours.items():
        mine = [r for r in records if r.get("choice") == spec]
        tokens = sum(r["actual"]["total_tokens"] for r in mine)
        seconds = sum(r["actual"]["seconds"] for r in mine)
        second = sum(1 for r in mine if (r.get("stages") or {}).get("taken"))
        out.append(
            f"<tr data-strategy='{_esc(spec)}'><td><span class='sw' style='background:{colour}'></span>{_esc(spec)}</td>"
            f"<td>{len(mine)}</td><td>{tokens}</td><td>{seconds:.2f}</td><td>{cuts[spec].replies_cut}</td><td>{second}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _decisions(records: Sequence[dict[str, Any]]) -> str:
    out = []
    for i, r in enumerate(records, 1):
        if not r.get("choice"):
            summary = f"#{i} stopped: {(r.get('exhausted') or {}).get('message', 'no strategy fit')}"
        else:
            p = _predicted(r) or {}
            a = r["actual"]
            stages = r.get("stages")
            extra = (
                f", second stage {stages['taken']} more (agreement {stages['signals']['agreement']:.2f})"
                if stages
                else ""
            )
            extra += " - out of distribution: fallback" if (r.get("ood") or {}).get("novel") else ""
            extra += f" - cut by length ({r.get('finish_reason')})" if r.get("finish_reason") == "length" else ""
            summary = (f"#{i} {r['choice']}: tokens {p.get('tokens', 0):.0f} predicted / {a['total_tokens']} measured, "
                       f"seconds {p.get('seconds', 0):.1f} / {a['seconds']:.1f}, answer {r.get('answer')}{extra}")  # fmt: skip
        out.append(
            f"<details class='decision' id='call-{i}'><summary>{_esc(summary)}</summary>"
            f"<pre>{_esc(json.dumps(r, indent=2, default=float))}</pre></details>"
        )
    return "".join(out)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px} h3{font-size:14px}
.lab,.val{font-size:11px;fill:#333} .pred{fill:#fff;stroke:#000;stroke-width:1.2} .whisker{stroke:#000;stroke-width:1.2}
.axis{stroke:#999} .left{fill:none;stroke:#1f77b4;stroke-width:2} .pt{fill:#1f77b4} .reserve{fill:#bbb;opacity:.7}
table{border-collapse:collapse;font-size:13px} td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left} .sw{display:inline-block;width:10px;height:10px;margin-right:6px}
details{border-bottom:1px solid #eee;padding:4px 0;font-size:13px} pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:11px}
.note{font-size:12px;color:#555} rect.call{cursor:pointer}
"""

_SCRIPT = """
document.querySelectorAll('rect.call').forEach(function (bar) {
  bar.addEventListener('click', function () {
    var d = document.getElementById('call-' + bar.dataset.call);
    d.open = true; d.scrollIntoView({behavior: 'smooth'});
  });
});
"""


def render_html(records: Sequence[dict[str, Any]], title: str) -> str:
    """The whole page for decision records (`ttc_agent.report.read_decisions`)."""
    colours = _colours(records)
    ran = [r for r in records if r.get("choice")]
    tokens = sum(r["actual"]["total_tokens"] for r in ran)
    seconds = sum(r["actual"]["seconds"] for r in ran)
    budgets = "".join(_burn_down(records, u) for u in ("tokens", "seconds"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{_esc(title)}</h1>
<p id="summary"><span id="calls">{len(ran)}</span> calls, <span id="total-tokens">{tokens}</span> tokens,
<span id="total-seconds">{seconds:.2f}</span> seconds{f" ({len(records) - len(ran)} stopped by the budget)" if len(records) > len(ran) else ""}.</p>
<h2>Timeline: seconds per call</h2>
<p class="note">bar: measured; circle: predicted; whisker: to the 90% quantile. Click a bar for its record.</p>
{_bars(records, colours, "seconds")}
<h2>Tokens per call</h2>
{_bars(records, colours, "tokens")}
{"<h2>Budget</h2>" + budgets if budgets else ""}
<h2>Totals by strategy</h2>
{_totals(records, colours)}
<h2>Decisions</h2>
{_decisions(records)}
<script>{_SCRIPT}</script>
</body></html>
"""


def write_html(records: Sequence[dict[str, Any]], out: str | Path, title: str) -> Path:
    """Write the page to ``out`` (to a temporary name first, then renamed into place)."""
    path = Path(out)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(records, title))
    tmp.replace(path)
    return path
