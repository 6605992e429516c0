"""Regret of the fix ranking on a simulated fleet (issue 5).

One service, one incident type, two fixes. Each incident runs the heal loop's
logic through the agent's own ranking and learning code
(``selfheal.learning.simulation``): try the best-ranked fix, draw its outcome
from the scenario's true success rates, learn, try the other fix if the first
failed. Regret of an incident is the best true rate minus the true rate of
the *first* choice; the curve is its cumulative sum, averaged over seeds.

Strategies compared:

* ``agent``: Thompson sampling, discount 0.9, change detection (the default);
* ``thompson, no forgetting``: Thompson sampling on plain counts;
* ``greedy``: posterior mean, discount 0.9, change detection (no exploration);
* ``before issue 5``: posterior mean on plain counts, what the agent did before.

Usage, from the repository root::

    python benchmarks/ranking_regret.py [--seeds 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from selfheal.decisions.ranking import Strategy  # noqa: E402
from selfheal.learning.simulation import run_scenario, switch_point  # noqa: E402

GOOD = {"A": 0.2, "B": 0.9}
# name: (phases of (incidents, true rates), fixes tried per incident before escalating)
SCENARIOS: dict[str, tuple[list[tuple[int, Mapping[str, float]]], int]] = {
    "stationary: A 20%, B 90%": ([(200, GOOD)], 3),
    "drift: B fails (0%) after 100": ([(100, GOOD), (100, {"A": 0.2, "B": 0.0})], 3),
    "drift: B drops to 10% after 100": ([(100, GOOD), (100, {"A": 0.2, "B": 0.1})], 3),
    "swap: A 90%, B 20% after 100": ([(100, GOOD), (100, {"A": 0.9, "B": 0.2})], 3),
    # without a second attempt nothing but the ranking itself explores
    "one attempt per incident: A 60%, B 90%": ([(200, {"A": 0.6, "B": 0.9})], 1),
}
STRATEGIES: dict[str, tuple[Strategy, float, bool]] = {
    "agent": ("thompson", 0.9, True),
    "thompson, no forgetting": ("thompson", 1.0, False),
    "greedy": ("greedy", 0.9, True),
    "before issue 5": ("greedy", 1.0, False),
}
CHECKPOINTS = (10, 20, 30, 50, 100, 110, 120, 130, 150, 200)


def main(argv: list[str] | None = None) -> None:
    """Run every scenario with every strategy and print the curves."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=100)
    opts = ap.parse_args(argv)
    started = time.perf_counter()
    for name, (phases, attempts) in SCENARIOS.items():
        print(f"\n== {name} ({opts.seeds} seeds); cumulative regret after n incidents")
        print(f"  {'strategy':24s}" + "".join(f"{n:>7d}" for n in CHECKPOINTS))
        notes = []
        for label, (strategy, discount, detect) in STRATEGIES.items():
            curves, b_share, switches = [], [], []
            for seed in range(opts.seeds):
                runs = run_scenario(
                    phases,
                    seed=seed,
                    strategy=strategy,
                    discount=discount,
                    detect_changes=detect,
                    max_attempts=attempts,
                )
                total, curve = 0.0, []
                for r in runs:
                    total += r.regret
                    curve.append(total)
                curves.append(curve)
                first = [r.first_choice for r in runs]
                b_share.append(first[30:40].count("B") / 10)
                if len(phases) > 1:
                    switches.append(switch_point(first[phases[0][0] :], "B"))
            means = [statistics.mean(c[n - 1] for c in curves) for n in CHECKPOINTS]
            print(f"  {label:24s}" + "".join(f"{m:7.1f}" for m in means))
            note = f"  {label:24s} B chosen in incidents 31-40: {statistics.mean(b_share):.1%}"
            if switches:
                done = sorted(s for s in switches if s is not None)
                never = len(switches) - len(done)
                within = sum(1 for s in done if s <= 15) / len(switches)
                if done:
                    note += (
                        f"; switch after drift: median {statistics.median(done):.0f},"
                        f" p90 {done[int(0.9 * (len(done) - 1))]} incidents,"
                        f" within 15: {within:.0%}"
                    )
                note += f", never (within 100): {never}" if never else ""
            notes.append(note)
        print("\n".join(notes))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
