#!/usr/bin/env python3
"""Turn compare.sh's results.jsonl into one table (markdown + JSON) and a plot.

    python3 benches/summarize.py bench-results/results.jsonl bench-results/ [--check]

With --check it exits 1 if a run failed or squall broke a correctness
claim (see `problems`); timings are never checked, so a slow or noisy
machine cannot fail it. CI runs `compare.sh --smoke --check`.

Each row is one figure of one case: the median over the repetitions for
squall, Tornado, (where it applies) the bare mio responder and hyper, and the
ratio "how many times better squall is than Tornado" (> 1 means squall wins,
whichever direction the figure improves in). Standard library only.

hyper (1.x, one thread, benches/hyper_peer) runs in the cases that need only
/hello: the hello, keep-alive idle and storm cases.

The bare responder is the *ceiling* in the hello, keep-alive and storm cases
(canned answers) and the *floor* in the chat fan-out cases (one
serialization per broadcast, one write per waiter): there "squall ÷ bare"
below 1 is how far squall sits above the least any server must pay, and
close to 1 means the figure is bound by the kernel, not by squall.
"""

import json
import math
import os
import statistics
import sys
from collections import defaultdict

# (key in the loadgen summary, label, better: "high" | "low" | None for counts)
HELLO = [
    ("rps", "req/s", "high"),
    ("server_cpu_us_per_req", "server CPU us/req", "low"),
    ("server_cpu_frac", "server core use (1 = saturated)", None),
    ("p99_ms", "p99 ms", "low"),
]
FANOUT = [
    ("p50_ms", "p50 ms", "low"),
    ("p99_ms", "p99 ms", "low"),
    ("max_ms", "max ms", "low"),
    ("delivered_frac", "delivered (fraction)", "high"),
]
METRICS = {
    "hello": HELLO,
    "wrk": [("rps", "req/s (wrk)", "high")],
    "longpoll-fanout": FANOUT + [("repoll_cpu_s", "round CPU s (re-poll)", "low")],
    "ws-fanout": FANOUT
    + [
        ("to_all_median_ms", "to all N, median ms", "low"),
        ("first_msg.p99_ms", "first broadcast alone, p99 ms", "low"),
    ],
    "idle": [
        ("bytes_per_conn", "RSS bytes/conn", "low"),
        ("rss_after_close_vs_before_pct", "RSS after close vs before %", None),
        ("still_answers", "still answers", None),
    ],
    "cart-race": [
        ("accepted", "accepted (of stock)", None),
        ("inventory_after", "final inventory", None),
        ("refused", "refused 409", None),
    ],
    "connect-storm": [
        ("answered_first_try", "answered first try", "high"),
        ("dropped", "dropped/retried", "low"),
        ("listen_overflows", "ListenOverflows", None),
    ],
}
SERVERS = ("squall", "tornado", "bare", "hyper")
# Names in the plot: in the fan-out cases it shows, bare is the floor.
LEGEND = {"squall": "squall", "tornado": "Tornado", "bare": "bare floor", "hyper": "hyper"}
# Scenarios in which the bare responder is the fan-out floor, not the ceiling.
FLOOR_SCENARIOS = ("longpoll-fanout", "ws-fanout")
FLOOR_IDLE_KINDS = ("longpoll", "ws")


def bare_role(scen, results):
    """ "floor" for the chat cases the bare responder serves, else "ceiling"."""
    if scen in FLOOR_SCENARIOS:
        return "floor"
    if scen == "idle" and any(r.get("kind") in FLOOR_IDLE_KINDS for r in results):
        return "floor"
    return "ceiling"
# Server + loadgen keep the 1-min load average near 2 on this 2-core machine;
# above this, something else was competing for the cores.
BUSY_LOAD = 3.0
# Share of a core used by processes other than server and loadgen during a
# run (loadgen's other_cpu_frac) above which the figure is suspect.
BUSY_OTHER = 0.25


def value(result, key):
    if key == "delivered_frac":
        exp = result.get("expected") or 0
        return (result.get("delivered", 0) / exp) if exp else None
    v = result
    for part in key.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    return v if isinstance(v, (int, float)) else None


def fmt(x):
    if x is None:
        return "n/a"
    if abs(x) >= 1000:
        return "{:,.0f}".format(x)
    if abs(x) >= 10:
        return "{:.1f}".format(x)
    return "{:.3g}".format(x)


def ratio(sq, tor, better):
    if sq is None or tor is None or better is None:
        return None
    if better == "high":
        return sq / tor if tor else None
    return tor / sq if sq else None


