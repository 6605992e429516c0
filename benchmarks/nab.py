"""NAB benchmark of the streaming anomaly detector, scored on data not used to choose it.

Runs the detector (selfheal.learning.anomaly) over every data file for each
setting of a small grid, caches the scores, and scores them with the NAB
scorer (``../shared/tools/nab_score.py``, imported, not copied). It prints:

1. **Headline: leave-one-category-out (LOCO).** For each of the categories,
   the setting and the threshold are chosen on the other categories only
   (best normalised standard score there), then the left-out category is
   scored with them. The headline is the NAB score over all files so scored.
2. **Leave-one-file-out (LOFO)**, the same with one file left out at a time.
3. **In-sample** (setting and threshold chosen on every file, NAB's own
   convention), printed last and labelled as such: it overstates what unseen
   data will give.

Thresholds are chosen on a grid of 0.0025 steps (the in-sample line also
gives the scorer's exact sweep). Detector scores are cached per setting in
``.cache/nab/`` under a key that includes the detector's source, so a rerun
after no change takes seconds.

Usage, from the repository root::

    python benchmarks/nab.py [--data DIR] [--labels JSON] [--scorer PY] [--jobs N] [--no-cache]
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import importlib.util
import json
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from selfheal.learning.anomaly import AnomalyConfig, score_series  # noqa: E402

PROFILES = {"standard": 1.0, "reward_low_FP_rate": 1.0, "reward_low_FN_rate": 2.0}
# Threshold grid: scores are bits / (bits + alert_bits), the alert level is 0.5.
GRID = [round(0.30 + 0.0025 * i, 4) for i in range(201)]

# The settings the folds choose from. Each is a switch with a reason of its
# own (not a value fitted to a NAB file): the default, and each of the three
# views that can be left out (confirmation, seasonal, 8-hour block means).
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-confirm": {"confirm_block": 0},
    "no-season": {"seasonal_block": 0},
    "no-8h": {"block_sizes": (1, 24)},
}

Curve = list[float]  # raw NAB score of one file at each grid threshold


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; defaults point at the shared NAB copy."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED / "datasets/nab/data")
    ap.add_argument(
        "--labels", type=Path, default=SHARED / "datasets/nab/labels/combined_windows.json"
    )
    ap.add_argument("--scorer", type=Path, default=SHARED / "tools/nab_score.py")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache/nab")
    ap.add_argument("--no-cache", action="store_true", help="recompute every setting")
    return ap.parse_args(argv)


def load_scorer(path: Path) -> ModuleType:
    """Import the shared NAB scorer as a module."""
    spec = importlib.util.spec_from_file_location("nab_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import the NAB scorer from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_series(path: Path) -> tuple[list[float], list[float]]:
    """Unix times and values of a NAB data file."""
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        rows = [r for r in reader if r]
    t_col, v_col = header.index("timestamp"), header.index("value")
    times = [datetime.fromisoformat(r[t_col].strip()).replace(tzinfo=UTC).timestamp() for r in rows]
    return times, [float(r[v_col]) for r in rows]


def detect_file(job: tuple[Path, dict[str, Any]]) -> tuple[list[float], float]:
    """Scores of one file under one setting, and the detector's CPU seconds."""
    path, setting = job
    times, values = read_series(path)
    start = time.process_time()
    scores = score_series(times, values, AnomalyConfig(**setting))
    return scores, time.process_time() - start


def cache_key(name: str, setting: dict[str, Any]) -> str:
    """Changes whenever the setting or the detector's source changes."""
    digest = hashlib.sha256(repr(sorted(setting.items())).encode())
    for source in sorted((REPO / "src/selfheal/learning").glob("anomaly*.py")):
        digest.update(source.read_bytes())
    return f"{name}-{digest.hexdigest()[:16]}"


