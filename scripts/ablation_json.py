#!/usr/bin/env python3
"""docs/ablation.json from the record scripts/ablation.sh keeps (docs/ablation_runs.tsv: name,
seed, mIoU %, date measured, binary, CPU).

A run's number depends on the build and the CPU (docs/results.md), so rows are compared only
within one (binary, CPU) "platform". Each grid line gives one row, {"name", "settings": {key:
value}, "seeds": [mIoU % per seed, null where not run yet], "mean", "platform", and, against the
first baseline of the same platform, "reference", "delta" (per seed) and "delta_mean"}; a row is
taken from the platform with the most complete rows if it is complete there, else from the
platform holding the most of its seeds with complete baselines. "platforms" lists every
platform's baselines, and "base" the settings of the grid's `#base` line, which every row starts
from. Usage: ablation_json.py GRID RECORD "SEEDS" ["BASELINES"] [--markdown]; with
--markdown, the rows as the Markdown table docs/results.md shows instead of the JSON."""
import json
import sys


def as_settings(kvs):
    """`key=value` words as a dict, each value read as JSON where it is JSON."""
    return {k: value(v) for k, _, v in (kv.partition("=") for kv in kvs)}


def value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def mean(xs):
    return round(sum(xs) / len(xs), 2) if xs and None not in xs else None


def main():
    args = [a for a in sys.argv[1:] if a != "--markdown"]
    grid, record, seeds = args[0], args[1], args[2].split()
    baselines = args[3].split() if len(args) > 3 else []
    measured, order = {}, []
    for i, line in enumerate(open(record, encoding="utf-8")):
        fields = line.rstrip("\r\n").split("\t")
        if i == 0 or not line.strip():
            continue
        if len(fields) < 3:
            sys.exit(f"ablation_json: {record} line {i + 1} has {len(fields)} fields, not name, seed, miou, date, binary, cpu")
        platform = " on ".join(fields[4:6]) if len(fields) > 5 else "unrecorded"
        if platform not in order:
            order.append(platform)
        measured[(platform, fields[0], fields[1])] = float(fields[2])

    lines, base = [], []
    for line in open(grid, encoding="utf-8"):
        line = line.rstrip("\r\n")
        if line.startswith("#base") and line[5:6].isspace() and not base:
            base = line[5:].split()
        if line.strip() and not line.startswith("#"):
            name, _, settings = line.partition("\t")
            lines.append((name, settings.split()))
    baselines = [b for b in baselines if b in {n for n, _ in lines}]

    def scores(platform, name):
        return [measured.get((platform, name, s)) for s in seeds]

    def complete(platform, name):
        return None not in scores(platform, name)

    with_baselines = [p for p in order if all(complete(p, b) for b in baselines)]
    # Rows come from platforms with complete baselines (any, while none has them), the one with the
    # most complete rows first (the first in the record on a tie).
    ranked = sorted(with_baselines or order, key=lambda p: -sum(complete(p, n) for n, _ in lines))
    if len(order) > 1:
        print(f"ablation_json: {record} holds runs of {len(order)} builds or CPUs ({', '.join(order)}); "
              "each row is compared with the baselines of its own", file=sys.stderr)

    rows = []
    for name, raw in lines:
        done = [p for p in ranked if complete(p, name)]
        most = max(ranked, key=lambda p: sum(x is not None for x in scores(p, name)), default=None)
        platform = done[0] if done else most if most and any(x is not None for x in scores(most, name)) else None
        row = {"name": name, "settings": as_settings(raw), "raw": raw}
        got = scores(platform, name) if platform else [None] * len(seeds)
        row.update({"seeds": got, "mean": mean(got), "platform": platform})
        if baselines and platform:
            ref = scores(platform, baselines[0])
            delta = [round(a - b, 2) if a is not None and b is not None else None for a, b in zip(got, ref)]
            row.update({"reference": baselines[0], "delta": delta, "delta_mean": mean(delta)})
        rows.append(row)
    platforms = [{"platform": p, "baselines": {b: scores(p, b) for b in baselines}} for p in order]
    if "--markdown" in sys.argv:
        markdown(rows, seeds, baselines, order, platforms)
        return
    for row in rows:
        del row["raw"]
    json.dump({"base": as_settings(base), "rows": rows, "platforms": platforms}, sys.stdout, indent=2)
    sys.stdout.write("\n")


def markdown(rows, seeds, baselines, order, platforms):
    """One table line per row: its settings, mIoU per seed and mean, the difference from the
    reference on each seed and on average, and which platform (numbered in record order); the
    baselines once more for every other platform that holds them complete."""
    def num(x, signed=False):
        return "" if x is None else (f"{x:+.2f}" if signed else f"{x:.2f}").replace("-", "−")
    ref = baselines[0] if baselines else None
    head = ["row", "settings"] + [f"seed {s}" for s in seeds] + ["mean"]
    if ref:
        head += [f"Δ {ref}, per seed", "Δ mean"]
    print("| " + " | ".join(head + ["platform"]) + " |")
    print("|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2) + ["---:"]) + "|")

    def line(name, settings, got, platform):
        cells = [name, settings] + [num(x) for x in got] + [num(mean(got))]
        if ref:
            base = next(p["baselines"][ref] for p in platforms if p["platform"] == platform) if platform else [None] * len(got)
            delta = [round(a - b, 2) if a is not None and b is not None else None for a, b in zip(got, base)]
            cells += [" / ".join(num(d, True) or "–" for d in delta), num(mean(delta), True)]
        cells.append(str(order.index(platform) + 1) if platform in order else "")
        print("| " + " | ".join(cells) + " |")

    for r in rows:
        settings = " ".join(f"`{kv}`" for kv in r["raw"])
        line(r["name"], settings, r["seeds"], r["platform"])
        if r["name"] in baselines:
            for p in platforms:
                got = p["baselines"][r["name"]]
                if p["platform"] != r["platform"] and None not in got:
                    line(r["name"], settings, got, p["platform"])
    print()
    for i, p in enumerate(order):
        print(f"Platform {i + 1}: {p}.")

main()
