"""Mean paraphrase pair accuracy per language and mcc over the seed reports in a folder."""
import json, sys
from pathlib import Path
reports = [json.loads(p.read_text())["benchmarks"] for p in sorted(Path(sys.argv[1]).glob("default-seed*.json"))]
print(f"{len(reports)} seeds")
for lang in ("en", "de", "fr", "it", "es"):
    pairs = [r["paraphrase"][lang]["pair"] for r in reports]
    single = [r["paraphrase"][lang]["single"] for r in reports]
    rel = [list(r["paraphrase"][lang]["pair_by_frame"].values())[1] for r in reports]
    print(lang, "pair", [round(100 * p, 1) for p in pairs], "mean", round(100 * sum(pairs) / len(pairs), 1),
          "single mean", round(100 * sum(single) / len(single), 1), "relational", [round(7 * x) for x in rel])
if "mcc" in reports[0]:
    for kind in ("text", "multimodal", "mixed"):
        print("mcc", kind, round(100 * sum(r["mcc"][kind]["accuracy"] for r in reports) / len(reports), 1))
