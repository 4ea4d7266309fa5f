#!/usr/bin/python3
"""Turns the driver's raw.jsonl into a markdown report and a PNG chart.

    report.py RAW.jsonl --label host|guest --commit C [--wall-seconds S] --md OUT.md [--png OUT.png]

Every overhead figure is a ratio of two runs made right after each other
(baseline, then the same storm with the tracer attached): ratio = probe
ns/unlink / baseline ns/unlink. A comparison's median and min-max are taken
over its pairs. Python's standard library only; the chart is drawn by
gnuplot (gnuplot-nox), skipped with a note if it is missing.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

# What each comparison is, in the words of the README's table.
DESCRIPTIONS = {
    "count": "unlinkd {m}, counting only (no journal, signals, recent events)",
    "default": "unlinkd {m}, default config (journald + D-Bus)",
    "stream": "unlinkd {m}, every event streamed (--foreground --json > /dev/null)",
    "bpftrace-count": "bpftrace {m}, per-pid count map",
    "bpftrace-pidcount": "bpftrace {m}, `@[pid] = count()` on the entry",
    "bpftrace-print": "bpftrace {m}, one line per event",
    "auditd": "auditd, -a always,exit -S unlink,unlinkat",
}

SHORT = {
    "count": "unlinkd {m}: counting only",
    "default": "unlinkd {m}: default config",
    "stream": "unlinkd {m}: every event streamed",
    "bpftrace-count": "bpftrace {m}: per-pid count map",
    "bpftrace-pidcount": "bpftrace {m}: @[pid] = count()",
    "bpftrace-print": "bpftrace {m}: a line per event",
    "auditd": "auditd: unlink,unlinkat rule",
}

# Targets of issue 6 (ratios to the interleaved baseline).
TARGETS = {
    ("default", "fentry"): 1.03,
    ("default", "kprobe"): 1.06,
    ("default", "tracepoint"): 1.08,
    ("stream", "tracepoint"): 2.0,
}
GETPPID_TARGETS = {"fentry": 1.00}
# Issue 14's targets inside BPF: unlinkd's default configuration at most
# 1.5x bpftrace's `@[pid] = count()` on the same hook; every event streamed
# at most 2000 ns per deletion.
KSTATS_REFERENCE = "bpftrace-pidcount-{m}"
KSTATS_DEFAULT_MAX_RATIO = 1.5
KSTATS_STREAM_MAX_NS = 2000


def describe(variant):
    if variant == "auditd":
        return "auditd", None, DESCRIPTIONS["auditd"]
    parts = variant.split("-")
    if parts[0] == "unlinkd":
        mode, config = parts[1], parts[2]
        return config, mode, DESCRIPTIONS[config].format(m=mode)
    kind, hook = parts[1], parts[2]
    return "bpftrace-" + kind, hook, DESCRIPTIONS["bpftrace-" + kind].format(m=hook)


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def spread(values, digits=2):
    """'median (min-max)' of a list of numbers."""
    if not values:
        return "-", None
    med = statistics.median(values)
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})", med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--label", default="host")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--wall-seconds", type=int)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png")
    args = ap.parse_args()

    records = []
    with open(args.raw) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    print(f"report: skipping a malformed line: {line[:120]}", file=sys.stderr)
    meta = next((r for r in records if r["type"] == "meta"), {})
    by_type = lambda t: [r for r in records if r["type"] == t]

    out = []
    w = out.append

    def section(title):
        w("## " + title)
        w("")

    def table(*headers):
        """A markdown table's header row and its separator."""
        w("| " + " | ".join(headers) + " |")
        w("|" + " --- |" * len(headers))
    title = "guest figures (qemu TCG)" if args.label == "guest" else args.label
    w(f"# unlinkd benchmark: {title}")
    w("")
    w(f"- kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} CPUs ({meta.get('cpu_model', '?')})")
    w(f"- date {meta.get('date', '?')}, commit {args.commit}")
    w(f"- attach modes that load here: {', '.join(meta.get('modes', [])) or '-'}; "
      f"bpftrace hooks: {', '.join(meta.get('bpftrace_hooks', [])) or '-'}")
    w(f"- tools: {meta.get('bpftrace', '?')}, auditctl {meta.get('auditd', '?').replace('auditctl version ', '')}")
    w(f"- storm: {meta.get('count', '?')} unlink(2) on tmpfs over {meta.get('threads', '?')} threads per run, "
      f"{meta.get('pairs', '?')} interleaved pairs per comparison; getppid: {meta.get('getppid_calls', '?')} calls per run")
    # kernel threads (kauditd) are listed as "PID [name]" by pgrep: not tracers
    foreign = [p for p in meta.get("foreign_processes", []) if not p.split(" ", 1)[-1].startswith("[")]
    meta["foreign_processes"] = foreign
    if meta.get("foreign_bpf_links") or foreign:
        w(f"- **not alone**: at the start {meta.get('foreign_bpf_links', 0)} BPF links of others were attached"
          + (f" and these ran: {'; '.join('`' + p + '`' for p in meta.get('foreign_processes', []))}"
             if meta.get("foreign_processes") else "")
          + ". Their cost is in the baselines too (a syscall tracepoint of theirs taxes every baseline syscall), "
          "so ratios understate the cost of a tracer on an otherwise idle machine.")
    total = next((r["seconds"] for r in by_type("timing") if r["part"] == "total"), None)
    if args.wall_seconds:
        w(f"- whole run (with build and report) {args.wall_seconds / 60:.1f} min"
          + (f"; measurements {total / 60:.1f} min" if total else " (incomplete: no end marker)"))
    for n in by_type("note"):
        w(f"- {n['text']}")
    if args.label == "guest":
        w("- **guest figures**: single-threaded TCG emulation; compare guest ratios with each other, "
          "not with host times")
    w("")

    # ---- inside BPF (bpf_stats)
    kstats = by_type("kstats")
    if kstats:
        section("Inside BPF: ns per deletion (kernel.bpf_stats_enabled)")
        w("The kernel's own figure: run_time_ns / deletions of every program the tracer holds, summed, "
          f"over {meta.get('count', '?')} unlinks per round, rounds interleaved (median, min-max). "
          "Per program: ns per run (medians). Ratio: to bpftrace's `@[pid] = count()` on the same hook, "
          "in the same run.")
        w("")
        table("comparison", "ns per deletion", "programs (ns per run)", "ratio to bpftrace @[pid] = count()",
              "rounds", "target")
        med = {}
        kvariants = []
        for k in kstats:
            if k["variant"] not in kvariants:
                kvariants.append(k["variant"])
        for v in kvariants:
            vals = [k["ns_per_deletion"] for k in kstats if k["variant"] == v and k["ns_per_deletion"] is not None]
            if vals:
                med[v] = statistics.median(vals)
        for v in kvariants:
            ks = [k for k in kstats if k["variant"] == v]
            kind, hook, desc = describe(v)
            text, m = spread([k["ns_per_deletion"] for k in ks if k["ns_per_deletion"] is not None], 0)
            progs = {}
            for k in ks:
                for pr in k["programs"]:
                    progs.setdefault(pr["name"], []).append(pr["ns_per_run"])
            # the programs that ran on (nearly) every deletion; the storm's
            # own two rmdirs run the rmdir programs twice per round
            runs = {pr["name"]: pr["runs"] for k in ks for pr in k["programs"]}
            n = ks[0]["deletions"] or 1
            ptext = ", ".join(f"{name} {statistics.median(v_):.0f}" for name, v_ in progs.items()
                              if runs.get(name, 0) * 2 >= n) or "-"
            ref = med.get(KSTATS_REFERENCE.format(m=hook))
            ratio = m / ref if (m is not None and ref) else None
            target = "-"
            if kind == "default" and ratio is not None:
                target = f"<= {KSTATS_DEFAULT_MAX_RATIO}x: " + ("met" if ratio <= KSTATS_DEFAULT_MAX_RATIO else "NOT met")
            elif kind == "stream" and m is not None:
                target = f"<= {KSTATS_STREAM_MAX_NS} ns: " + ("met" if m <= KSTATS_STREAM_MAX_NS else "NOT met")
            w(f"| {desc} | {text} | {ptext} | {fmt(ratio)} | {len(ks)} | {target} |")
        w("")

    # ---- overhead pairs
    pairs = by_type("pair")
    variants = []
    for p in pairs:
        if p["variant"] not in variants:
            variants.append(p["variant"])
    chart_rows = []
    section("Overhead on deletions")
    w("Ratio = ns per unlink with the tracer attached / ns per unlink of the baseline run just before it "
      "(1.00 = free). getppid ratio: the same for an unrelated system call (the syscall tracing tax).")
    w("")
    table("comparison", "unlink ratio median (min-max)", "ns/unlink probe / base (medians)", "getppid ratio median (min-max)", "counted / issued", "lost events (worst run)", "tracer CPU ms per 100k deletes", "tracer peak RSS MiB", "pairs", "target")
    for v in variants:
        ps = [p for p in pairs if p["variant"] == v]
        kind, mode, desc = describe(v)
        ratios = [p["probe"]["storm"]["ns_per_unlink"] / p["base"]["storm"]["ns_per_unlink"] for p in ps]
        pp = [p["probe"]["getppid"]["ns_per_call"] / p["base"]["getppid"]["ns_per_call"] for p in ps]
        rtext, rmed = spread(ratios)
        ptext, pmed = spread(pp)
        probe_ns = statistics.median(p["probe"]["storm"]["ns_per_unlink"] for p in ps)
        base_ns = statistics.median(p["base"]["storm"]["ns_per_unlink"] for p in ps)
        tr = [p["probe"]["tracer"] for p in ps]
        counted = [t.get("counted") for t in tr]
        issued = [p["probe"]["storm"]["deletes"] for p in ps]
        read = [(c, i) for c, i in zip(counted, issued) if c is not None]
        if not read:
            exact = "not read"
        else:
            bad = sum(1 for c, i in read if c != i)
            exact = "exact in all" if bad == 0 else f"{bad} of {len(read)} runs off (min {min(c for c, _ in read)})"
            if len(read) < len(ps):
                exact += f"; {len(ps) - len(read)} not read (tracer killed at stop)"
        lost = [t.get("lost") for t in tr if t.get("lost") is not None]
        cpu = [t["cpu_ms"] * 100000 / i for t, i in zip(tr, issued)]
        rss = max(t.get("hwm_kib", 0) for t in tr) / 1024
        target = TARGETS.get((kind, mode))
        ttext = "-"
        if target is not None:
            ttext = f"<= {target:.2f}: " + ("met" if rmed <= target else "**missed**")
            if kind == "stream":
                ttext += ", 0 drops: " + ("met" if lost and max(lost) == 0 else "**missed**")
        gt = GETPPID_TARGETS.get(mode) if kind in ("count", "default") else None
        if gt is not None:
            ttext += f"; getppid <= {gt:.2f}: " + ("met" if pmed <= gt + 0.02 else "**missed**")
        w(f"| {desc} | {rtext} | {probe_ns:.0f} / {base_ns:.0f} | {ptext} | {exact} | "
          f"{fmt(max(lost) if lost else None)} | {statistics.median(cpu):.0f} | {rss:.1f} | {len(ps)} | {ttext} |")
        chart_rows.append((SHORT[kind].format(m=mode), rmed, min(ratios), max(ratios), pmed, min(pp), max(pp)))
    if not variants:
        w("| (no pairs measured) | | | | | | | | | |")
    w("")
    crowded = [p for p in pairs if p.get("foreign_bpf_links")]
    if crowded:
        w(f"{len(crowded)} of {len(pairs)} pairs started while BPF programs of others were attached "
          f"(up to {max(p['foreign_bpf_links'] for p in crowded)} links): their cost is in both runs of such a pair.")
        w("")

    # ---- exactness and throughput
    exact = by_type("exact")
    if exact:
        section("Exactness, drops, events delivered, daemon CPU and memory")
        table("mode", "configuration", "op", "issued", "deletes counted", "failures counted", "lost events", "events/s delivered", "daemon CPU ms", "daemon peak RSS MiB", "exact")
        for e in exact:
            if e["config"] == "stream":
                s = e.get("summary") or {}
                t = s.get("totals") or {}
                proc = s.get("process") or {}
                deletes, failures = proc.get("deletes"), proc.get("failures")
                lost = t.get("lost_events")
                streamed = t.get("events_streamed")
                rate = f"{streamed / e['delivery_s']:.0f}" if streamed and e.get("delivery_s") else "-"
                ok = deletes == e["issued"]
                conf = "every event streamed"
            else:
                deletes, failures, lost, rate = e["deletes"], e["failures"], e["lost_events"], "-"
                ok = (failures if e["op"] == "fail" else deletes) == e["issued"]
                conf = "default"
            w(f"| {e['mode']} | {conf} | {e['op']} | {e['issued']} | {fmt(deletes)} | {fmt(failures)} | {fmt(lost)} | "
              f"{rate} | {e['cpu_ms']} | {e['hwm_kib'] / 1024:.1f} | {'yes' if ok else '**no**'} |")
        w("")
        w("events/s delivered: events the daemon received (`events_streamed`) divided by the time from the storm's "
          "start until the daemon had printed them all (SIGUSR1 summary).")
        w("")

    idle = by_type("idle")
    if idle:
        section("Wakeups when idle")
        table("mode", "configuration", "wakeups/s (context switches of all daemon threads)", "threads", "deletions elsewhere meanwhile", "window s")
        for i in idle:
            w(f"| {i['mode']} | {i['config']} | {i['switches'] / i['seconds']:.1f} | {i['threads']} | "
              f"{i['deletes_meanwhile']} | {i['seconds']} |")
        w("")

    switch = by_type("switch")
    if switch:
        section("Mode switches during a storm")
        for s in switch:
            ms = [x["ms"] for x in s["switches"]]
            text, _ = spread(ms, 1)
            w(f"- {len(ms)} SetAttachMode calls during {s.get('storms', 1)} back-to-back storms, {s['issued']} deletes in all "
              f"({', '.join(x['from'] + '->' + x['to'] for x in s['switches'])}): "
              f"median (min-max) {text} ms, target <= 100 ms: {'met' if ms and max(ms) <= 100 else '**missed**'}; "
              f"counted {s['deletes']} of {s['issued']} ({'exact' if s['deletes'] == s['issued'] else '**not exact**'})")
        w("")

    top = by_type("top")
    if top:
        section("GetTopProcesses(10) with 10k tracked processes")
        for t in top:
            r = t["result"]
            w(f"- {r['tracked_processes']} tracked, {r['calls']} calls: median {r['median_us']} us, "
              f"p99 {r['p99_us']} us, max {r['max_us']} us")
        w("")

    notes = by_type("skipped") + by_type("error")
    if notes:
        section("Not measured")
        for n in notes:
            if n["type"] == "skipped":
                w(f"- {n['what']}: {n['why']}")
            else:
                w(f"- {n.get('variant', '?')}: failed: {n.get('error', '?')}")
        w("")

    timings = [t for t in by_type("timing") if t["part"] != "total"]
    if timings:
        w("Time per part: " + ", ".join(f"{t['part']} {t['seconds']} s" for t in timings))
        w("")
    if args.png and chart_rows:
        w(f"![chart]({os.path.basename(args.png)})")
        w("")

    with open(args.md, "w") as f:
        f.write("\n".join(out))
    if args.png and chart_rows:
        chart(chart_rows, args, meta, title)


