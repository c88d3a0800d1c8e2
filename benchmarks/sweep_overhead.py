"""The sweep's own cost per point: composing, validating, launching, writing and gathering.

Runs ``scale sweep`` on grids of tiny points (one training step each) of two
sizes in a temporary folder and prints the marginal wall time per point,
(t(large) - t(small)) / (large - small), and the fixed cost of a sweep (start,
planning, the end-of-sweep fit and report). The end-of-sweep bootstrap, whose
cost grows with the number of points, is turned off (``--bootstrap 0``).

    python benchmarks/sweep_overhead.py [--small 4] [--large 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import redirect_stdout
from io import StringIO

from scaling.cli import main as scale


def sweep_time(n: int, folder: str) -> float:
    widths = ",".join(str(4 + i) for i in range(n))
    args = ["sweep", "mlp_width", f"model.width={widths}", "trainer.steps=1", "trainer.eval_interval=1",
            "trainer.batch_size=16", "--bootstrap", "0", "--out", os.path.join(folder, f"n{n}")]  # fmt: skip
    t = time.perf_counter()
    with redirect_stdout(StringIO()):
        code = scale(args)
    assert code == 0, code
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=4)
    p.add_argument("--large", type=int, default=16)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sweep_time(2, folder)  # warm: imports, data cache
        small, large = sweep_time(args.small, folder), sweep_time(args.large, folder)
    per_point = (large - small) / (args.large - args.small)
    print(f"{args.small} points: {small:.2f} s, {args.large} points: {large:.2f} s")
    print(
        f"per point: {per_point:.3f} s (one training step included); fixed per sweep: {small - args.small * per_point:.2f} s"
    )


if __name__ == "__main__":
    main()
