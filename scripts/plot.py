#!/usr/bin/env python3
"""Report and SVG plots for scripts/loadtest.sh, dependency-free.

usage: scripts/plot.py RESULTS_DIR

Reads RESULTS_DIR/results.jsonl (one shardmq-bench JSON summary per line, plus the keys
`broker`, `key` and `rep` added by loadtest.sh; failed runs carry `failed: true`) and writes
RESULTS_DIR/report.md, throughput.svg, latency.svg and rss.svg.
"""
import json
import math
import statistics
import sys
from pathlib import Path

COLORS = {"shardmq": "#2a7ab0", "mosquitto": "#c8553d", "floor": "#8c8c8c"}
EXTRA = ["#5b8c5a", "#8e6c8a", "#d9a441"]


def color(broker, brokers):
    return COLORS.get(broker) or EXTRA[brokers.index(broker) % len(EXTRA)]


def load(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def span(values):
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else (None, None)


def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float) and math.isnan(v):
        return "–"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.{digits}f}"


def group(rows):
    keys, brokers, cells = [], [], {}
    for r in rows:
        k, b = r.get("key", r.get("scenario", "?")), r.get("broker", r.get("label", "?"))
        if k not in keys:
            keys.append(k)
        if b not in brokers:
            brokers.append(b)
        cells.setdefault((k, b), []).append(r)
    brokers.sort(key=lambda b: (b != "shardmq", b))
    return keys, brokers, cells


def stat(runs, field):
    ok = [r.get(field) for r in runs if not r.get("failed")]
    return med(ok), span(ok)


# ------------------------------------------------------------------ SVG helpers


def svg_doc(w, h, body, title):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">\n'
        f'<rect width="{w}" height="{h}" fill="white"/>\n'
        f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="15">{esc(title)}</text>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_max(v):
    if v <= 0:
        return 1
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def bars(groups, series, values, title, ylabel, log=False, errors=None):
    """Grouped bar chart. values[(group, series)] -> number or None."""
    w = max(480, 90 + len(groups) * (30 + 22 * len(series)))
    h, left, top, bottom = 380, 70, 40, 90
    ph, pw = h - top - bottom, w - left - 20
    vals = [v for v in values.values() if v]
    if errors:
        vals += [e[1] for e in errors.values() if e and e[1]]
    if not vals:
        vals = [1]
    if log:
        lo = 10 ** math.floor(math.log10(max(min(vals), 1e-3)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        if hi <= lo:
            hi = lo * 10

        def y(v):
            v = max(v, lo)
            return top + ph - ph * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

        ticks = [lo * 10 ** i for i in range(int(round(math.log10(hi / lo))) + 1)]
    else:
        hi = nice_max(max(vals))

        def y(v):
            return top + ph - ph * v / hi

        ticks = [hi * i / 5 for i in range(6)]
    body = []
    for t in ticks:
        body.append(f'<line x1="{left}" x2="{w - 20}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#ddd"/>')
        body.append(f'<text x="{left - 5}" y="{y(t) + 4:.1f}" text-anchor="end">{fmt(t, 0 if t >= 1 else 2)}</text>')
    body.append(
        f'<text transform="translate(15,{top + ph / 2}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>'
    )
    gw = pw / max(1, len(groups))
    bw = min(22, (gw - 10) / max(1, len(series)))
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + (gw - bw * len(series)) / 2
        for si, s in enumerate(series):
            v = values.get((g, s))
            x = x0 + si * bw
            col = s[1] if isinstance(s, tuple) else "#888"
            if v is None:
                body.append(f'<text x="{x + bw / 2:.1f}" y="{top + ph - 4}" text-anchor="middle" fill="#999">×</text>')
                continue
            yv = y(v)
            body.append(
                f'<rect x="{x:.1f}" y="{yv:.1f}" width="{bw - 2:.1f}" height="{top + ph - yv:.1f}" fill="{col}">'
                f"<title>{esc(g)} {esc(s[0] if isinstance(s, tuple) else s)}: {fmt(v, 1)}</title></rect>"
            )
            if errors and errors.get((g, s)):
                a, b = errors[(g, s)]
                if a is not None and b is not None:
                    cx = x + (bw - 2) / 2
                    body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(a):.1f}" y2="{y(b):.1f}" stroke="black"/>')
        body.append(
            f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + ph + 16}" text-anchor="middle">{esc(g)}</text>'
        )
    lx = left
    for s in series:
        name, col = s if isinstance(s, tuple) else (s, "#888")
        body.append(f'<rect x="{lx}" y="{h - 30}" width="12" height="12" fill="{col}"/>')
        body.append(f'<text x="{lx + 16}" y="{h - 20}">{esc(name)}</text>')
        lx += 30 + 8 * len(name)
    return svg_doc(w, h, body, title)