def chart(rows, args, meta, title):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("report: gnuplot not found, no chart (apt-get install gnuplot-nox)", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data.tsv")
        with open(data, "w") as f:
            for i, r in enumerate(rows):
                label = r[0].replace("\t", " ")
                f.write(f"{i}\t{label}\t" + "\t".join(f"{x:.4f}" for x in r[1:]) + "\n")
        n = len(rows)
        # start the bars left of every whisker (noise can make a ratio < 1)
        lo_unlink = min(0.8, min(r[2] for r in rows) * 0.9)
        lo_getppid = min(0.8, min(r[5] for r in rows) * 0.95)
        head = (f"unlinkd benchmark, {title}: kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} CPUs, "
                f"{meta.get('date', '?')[:10]}, commit {args.commit}, modes {','.join(meta.get('modes', []))}")
        script = f"""
set terminal pngcairo size 1400,{260 + 46 * n} font "DejaVu Sans,10"
set output "{args.png}"
set datafile separator "\\t"
set multiplot title "{head}"
set style fill solid 0.6 border -1
set grid xtics
set ytics scale 0
# first comparison at the top
set yrange [{n - 0.3}:-0.7]
set size 0.66,0.94
set origin 0,0
set lmargin 40
set logscale x 2
set xlabel "ns per unlink / interleaved baseline (median, min-max; log scale)"
set title "cost on deletions"
set xrange [{lo_unlink:.3f}:*]
set arrow 1 from 1, graph 0 to 1, graph 1 nohead dashtype 2 lc rgb "gray40"
plot "{data}" using 3:1:({lo_unlink:.3f}):3:($1-0.35):($1+0.35):ytic(2) with boxxyerror lc rgb "#4a7ab5" notitle, \\
     "{data}" using 3:1:4:5 with xerrorbars lc rgb "black" pt 0 notitle, \\
     "{data}" using 5:1:(sprintf(" %.2f", $3)) with labels left offset 0.5,0 notitle
set size 0.34,0.94
set origin 0.66,0
set lmargin 2
set format y ""
unset logscale x
set title "tax on an unrelated syscall (getppid)"
set xlabel "ns per getppid / interleaved baseline"
set xrange [{lo_getppid:.3f}:*]
plot "{data}" using 6:1:({lo_getppid:.3f}):6:($1-0.35):($1+0.35) with boxxyerror lc rgb "#c07a30" notitle, \\
     "{data}" using 6:1:7:8 with xerrorbars lc rgb "black" pt 0 notitle, \\
     "{data}" using 8:1:(sprintf(" %.2f", $6)) with labels left offset 0.5,0 notitle
unset multiplot
"""
        sp = os.path.join(d, "chart.gp")
        with open(sp, "w") as f:
            f.write(script)
        r = subprocess.run([gnuplot, sp], capture_output=True, text=True)
        if r.returncode != 0:
            print("report: gnuplot failed: " + r.stderr[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
