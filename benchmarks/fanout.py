"""Fan-out of the ETHOS learning curve: the same grid on the local task runner and on a Dask
LocalCluster made for the run (two worker processes on this machine), one after the other in one
run, through the toxicity-learning-curve flow on the local stack (as a deployment would run it).

    python benchmarks/fanout.py                      # quick profile, 4 grid points
    python benchmarks/fanout.py --runners dask://HOST:PORT --set learning_curve.sizes=[200,400]

Prints each runner's wall time, the workers that ran the points and the points' F1, then the
speed-up of every runner against the first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# After the path line above: the benchmarks run as scripts from benchmarks/, not as a package.
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from modelgate.flows.toxicity_learning_curve import toxicity_learning_curve  # noqa: E402
from modelgate.runner import ensure_services  # noqa: E402
from modelgate.settings import load_settings  # noqa: E402

GRID = ["learning_curve.sizes=[200]", "learning_curve.epochs=[2,3,4,5]"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", default="local,dask", help="comma-separated task runners, first is the reference")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    args = parser.parse_args()
    overrides = GRID + args.overrides
    api_url = ensure_services(load_settings())
    print(f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}; profile {args.profile}; {' '.join(overrides)}",
          flush=True)
    timings = {}
    with temporary_settings({PREFECT_API_URL: api_url}):
        for index, runner in enumerate(args.runners.split(",")):
            # Trained models are reused by key (data, config, seed): a seed of its own per runner
            # makes every runner train every point.
            seeded = overrides + [f"seed={1000 + index}"]
            started = time.monotonic()
            result = toxicity_learning_curve(profile=args.profile, overrides=seeded, task_runner=runner)
            timings[runner] = time.monotonic() - started
            points = result["points"]
            workers = sorted({str(p.get("worker")) for p in points})
            f1 = ", ".join(f"{p['f1']:.4f}" for p in points)
            reused = sum(bool(p.get("reused")) for p in points)
            print(f"{runner}: {len(points)} points ({reused} reused) in {timings[runner]:.1f} s; "
                  f"workers {workers}; F1 {f1}",
                  flush=True)
    reference = next(iter(timings))
    for runner, seconds in timings.items():
        print(f"speed-up {runner} vs {reference}: {timings[reference] / seconds:.2f}x")


if __name__ == "__main__":
    main()
