#!/usr/bin/env python3
"""docs/ablation.json from the reports scripts/ablation.sh leaves: one row per grid line,
{"name", "settings": {key: value}, "seeds": [mIoU % per seed, null where not run yet], "mean"}
(the mean only when every seed is there). Usage: ablation_json.py GRID OUT "SEEDS"."""
import json
import sys


def value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main():
    grid, out, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split()
    rows = []
    for line in open(grid, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        name, _, settings = line.partition("\t")
        pairs = [kv.split("=", 1) for kv in settings.split()]
        scores = []
        for s in seeds:
            try:
                with open(f"{out}/{name}/seed_{s}/results.json", encoding="utf-8") as f:
                    scores.append(round(100.0 * json.load(f)["methods"]["t2s"]["miou"], 2))
            except FileNotFoundError:
                scores.append(None)
        mean = round(sum(scores) / len(scores), 2) if scores and None not in scores else None
        rows.append({"name": name, "settings": {k: value(v) for k, v in pairs}, "seeds": scores, "mean": mean})
    json.dump({"rows": rows}, sys.stdout, indent=2)
    sys.stdout.write("\n")


main()