def all_scores(
    opts: argparse.Namespace, names: list[str]
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """Scores per setting per file (cached), and CPU us per sample per computed setting."""
    opts.cache.mkdir(parents=True, exist_ok=True)
    scores: dict[str, dict[str, list[float]]] = {}
    cost: dict[str, float] = {}
    todo = []
    for name, setting in SETTINGS.items():
        path = opts.cache / f"{cache_key(name, setting)}.json"
        if path.exists() and not opts.no_cache:
            cached = json.loads(path.read_text())
            scores[name], cost[name] = cached["scores"], cached["us_per_sample"]
        else:
            todo.append((name, setting, path))
    if todo:
        jobs = [(opts.data / rel, setting) for _, setting, _ in todo for rel in names]
        with ProcessPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
            done = iter(pool.map(detect_file, jobs, chunksize=4))
            for name, _, path in todo:
                results = [next(done) for _ in names]
                scores[name] = {rel: s for rel, (s, _) in zip(names, results, strict=True)}
                rows = sum(len(s) for s, _ in results)
                cost[name] = 1e6 * sum(c for _, c in results) / rows
                path.write_text(json.dumps({"scores": scores[name], "us_per_sample": cost[name]}))
    return scores, cost


class Folds:
    """Curves for every (setting, file) of one profile, and the fold arithmetic."""

    def __init__(self, curves: dict[str, dict[str, Curve]], windows: dict[str, int], fn: float):
        self.curves, self.windows, self.fn = curves, windows, fn

    def normalised(self, raw: float, files: list[str]) -> float:
        """NAB normalisation: null detector 0, perfect 100 (nan without windows)."""
        n = sum(self.windows[f] for f in files)
        return 100.0 * (raw + self.fn * n) / ((1.0 + self.fn) * n) if n else float("nan")

    def choose(self, files: list[str]) -> tuple[str, int, float]:
        """Best (setting, grid index) on these files, and the raw score there."""
        best = ("", 0, -float("inf"))
        for name, per_file in self.curves.items():
            total = [sum(v) for v in zip(*(per_file[f] for f in files), strict=True)]
            i = max(range(len(GRID)), key=lambda k: (total[k], -abs(GRID[k] - 0.5)))
            if total[i] > best[2] + 1e-12:
                best = (name, i, total[i])
        return best

    def held_out(self, groups: dict[str, list[str]]) -> tuple[float, list[tuple[str, Any]]]:
        """Choose on everything but each group, score the group; total normalised score."""
        everything = [f for files in groups.values() for f in files]
        raw, chosen = 0.0, []
        for key, files in groups.items():
            train = [f for f in everything if f not in set(files)]
            name, i, train_raw = self.choose(train)
            test_raw = sum(self.curves[name][f][i] for f in files)
            raw += test_raw
            chosen.append(
                (key, (name, GRID[i], self.normalised(train_raw, train), test_raw, files))
            )
        return self.normalised(raw, everything), chosen


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the report."""
    opts = parse_args(argv)
    scorer = load_scorer(opts.scorer)
    labels = scorer.load_labels(str(opts.labels))
    names = sorted(labels)
    wall = time.perf_counter()
    scores, cost = all_scores(opts, names)
    print(f"files {len(names)}, settings {len(SETTINGS)}: {', '.join(SETTINGS)}")
    print(f"scores ready in {time.perf_counter() - wall:.1f} s (cache {opts.cache})")
    print(
        "detector CPU per sample (when computed): "
        + ", ".join(f"{n} {c:.1f} us" for n, c in cost.items())
    )
    base_cases = {}
    for rel in names:
        ts = [scorer.parse_ts(r[0]) for r in scorer.read_csv_columns(str(opts.data / rel))[1]]
        base_cases[rel] = scorer.FileCase(rel, ts, labels[rel], [])
    windows = {rel: len(c.windows) for rel, c in base_cases.items()}
    categories: dict[str, list[str]] = {}
    for rel in names:
        categories.setdefault(rel.split("/")[0], []).append(rel)

    folds: dict[str, Folds] = {}
    for profile, fn in PROFILES.items():
        weights = scorer.PROFILES[profile]
        curves: dict[str, dict[str, Curve]] = {}
        for name in SETTINGS:
            curves[name] = {}
            for rel in names:
                case = copy.copy(base_cases[rel])
                case.scores = scores[name][rel]
                curves[name][rel] = _curve(case, weights)
        folds[profile] = Folds(curves, windows, fn)

    report(folds, categories, names, scorer, base_cases, scores)


def _curve(case: Any, w: dict[str, float]) -> Curve:
    """Raw score of one file at every grid threshold, from the scorer's own events."""
    events = sorted(case.events(w), key=lambda e: -e[0])
    out, total, j = [], -w["fn"] * len(case.windows), 0
    for thr in reversed(GRID):
        while j < len(events) and events[j][0] >= thr:
            total += events[j][1]
            j += 1
        out.append(total)
    return out[::-1]


def report(
    folds: dict[str, Folds],
    categories: dict[str, list[str]],
    names: list[str],
    scorer: ModuleType,
    base_cases: dict[str, Any],
    scores: dict[str, dict[str, list[float]]],
) -> None:
    """Print LOCO (headline), LOFO, then in-sample."""
    std = folds["standard"]
    loco, chosen = std.held_out(categories)
    print(f"\nHEADLINE  leave-one-category-out NAB standard score: {loco:.1f}")
    print("  per fold: setting and threshold chosen on the other categories -> held-out category")
    for cat, (name, thr, train_score, test_raw, files) in chosen:
        test = std.normalised(test_raw, files)
        shown = f"{test:5.1f}" if test == test else f"raw {test_raw:+.2f} (no windows)"
        print(f"  {cat:22s} {name:11s} thr {thr:.4f} (train {train_score:5.1f})  held out {shown}")
    for profile in ("reward_low_FP_rate", "reward_low_FN_rate"):
        print(f"  {profile}: {folds[profile].held_out(categories)[0]:.1f}")

    lofo, per_file = std.held_out({rel: [rel] for rel in names})
    picks = Counter((name, thr) for _, (name, thr, *_rest) in per_file)
    print(f"\nleave-one-file-out NAB standard score: {lofo:.1f}")
    print(
        "  choices over the 44 folds: "
        + ", ".join(f"{n} thr {t:.4f} x{k}" for (n, t), k in picks.most_common())
    )

    print("\nIN-SAMPLE (chosen on the same files it is scored on; optimistic):")
    for profile, f in folds.items():
        name, i, raw = f.choose(names)
        print(f"  {profile:20s} {f.normalised(raw, names):5.1f}  ({name}, thr {GRID[i]:.4f})")
    w = scorer.PROFILES["standard"]
    cases = []
    for rel in names:
        case = copy.copy(base_cases[rel])
        case.scores = scores["default"][rel]
        cases.append(case)
    thr, _ = scorer.optimise(cases, w)
    exact = scorer.summarise(cases, thr, w)
    at_half = scorer.summarise(cases, 0.5, w)
    print(
        f"  default setting, exact sweep: {exact['score']:.2f} at {thr:.4f}"
        f" ({exact['windows_detected']}/{exact['windows']} windows,"
        f" {exact['false_positive_rows']} FP rows); at its alert level 0.5:"
        f" {at_half['score']:.2f}"
    )


if __name__ == "__main__":
    main()