def problems(results):
    """What a --check run fails on: every run must have produced a summary,
    and squall's must keep the claims that do not depend on timing (every
    answer a 2xx, every fan-out message delivered, the cart never oversold
    nor below 0, the server still answering after its idle crowd left).
    `results` is [(case, server, result)] as read from results.jsonl."""
    found = []
    for case, server, r in results:
        if "error" in r:
            found.append("{} {}: {}".format(case, server, r["error"]))
            continue
        if server != "squall":
            continue
        scen = r.get("scenario")
        if scen == "hello" and (r.get("errors") or r.get("non_2xx")):
            found.append("{} squall: {} errors, {} non-2xx".format(case, r.get("errors"), r.get("non_2xx")))
        if scen in FLOOR_SCENARIOS and r.get("delivered") != r.get("expected"):
            found.append("{} squall: delivered {} of {}".format(case, r.get("delivered"), r.get("expected")))
        if scen == "cart-race" and (r.get("oversold") or r.get("negative")):
            found.append("{} squall: oversold or below 0 (accepted {}, inventory {})".format(case, r.get("accepted"), r.get("inventory_after")))
        if scen == "idle" and r.get("still_answers") is not True:
            found.append("{} squall: no answer after the idle connections closed".format(case))
    return found


def main():
    path, out = sys.argv[1], sys.argv[2]
    check = "--check" in sys.argv[3:]
    raw = []
    os.makedirs(out, exist_ok=True)
    runs = defaultdict(list)  # (case, server) -> [result]
    scenario_of = {}
    order = []
    busy = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            case, server, result = row["case"], row["server"], row.get("result") or {}
            raw.append((case, server, result))
            if case not in order:
                order.append(case)
            runs[(case, server)].append(result)
            load1 = row.get("load1")
            if isinstance(load1, (int, float)) and load1 > BUSY_LOAD:
                busy.setdefault(case, set()).add((server, load1))
            if "scenario" in result and "error" not in result:
                scenario_of[case] = result["scenario"]

    rows = []
    for case in order:
        scen = scenario_of.get(case)
        notes = []
        busy_other = []
        for s in SERVERS:
            for r in runs.get((case, s), []):
                if "error" in r:
                    notes.append("{}: {}".format(s, r["error"]))
                if r.get("client_bound") and scenario_of.get(case) not in ("connect-storm", "idle"):
                    notes.append("{}: CLIENT-BOUND run".format(s))
                fracs = [x.get("delivery_client_cpu_frac") for x in r.get("per_round") or []]
                fracs.append(r.get("delivery_client_cpu_frac"))
                fracs = [x for x in fracs if isinstance(x, (int, float))]
                if fracs and max(fracs) > 0.9:
                    notes.append("{}: client busy ({:.0%}) while answers arrived: latencies include its reading".format(s, max(fracs)))
                other = r.get("other_cpu_frac")
                if isinstance(other, (int, float)) and other > BUSY_OTHER:
                    busy_other.append(other)
                if r.get("first_error"):
                    notes.append("{}: {}".format(s, r["first_error"]))
        loads = [l for _, l in busy.get(case, ())]
        if busy_other or loads:
            total = sum(len(runs.get((case, s), [])) for s in SERVERS)
            parts = []
            if busy_other:
                parts.append("other processes used up to {:.0%} of a core in {} run(s)".format(max(busy_other), len(busy_other)))
            if loads:
                parts.append("1-min load average up to {} in {} run(s)".format(max(loads), len(loads)))
            notes.append("machine busy ({} runs in all): {}; rerun on a quiet machine".format(total, "; ".join(parts)))
        if scen is None:
            rows.append({"case": case, "metric": "(no successful run)", "notes": sorted(set(notes))})
            continue
        role = bare_role(scen, runs.get((case, "bare"), []))
        for key, label, better in METRICS.get(scen, []):
            med = {}
            n = {}
            for s in SERVERS:
                vals = [value(r, key) for r in runs.get((case, s), []) if "error" not in r]
                vals = [v for v in vals if v is not None]
                med[s] = statistics.median(vals) if vals else None
                n[s] = len(vals)
            rows.append(
                {
                    "case": case,
                    "metric": label,
                    "key": key,
                    "better": better,
                    "squall": med["squall"],
                    "tornado": med["tornado"],
                    "bare": med["bare"],
                    "hyper": med["hyper"],
                    "bare_role": role,
                    "runs": n,
                    "ratio_vs_tornado": ratio(med["squall"], med["tornado"], better),
                    "squall_vs_bare": ratio(med["squall"], med["bare"], better),
                    "squall_vs_hyper": ratio(med["squall"], med["hyper"], better),
                    "notes": sorted(set(notes)),
                }
            )

    lines = [
        "| case | figure | squall | Tornado | squall ÷ Tornado (×, >1 = squall better) | bare mio (ceiling / *floor*) | squall ÷ bare | hyper | squall ÷ hyper |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    all_notes = []
    for r in rows:
        if "key" not in r:
            lines.append("| {} | {} | | | | | | | |".format(r["case"], r["metric"]))
        else:
            lines.append(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    r["case"],
                    r["metric"],
                    fmt(r["squall"]),
                    fmt(r["tornado"]),
                    fmt(r["ratio_vs_tornado"]),
                    floor_mark(r, fmt(r["bare"])),
                    floor_mark(r, fmt(r["squall_vs_bare"])),
                    fmt(r["hyper"]),
                    fmt(r["squall_vs_hyper"]),
                )
            )
        for note in r["notes"]:
            entry = "{}: {}".format(r["case"], note)
            if entry not in all_notes:
                all_notes.append(entry)
    md = "\n".join(lines) + "\n"
    if all_notes:
        md += "\nNotes (errors and client-bound runs):\n\n" + "\n".join("- " + n for n in all_notes) + "\n"
    md += "\nMedians over the repetitions; compare only within one run (the machine drifts ±20% between minutes).\n"
    if any(r.get("bare_role") == "floor" and r.get("bare") is not None for r in rows):
        md += (
            "\n*Italic* bare figures are the fan-out **floor** (the bare responder serving the chat contract with one "
            "serialization per broadcast and one write per waiter), not a ceiling: squall ÷ bare near 1 means the "
            "figure is what the kernel costs.\n"
        )
    with open(out + "/table.md", "w") as f:
        f.write(md)
    with open(out + "/table.json", "w") as f:
        json.dump(rows, f, indent=1)
    svg = plot(rows)
    if svg:
        with open(out + "/latency.svg", "w") as f:
            f.write(svg)
    print(md)
    print("written: {0}/table.md {0}/table.json{1}".format(out, " {}/latency.svg".format(out) if svg else ""))
    if check:
        found = problems(raw)
        for p in found:
            print("CHECK FAILED: " + p)
        if found or not raw:
            sys.exit(1)
        print("check: every run produced a summary and squall kept every correctness claim")


