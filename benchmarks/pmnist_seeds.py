"""p-MNIST over several seeds at once: ACC and capacity of model.tsn per seed, with the mean
and the worst seed, so a setting is judged on more than one draw.

    python benchmarks/pmnist_seeds.py --seeds 0 1 2 3 --jobs 2 --threads 1 --out runs/seeds
    python benchmarks/pmnist_seeds.py --q threshold=0.15 --out runs/seeds-q015

Each seed runs in its own process (``--jobs`` at a time, ``--threads`` torch threads each) into
``OUT/seed<N>``; a finished seed's folder is reused (resumed), so a cut sweep continues. Prints a
table and writes ``OUT/seeds.json``. Overrides are the preset's settings, as in pmnist.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pmnist import overrides

from tinysubnets import RunConfig, run


def one_seed(settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """Run (or resume) one seed; return what the table shows."""
    cfg = RunConfig.for_scenario("pmnist", **settings)
    result, _ = run(cfg, out=out, resume=(out / "checkpoint.pt").exists(), progress=False)
    return {
        "seed": cfg.seed,
        "acc": result.acc,
        "bwt": result.bwt,
        "capacity_pct": result.model["total_pct"],
        "parts_pct": result.model["parts_pct"],
        "file_bytes": result.model["file_bytes"],
        "last_row": result.R[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/pmnist-seeds"))
    for flag, what in (("--train", "training"), ("--prune", "post-pruning"),
                       ("--q", "quantization")):
        parser.add_argument(flag, action="append", default=[], metavar="KEY=VALUE",
                            help=f"override a {what} setting of the preset")
    args = parser.parse_args()
    base = {"tasks": args.tasks, "data_dir": str(args.data_dir), "threads": args.threads,
            "train": overrides(args.train), "prune": overrides(args.prune),
            "quantize": overrides(args.q)}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(one_seed, {**base, "seed": s}, args.out / f"seed{s}")
                   for s in args.seeds]
        rows = [f.result() for f in futures]
    print(f"{'seed':>4} {'ACC':>7} {'BWT':>6} {'capacity %':>10} {'file bytes':>10}")
    for r in rows:
        print(f"{r['seed']:>4} {r['acc']:>7.2f} {r['bwt']:>6.2f} {r['capacity_pct']:>10.2f} "
              f"{r['file_bytes']:>10}")
    accs, caps = [r["acc"] for r in rows], [r["capacity_pct"] for r in rows]
    print(f"mean {statistics.mean(accs):>7.2f} {'':>6} {statistics.mean(caps):>10.2f}")
    print(f"worst {min(accs):>6.2f} {'':>6} {max(caps):>10.2f}")
    summary = {"settings": {k: v for k, v in base.items() if k != "data_dir"}, "runs": rows,
               "acc_mean": statistics.mean(accs), "acc_min": min(accs),
               "capacity_mean": statistics.mean(caps), "capacity_max": max(caps)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "seeds.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
