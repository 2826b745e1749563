"""Issue 34's bars for one model, over the `multifusion eval` reports of its seeds (each figure pooled over the
seeds, which share their n; the per-seed figures follow in brackets).

    python reports/bars.py MODEL_DIR eval-seed0.json eval-seed1.json
"""

import json
import sys
from pathlib import Path

LANGS = ("en", "de", "fr", "it", "es")


def pooled(values: list[float]) -> float:
    return sum(values) / len(values)


def relational(paraphrase: dict, lang: str, key: str) -> float:
    """The `key` figure of "{b} to the right of {a}", the second held-out two-object frame of every language."""
    return list(paraphrase[lang][key].values())[1]


def parsed(label: str) -> tuple[str, ...]:
    """("orange", "star", "left") from an eval report's "orange star (left)"."""
    return tuple(label.replace("(", "").replace(")", "").split())


def miss_kinds(miss: dict) -> list[str]:
    """What a two-object miss got wrong: "sides" when both objects are drawn on each other's side, else for each
    wanted object not drawn, "colour", "shape" or "missing" on its side."""
    wanted, seen = [parsed(x) for x in miss["wanted"]], [parsed(x) for x in miss["seen"]]
    if sorted(w[:2] for w in wanted) == sorted(s[:2] for s in seen) and set(wanted) != set(seen):
        return ["sides"]
    kinds = []
    for colour, shape, side in set(wanted) - set(seen):
        there = [s for s in seen if s[2] == side]
        kinds += ["missing"] if not there else ["colour"] * (there[0][0] != colour) + ["shape"] * (there[0][1] != shape)
    return kinds


def main(model: str, paths: list[str]) -> int:
    runs = [json.loads(Path(p).read_text())["benchmarks"] for p in paths]
    rows, unmeasured = [], []  # rows: (bar, figures per language or kind, threshold, at least / at most)

    def per(name: str, benchmark: str, get, threshold: float, keys=LANGS, most: bool = False) -> None:
        measured = [r for r in runs if benchmark in r]  # a report may hold some benchmarks only
        if not measured:
            unmeasured.append(name)
            return
        rows.append((name, {k: [get(r[benchmark], k) for r in measured] for k in keys}, threshold, most))

    per("terse single", "terse", lambda b, l: b[l]["single"], 0.95)
    per("terse pairs", "terse", lambda b, l: b[l]["pair"], 0.85)
    per("paraphrase pairs", "paraphrase", lambda b, l: b[l]["pair"], 0.90)
    per("relational frame", "paraphrase", lambda b, l: relational(b, l, "pair_by_frame"), 0.75)
    per("single", "single", lambda b, l: b[l]["accuracy"], 0.95)
    per("paraphrase single", "paraphrase", lambda b, l: b[l]["single"], 0.95)
    per("image renderer", "image_prompt", lambda b, k: b[k]["accuracy"], 0.95, ("renderer",))
    per("image foreign", "image_prompt", lambda b, k: b[k]["accuracy"], 0.90, ("foreign",))
    per("mcc text", "mcc", lambda b, k: b[k]["accuracy"], 0.95, ("text",))
    per("mcc multimodal, mixed", "mcc", lambda b, k: b[k]["accuracy"], 0.90, ("multimodal", "mixed"))
    per("weight 0 shows its object", "weights", lambda b, k: b["0"]["weighted_present"], 0.05, ("0",), most=True)
    per("language gap to en", "languages", lambda b, l: b[l]["gap_to_en"], 0.05, LANGS[1:], most=True)
    met_all = True
    for name, figures, threshold, most in rows:
        cells, met = [], True
        for key, values in figures.items():
            value = pooled(values)
            met &= value <= threshold if most else value >= threshold
            cells.append(f"{key} {100 * value:.1f} [{' / '.join(f'{100 * v:.1f}' for v in values)}]")
        met_all &= met
        print(f"{'met    ' if met else 'NOT MET'} {name} ({'<=' if most else '>='} {100 * threshold:.0f} %): {'; '.join(cells)}")
    sided = [r["paraphrase"] for r in runs if "pair_sides_by_frame" in r.get("paraphrase", {}).get("en", {})]
    if sided:  # not a bar: whether the relational frame's objects land on their named sides
        cells = [f"{l} {100 * pooled([relational(b, l, 'pair_sides_by_frame') for b in sided]):.1f}" for l in LANGS]
        print(f"(info) relational frame, both objects on their sides: {'; '.join(cells)}")
    listed = [b for b in sided if "misses" in b["en"]]  # reports before the misses were listed have none
    if listed:  # not a bar: what the two-object paraphrases drawn wrong got wrong
        cells = []
        for l in LANGS:
            misses = [m for b in listed for m in b[l]["misses"]["pair_sides"]]
            kinds = [k for m in misses for k in miss_kinds(m)]
            counts = ", ".join(f"{k} {kinds.count(k)}" for k in ("sides", "colour", "shape", "missing") if k in kinds)
            cells.append(f"{l} {len(misses)}" + (f" ({counts})" if counts else ""))
        print(f"(info) paraphrase two-object misses, and what was wrong (whole pairs on swapped sides, else objects"
              f" by colour, shape, missing): {'; '.join(cells)}")
    files = [p for p in Path(model).rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files) / 2**20
    weights = [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".safetensors")]
    plain = all(p.suffix == ".safetensors" for p in weights)
    small = size <= 40 and plain
    met_all &= small
    print(f"{'met    ' if small else 'NOT MET'} size {size:.1f} MB (<= 40), weights safetensors only: {plain}")
    if unmeasured:
        print(f"NOT MEASURED (no report has its benchmark): {', '.join(unmeasured)}")
    print("some bar not met" if not met_all else "every measured bar met" if unmeasured else "every bar met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