def floor_mark(row, text):
    """Italicize a bare figure that is a floor (and not n/a)."""
    if row.get("bare_role") == "floor" and text != "n/a":
        return "*{}*".format(text)
    return text


def plot(rows):
    """Grouped bars (log scale) of fan-out p99 latency by case: squall, Tornado and the bare floor."""
    data = [r for r in rows if r.get("key") == "p99_ms" and r["case"].startswith(("longpoll", "ws"))]
    data = [r for r in data if r["squall"] or r["tornado"] or r["bare"]]
    if not data:
        return None
    series = [s for s in SERVERS if any(r[s] for r in data)]
    group = 40 * len(series) + 40
    w, h, left, bottom, top = max(group * len(data) + 120, 600), 360, 70, 60, 40
    vals = [r[s] for r in data for s in series if r[s]]
    lo = 10 ** math.floor(math.log10(max(min(vals) * 0.5, 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(vals) * 1.01))

    def y(v):
        v = max(v, lo)
        return top + (h - top - bottom) * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    title = " vs ".join(LEGEND[s] for s in series)
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">'.format(w, h),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="{}" y="22" font-size="15">Fan-out p99 latency (ms, log scale): {}</text>'.format(left, title),
    ]
    d = lo
    while d <= hi * 1.0001:
        out.append('<line x1="{0}" x2="{1}" y1="{2:.1f}" y2="{2:.1f}" stroke="#ddd"/>'.format(left, w - 20, y(d)))
        out.append('<text x="{}" y="{:.1f}" text-anchor="end">{:g}</text>'.format(left - 6, y(d) + 4, d))
        d *= 10
    colors = {"squall": "#2a7ab0", "tornado": "#e08a1e", "bare": "#8a8a8a", "hyper": "#5a9a4a"}
    for i, r in enumerate(data):
        x0 = left + 20 + i * group
        for j, s in enumerate(series):
            v = r[s]
            x = x0 + j * 40
            if not v:
                out.append('<text x="{}" y="{}" text-anchor="middle" font-size="10">n/a</text>'.format(x + 18, h - bottom - 4))
                continue
            out.append(
                '<rect x="{}" y="{:.1f}" width="36" height="{:.1f}" fill="{}"><title>{} {}: {} ms</title></rect>'.format(
                    x, y(v), h - bottom - y(v), colors[s], r["case"], LEGEND[s], v
                )
            )
            out.append('<text x="{}" y="{:.1f}" text-anchor="middle" font-size="10">{}</text>'.format(x + 18, y(v) - 3, fmt(v)))
        out.append('<text x="{}" y="{}" text-anchor="middle">{}</text>'.format(x0 + 20 * len(series) - 2, h - bottom + 18, r["case"]))
    ly = h - 18
    for j, s in enumerate(series):
        out.append('<rect x="{}" y="{}" width="12" height="12" fill="{}"/>'.format(left + j * 110, ly - 10, colors[s]))
        out.append('<text x="{}" y="{}">{}</text>'.format(left + 16 + j * 110, ly, LEGEND[s]))
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
