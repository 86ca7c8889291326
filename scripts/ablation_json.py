#!/usr/bin/env python3
"""docs/ablation.json from the record scripts/ablation.sh keeps (docs/ablation_runs.tsv: name,
seed, mIoU %, date measured, binary, CPU): one row per grid line, {"name", "settings": {key: value},
"seeds": [mIoU % per seed, null where not run yet], "mean"} (the mean only when every seed is
there). Usage: ablation_json.py GRID RECORD "SEEDS"."""
import json
import sys


def value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main():
    grid, record, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split()
    measured, binaries = {}, set()
    for i, line in enumerate(open(record, encoding="utf-8")):
        fields = line.rstrip("\n").split("\t")
        if i == 0 or not line.strip():
            continue
        if len(fields) < 3:
            sys.exit(f"ablation_json: {record} line {i + 1} has {len(fields)} fields, not name, seed, miou, date")
        measured[(fields[0], fields[1])] = float(fields[2])
        if len(fields) > 4:
            binaries.add(" on ".join(fields[4:6]))
    if len(binaries) > 1:
        print(f"ablation_json: warning: {record} mixes runs of {len(binaries)} builds or CPUs ({', '.join(sorted(binaries))}); "
              "their numbers differ by more than the settings may", file=sys.stderr)
    rows = []
    for line in open(grid, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        name, _, settings = line.partition("\t")
        pairs = [kv.split("=", 1) for kv in settings.split()]
        scores = [measured.get((name, s)) for s in seeds]
        mean = round(sum(scores) / len(scores), 2) if scores and None not in scores else None
        rows.append({"name": name, "settings": {k: value(v) for k, v in pairs}, "seeds": scores, "mean": mean})
    json.dump({"rows": rows}, sys.stdout, indent=2)
    sys.stdout.write("\n")


main()