def lines(series, title, xlabel, ylabel):
    """series: {name: (color, [(x, y), ...])}"""
    w, h, left, top, bottom = 560, 380, 70, 40, 70
    ph, pw = h - top - bottom, w - left - 20
    pts = [p for _, ps in series.values() for p in ps]
    if not pts:
        pts = [(0, 0), (1, 1)]
    xmax = nice_max(max(p[0] for p in pts))
    ymax = nice_max(max(p[1] for p in pts))

    def X(v):
        return left + pw * v / xmax

    def Y(v):
        return top + ph - ph * v / ymax

    body = []
    for i in range(6):
        t = ymax * i / 5
        body.append(f'<line x1="{left}" x2="{w - 20}" y1="{Y(t):.1f}" y2="{Y(t):.1f}" stroke="#ddd"/>')
        body.append(f'<text x="{left - 5}" y="{Y(t) + 4:.1f}" text-anchor="end">{fmt(t, 1)}</text>')
        tx = xmax * i / 5
        body.append(f'<text x="{X(tx):.1f}" y="{top + ph + 16}" text-anchor="middle">{fmt(tx)}</text>')
    body.append(f'<text x="{left + pw / 2}" y="{top + ph + 34}" text-anchor="middle">{esc(xlabel)}</text>')
    body.append(
        f'<text transform="translate(15,{top + ph / 2}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>'
    )
    lx = left
    for name, (col, ps) in series.items():
        ps = sorted(ps)
        if ps:
            d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in ps)
            body.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="2"/>')
            for x, y in ps:
                body.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{col}"><title>{fmt(x)}: {fmt(y, 1)}</title></circle>')
        body.append(f'<rect x="{lx}" y="{h - 22}" width="12" height="12" fill="{col}"/>')
        body.append(f'<text x="{lx + 16}" y="{h - 12}">{esc(name)}</text>')
        lx += 30 + 8 * len(name)
    return svg_doc(w, h, body, title)


# ------------------------------------------------------------------ report


