"""NAB benchmark of the streaming anomaly detector (selfheal.learning.anomaly).

Runs the detector over every data file, writes one detection CSV per file in
the scorer's layout, calls the NAB scorer (``../shared/tools/nab_score.py``
next to the repository by default) and prints:

* the standard-profile score at the corpus-wide threshold the scorer
  optimises, and that threshold;
* per profile and per category, the scores at that same threshold;
* the profiles' own optimised scores (how NAB reports detectors);
* a hold-out check: threshold optimised on every other file (sorted by name)
  and applied to the remaining half, both ways round;
* CPU time of the detector alone, in microseconds per sample.

Usage, from the repository root::

    python benchmarks/nab.py [--data DIR] [--labels JSON] [--out DIR] [--scorer PY]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from selfheal.learning.anomaly import AnomalyConfig, score_series  # noqa: E402

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; defaults point at the shared NAB copy."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED / "datasets/nab/data")
    ap.add_argument(
        "--labels", type=Path, default=SHARED / "datasets/nab/labels/combined_windows.json"
    )
    ap.add_argument("--out", type=Path, default=None, help="detections folder (default: temp)")
    ap.add_argument("--scorer", type=Path, default=SHARED / "tools/nab_score.py")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    return ap.parse_args(argv)


def detect_file(args: tuple[Path, Path]) -> tuple[int, float]:
    """Score one data file into a detection CSV; return (rows, detector CPU seconds)."""
    data_path, out_path = args
    with data_path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        rows = [r for r in reader if r]
    t_col, v_col = header.index("timestamp"), header.index("value")
    stamps = [r[t_col].strip() for r in rows]
    times = [_unix(s) for s in stamps]
    values = [float(r[v_col]) for r in rows]
    start = time.process_time()
    scores = score_series(times, values, AnomalyConfig())
    cpu = time.process_time() - start
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, row, score in zip(stamps, rows, scores, strict=True):
            writer.writerow([stamp, row[v_col].strip(), repr(score)])
    return len(rows), cpu


def _fmt(threshold: object) -> str:
    return f"{threshold:.4f}" if isinstance(threshold, float) else "none"


def _unix(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def run_scorer(
    opts: argparse.Namespace, detections: Path, labels: Path, threshold: float | None
) -> dict[str, dict[str, object]]:
    """Run nab_score.py and return its JSON results per profile."""
    cmd = [
        sys.executable,
        str(opts.scorer),
        "--data",
        str(opts.data),
        "--labels",
        str(labels),
        "--detections",
        str(detections),
        "--json",
        "-",
    ]
    cmd += ["--optimize"] if threshold is None else ["--threshold", repr(threshold)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, dict[str, object]] = json.loads(done.stdout)
    return result


def category_scores(result: dict[str, object], fn_weight: float) -> dict[str, str]:
    """Normalised score per category from the scorer's per-file breakdown."""
    per_file = result["per_file"]
    assert isinstance(per_file, dict)
    cats: dict[str, list[dict[str, float]]] = {}
    for name, f in per_file.items():
        cats.setdefault(name.split("/")[0], []).append(f)
    out = {}
    for cat, files in sorted(cats.items()):
        raw = sum(f["score"] for f in files)
        windows = sum(f["windows"] for f in files)
        detected = sum(f["detected"] for f in files)
        fps = sum(f["fp_rows"] for f in files)
        if windows:
            null, perfect = -fn_weight * windows, 1.0 * windows
            norm = 100.0 * (raw - null) / (perfect - null)
            out[cat] = f"{norm:6.1f}", f"{detected}/{windows} windows, {fps} FP rows"
        else:
            out[cat] = f"raw {raw:+.2f}", f"no windows, {fps} FP rows"
    return {cat: f"{score:>9s}  ({info})" for cat, (score, info) in out.items()}


def holdout(opts: argparse.Namespace, detections: Path, work: Path) -> list[str]:
    """Optimise the standard threshold on one half of the files, apply it to the other."""
    labels = json.loads(opts.labels.read_text())
    names = sorted(labels)
    halves = {"even": names[0::2], "odd": names[1::2]}
    paths = {}
    for key, subset in halves.items():
        paths[key] = work / f"labels_{key}.json"
        paths[key].write_text(json.dumps({n: labels[n] for n in subset}))
    lines = []
    for train, test in (("even", "odd"), ("odd", "even")):
        tuned = run_scorer(opts, detections, paths[train], None)["standard"]
        thr = tuned["threshold"]
        if not isinstance(thr, float):
            lines.append(f"  tuned on {train} files: no useful threshold")
            continue
        applied = run_scorer(opts, detections, paths[test], thr)["standard"]
        lines.append(
            f"  threshold {thr:.4f} tuned on {train} files ({tuned['score']:.1f} there)"
            f" -> {applied['score']:.1f} on the {test} files"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the report."""
    opts = parse_args(argv)
    labels = json.loads(opts.labels.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        detections = opts.out or work / "detections"
        jobs = [(opts.data / rel, detections / rel) for rel in sorted(labels)]
        wall = time.perf_counter()
        with ProcessPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
            done = list(pool.map(detect_file, jobs))
        rows = sum(n for n, _ in done)
        cpu = sum(c for _, c in done)
        wall = time.perf_counter() - wall
        print(f"files {len(jobs)}, samples {rows}, detection wall time {wall:.1f} s")
        print(f"detector CPU: {1e6 * cpu / rows:.1f} us per sample")

        optimised = run_scorer(opts, detections, opts.labels, None)
        std = optimised["standard"]
        thr = std["threshold"]
        if not isinstance(thr, float):
            print("no threshold beats the null detector")
            return
        print(f"\nNAB standard score {std['score']:.2f} at corpus-wide threshold {thr:.4f}")
        fixed = run_scorer(opts, detections, opts.labels, thr)
        print(f"\nper profile at threshold {thr:.4f} (profile's own optimum in brackets):")
        for p in PROFILES:
            r, o = fixed[p], optimised[p]
            print(
                f"  {p:20s} {r['score']:6.2f}  [{o['score']:6.2f} at {_fmt(o['threshold'])}]"
                f"  windows {r['windows_detected']}/{r['windows']},"
                f" FP rows {r['false_positive_rows']}"
            )
        own = run_scorer(opts, detections, opts.labels, 0.5)
        print("\nat the detector's own alert level 0.5 (no threshold tuning at all):")
        for p in PROFILES:
            print(f"  {p:20s} {own[p]['score']:6.2f}")
        for p, fn_weight in zip(PROFILES, (1.0, 1.0, 2.0), strict=True):
            print(f"\n{p} per category at threshold {thr:.4f}:")
            for cat, text in category_scores(fixed[p], fn_weight).items():
                print(f"  {cat:24s} {text}")
        print("\nhold-out (threshold tuned on alternate files by sorted name):")
        for line in holdout(opts, detections, work):
            print(line)
        if opts.out:
            print(f"\ndetections kept in {opts.out}")


if __name__ == "__main__":
    main()
