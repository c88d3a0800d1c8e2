"""What the user sees while a sweep runs: its progress, each finished point, and the points table."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .store import (
    PLAN,
    STATUSES,
    WATCHED,
    collect,
    last_history,
    point_folder,
    read_result,
    split_variant,
)
from .training import forecast

console = Console()
err_console = Console(stderr=True)

STATUS_STYLE = {
    "ok": "green",
    "diverged": "yellow",
    "oom": "magenta",
    "failed": "red",
    "interrupted": "yellow",
    "hopeless": "yellow",
    "pending": "dim",
}


class SweepProgress:
    """Points done / total, the running point and its loss, elapsed and ETA.

    It watches the sweep folder from a background thread rather than hooking the
    training code, so it works the same whichever launcher runs the points.
    """

    def __init__(self, out: Path, points: list[dict], interval: float = 0.5, plans: bool = True):
        self.out, self.points, self.interval = out, points, interval
        # the points' plan lines, printed here in order with their results (local launchers)
        self.plans, self.announced = plans, set()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("starting", total=len(points))
        self.finished: set[str] = set()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        if self.plans:
            os.environ[WATCHED] = "1"
        self.progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.poll()
        self.progress.stop()
        os.environ.pop(WATCHED, None)
        return False

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self):
        running = None
        for p in self.points:
            point_dir = point_folder(self.out, p["point_id"])
            if self.plans and p["point_id"] not in self.announced and (point_dir / PLAN).is_file():
                self.announced.add(p["point_id"])
                console.print((point_dir / PLAN).read_text(), highlight=False, markup=False, soft_wrap=True)
            row = read_result(point_dir) if p["point_id"] not in self.finished else None
            if row is not None and row.get("finished_at", "") >= self.started_at:
                self.finished.add(p["point_id"])
                style = STATUS_STYLE.get(row["status"], "")
                loss = row.get("val_loss")
                loss_s = f"val_loss {loss:.4f}" if isinstance(loss, float) else ""
                wall = row.get("wall_time_s")
                wall_s = f"{wall:.1f}s" if isinstance(wall, float) else ""
                ahead = row.get("forecast_loss")
                if isinstance(ahead, float) and isinstance(loss, float) and loss > 0:
                    loss_s += f" (forecast {ahead:.4f}, {ahead / loss - 1:+.1%})"
                console.print(
                    f"[{style}]{row['status']:>11}[/] {p['label']:<24} N={p['params']:>10,}  {loss_s}  {wall_s}"
                )
            elif p["point_id"] not in self.finished and running is None:
                last = last_history(point_dir)
                if last is not None:
                    running = f"{p['label']}  step {int(last['step'])}  val_loss {float(last['val_loss']):.4f}"
                    ahead = forecast.read(point_dir)
                    if ahead is not None:
                        running += f"  → {ahead['loss']:.4f} [{ahead['lo']:.4f}, {ahead['hi']:.4f}]"
                        running += "  off-trend" if ahead.get("off_trend") else ""
        self.progress.update(
            self.task, completed=len(self.finished), description=running or "running"
        )


TABLE_COLUMNS = {  # column -> (header, format)
    "point_id": (
        "id",
        lambda v: "~".join(filter(None, (split_variant(v)[0][:8], split_variant(v)[1]))),
    ),
    "status": ("status", None),
    "params": ("N", lambda v: f"{int(v):,}"),
    "steps": ("steps", lambda v: f"{int(v):,}"),
    "lr": ("lr", lambda v: f"{v:.3g}"),
    "val_loss": ("val loss", lambda v: f"{v:.4f}"),
    "val_accuracy": ("acc", lambda v: f"{v:.3f}"),
    "flops_total": ("FLOPs", lambda v: f"{v:.2e}"),
    "wall_time_s": ("time s", lambda v: f"{v:.1f}"),
}


def points_table(df, title: str) -> Table:
    # no side rules, one space between columns: nine columns fit 80 characters
    table = Table(
        title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True
    )
    for c, (header, _) in TABLE_COLUMNS.items():
        table.add_column(header, justify="left" if c in ("point_id", "status") else "right")
    for _, r in df.sort_values(["params", "point_id"], na_position="last").iterrows():
        cells = []
        for c, (_, fmt) in TABLE_COLUMNS.items():
            v = r.get(c)
            if v is None or (isinstance(v, float) and v != v):
                cells.append("")
            elif c == "status":
                cells.append(f"[{STATUS_STYLE.get(v, '')}]{v}[/]")
            else:
                cells.append(fmt(v))
        table.add_row(*cells)
    return table


def sweeps_table(root: Path) -> Table | None:
    """Every sweep folder under ``root`` with its points per status; None when there is none."""
    sweeps = sorted(
        p for p in root.glob("*") if (p / "grid.json").exists() or (p / "points").is_dir()
    )
    if not sweeps:
        return None
    table = Table(title=f"sweeps under {root}/")
    counts = {d.name: collect(d)["status"].value_counts() for d in sweeps}
    # ok and pending always; the other statuses where some sweep has them
    statuses = [s for s in (*STATUSES, "pending")
                if s in ("ok", "pending") or any(c.get(s, 0) for c in counts.values())]  # fmt: skip
    for c in ("sweep", "points", *statuses):
        table.add_column(c, justify="left" if c == "sweep" else "right")
    for name, count in counts.items():
        table.add_row(name, str(int(count.sum())), *(str(int(count.get(s, 0))) for s in statuses))
    return table