def main(out):
    out = Path(out)
    rows = load(out / "results.jsonl")
    keys, brokers, cells = group(rows)
    traffic = [k for k in keys if not k.startswith("conn")]
    conn_keys = [k for k in keys if k.startswith("conn")]
    md = [f"# Load test {out.name}", ""]
    meta = out / "meta.txt"
    if meta.exists():
        md += ["```", meta.read_text().strip(), "```", ""]
    md += [
        "Medians over the repetitions, with min–max. Latency is measured from the scheduled send "
        "time (coordinated omission corrected). CPU figures are per delivered message. "
        "Ratios are shardmq ÷ mosquitto (for msg/s higher is better, for latency and CPU lower is better).",
        "",
        "| scenario | broker | runs ok | delivered msg/s (min–max) | p50 µs | p99 µs | p99.9 µs | max µs | lost | broker CPU µs/msg | gen CPU µs/msg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k in traffic:
        for b in brokers:
            runs = cells.get((k, b), [])
            if not runs:
                continue
            ok = [r for r in runs if not r.get("failed")]
            if not ok:
                md.append(f"| {k} | {b} | 0/{len(runs)} | **failed**: {esc(runs[-1].get('error', ''))[:80]} | | | | | | | |")
                continue
            m, (lo, hi) = stat(runs, "msgs_per_s")
            md.append(
                f"| {k} | {b} | {len(ok)}/{len(runs)} | {fmt(m)} ({fmt(lo)}–{fmt(hi)}) | "
                f"{fmt(stat(runs, 'p50_us')[0])} | {fmt(stat(runs, 'p99_us')[0])} | {fmt(stat(runs, 'p999_us')[0])} | "
                f"{fmt(stat(runs, 'max_us')[0])} | {fmt(med([r.get('lost') for r in ok]))} | "
                f"{fmt(stat(runs, 'broker_cpu_us_per_msg')[0], 2)} | {fmt(stat(runs, 'gen_cpu_us_per_msg')[0], 3)} |"
            )
    busiest = []
    for k in traffic:
        for b in brokers:
            for r in cells.get((k, b), []):
                if not r.get("failed") and r.get("gen_cpu_pct") is not None:
                    busiest.append((r["gen_cpu_pct"] / max(1, r.get("threads") or 1), k, b))
    if busiest:
        saturated = sorted({f"{k} ({b})" for pct, k, b in busiest if pct > 90})
        top = max(busiest)
        if saturated:
            md += ["", "**Generator saturated** (busy over 90% of its threads in some run: these rows "
                   "may measure the generator, not the broker): " + ", ".join(saturated) + "."]
        else:
            md += ["", f"The generator stayed under 90% of its threads in every run (busiest: "
                   f"{top[0]:.0f}% in {top[1]} against {top[2]})."]
    if "shardmq" in brokers and "mosquitto" in brokers:
        md += ["", "## Ratios (shardmq ÷ mosquitto, medians)", "",
               "| scenario | msg/s | p99 latency | broker CPU/msg |", "| --- | --- | --- | --- |"]
        for k in traffic:
            def ratio(field):
                a = stat(cells.get((k, "shardmq"), []), field)[0]
                b = stat(cells.get((k, "mosquitto"), []), field)[0]
                return f"{a / b:.2f}×" if a is not None and b else "–"
            md.append(f"| {k} | {ratio('msgs_per_s')} | {ratio('p99_us')} | {ratio('broker_cpu_us_per_msg')} |")
    floor_keys = [k for k in traffic if cells.get((k, "floor")) and cells.get((k, "shardmq"))]
    if floor_keys:
        md += ["", "## Against the floor (medians)", "",
               "`floor` is shardmq-floor (bench/floor.rs): one thread, epoll, one read per readable "
               "socket and one write per connection per wake-up, PUBLISH frames copied unchanged "
               "to exact and wildcard subscribers, no sessions, no packet identifiers of its own. "
               "It is the kernel's share of the scenario on this machine plus almost nothing: a "
               "broker that forwards each message as soon as it arrives cannot spend much less, "
               "and goes lower only by holding messages back to batch them "
               "(shardmq's `batch_window_us`).", "",
               "| scenario | floor CPU µs/msg | shardmq CPU µs/msg | shardmq ÷ floor | floor p99 µs | shardmq p99 µs |",
               "| --- | --- | --- | --- | --- | --- |"]
        for k in floor_keys:
            fc = stat(cells[(k, "floor")], "broker_cpu_us_per_msg")[0]
            sc = stat(cells[(k, "shardmq")], "broker_cpu_us_per_msg")[0]
            ratio = f"{sc / fc:.2f}×" if fc and sc is not None else "–"
            md.append(f"| {k} | {fmt(fc, 2)} | {fmt(sc, 2)} | {ratio} | "
                      f"{fmt(stat(cells[(k, 'floor')], 'p99_us')[0])} | {fmt(stat(cells[(k, 'shardmq')], 'p99_us')[0])} |")
    if conn_keys:
        md += ["", "## Idle connections", "",
               "| scenario | broker | connections | connects/s | connect p99 µs | broker RSS before → after KiB | bytes/conn | broker CPU µs/connect | failures |",
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for k in conn_keys:
            for b in brokers:
                runs = cells.get((k, b), [])
                ok = [r for r in runs if not r.get("failed")]
                if runs and not ok:
                    md.append(f"| {k} | {b} | **failed** | | | | | | |")
                    continue
                if not ok:
                    continue
                fails = sum(sum(r.get("connect_failures", {}).values()) for r in ok)
                md.append(
                    f"| {k} | {b} | {fmt(med([r.get('connects') for r in ok]))} | {fmt(stat(runs, 'connects_per_s')[0])} | "
                    f"{fmt(stat(runs, 'connect_p99_us')[0])} | {fmt(med([r.get('broker_rss_before_kb') for r in ok]))} → "
                    f"{fmt(med([r.get('broker_rss_after_kb') for r in ok]))} | {fmt(stat(runs, 'bytes_per_conn')[0])} | "
                    f"{fmt(stat(runs, 'broker_cpu_us_per_conn')[0], 1)} | {fails} |"
                )
        slopes = []
        families = (("conn", "idle"), ("connsub", "each with one subscription"))
        for (fam, what), b in ((f, b) for f in families for b in brokers):
            points = []  # (connections, RSS after in KiB), medians per scenario
            for k in conn_keys:
                if k.rsplit("-", 1)[0] != fam:
                    continue
                ok = [r for r in cells.get((k, b), []) if not r.get("failed")]
                conns, kb = med([r.get("connects") for r in ok]), med([r.get("broker_rss_after_kb") for r in ok])
                if conns is not None and kb is not None:
                    points.append((conns, kb))
            points.sort()
            if len(points) >= 2 and points[-1][0] > points[-2][0]:
                (n1, kb1), (n2, kb2) = points[-2], points[-1]
                slopes.append(f"{b} {what} {(kb2 - kb1) * 1024 / (n2 - n1):.0f} B/conn ({fmt(n1)} → {fmt(n2)})")
        if slopes:
            md += ["", "Each idle-connection run starts a fresh broker. Its before → after column includes "
                   "memory the broker touches once, whatever the count (receive-buffer pool, allocator "
                   "pages); the cost of one more connection is the slope between the two largest counts: "
                   + "; ".join(slopes) + ". `scripts/capacity.sh` measures that slope up to the "
                   "machine's limit."]
    md += ["", "![delivered msg/s](throughput.svg)", "", "![latency](latency.svg)", "", "![RSS](rss.svg)", ""]
    (out / "report.md").write_text("\n".join(md))

    series = [(b, color(b, brokers)) for b in brokers]
    vals, errs = {}, {}
    for k in traffic:
        for s in series:
            m, sp = stat(cells.get((k, s[0]), []), "msgs_per_s")
            vals[(k, s)] = m
            errs[(k, s)] = sp
    (out / "throughput.svg").write_text(bars(traffic, series, vals, "Delivered messages per second (median, min–max)", "msg/s", errors=errs))

    lat_series = []
    shades = {"p50_us": 1.0, "p99_us": 0.7, "p999_us": 0.45}
    for b in brokers:
        for f, a in shades.items():
            lat_series.append((f"{b} {f[:-3]}", color(b, brokers), a))
    lvals = {}
    for k in traffic:
        for name, col, a in lat_series:
            b, f = name.rsplit(" ", 1)
            lvals[(k, (name, col))] = stat(cells.get((k, b), []), f + "_us")[0]
    (out / "latency.svg").write_text(
        bars(traffic, [(n, c) for n, c, _ in lat_series], lvals, "Latency percentiles (median of runs), log scale", "µs", log=True)
    )

    rss = {}
    for b in brokers:
        pts = []
        for k in conn_keys:
            if not k.startswith("conn-"):
                continue  # the plot is of idle connections without subscriptions
            for r in cells.get((k, b), []):
                if r.get("failed") or r.get("broker_rss_after_kb") is None:
                    continue
                pts.append((r.get("connects") or r.get("clients", 0), (r["broker_rss_after_kb"] - (r.get("broker_rss_before_kb") or 0)) / 1024))
        rss[b] = (color(b, brokers), pts)
    (out / "rss.svg").write_text(lines(rss, "Broker RSS growth against idle connections", "connections", "MiB"))
    print(f"wrote {out / 'report.md'} and 3 SVG plots")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1])
