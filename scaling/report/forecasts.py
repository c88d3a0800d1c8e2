"""How good the points' own forecasts of their final loss were (``trainer.forecast``): each
forecast beside the loss reached, and a figure of one against the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.curves import apart
from .plots import _loglog, _save, plt
from .sections import Frame, Section, fmt


def _forecast(ok: pd.DataFrame) -> pd.DataFrame | None:
    if "forecast_loss" not in ok:
        return None
    done = ok[ok["forecast_loss"].notna() & ok["val_loss"].notna()]
    return done if len(done) else None


def summary(done: pd.DataFrame) -> str:
    """The median error of the forecasts and the share of losses inside their intervals."""
    err = done["forecast_loss"] / done["val_loss"] - 1
    inside = (done["forecast_lo"] <= done["val_loss"]) & (done["val_loss"] <= done["forecast_hi"])
    at = (done["forecast_step"] / done["steps"]).median()
    n = len(done)
    return (f"{n} forecast{'s' * (n != 1)} of the final loss, made at a median {at:.0%} of the steps: "
            f"median error {np.median(np.abs(err)):.1%}, {inside.mean():.0%} inside the 90% interval")  # fmt: skip


LAW = ("forecast_law", "forecast_law_lo", "forecast_law_hi")


def _law(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The law's interval per row, NaN where no law was fitted (the column may hold None)."""
    return tuple(pd.to_numeric(df[c], errors="coerce") for c in LAW[1:])


def _off(done: pd.DataFrame) -> pd.Series:
    """Whether each forecast's interval and the law's (where there was one) do not meet."""
    if "forecast_law" not in done:
        return pd.Series(False, index=done.index)
    lo, hi = _law(done)
    return pd.Series(apart(done["forecast_lo"], done["forecast_hi"], lo, hi) != 0, index=done.index)


def _trend_line(done: pd.DataFrame, stopped: pd.DataFrame) -> str:
    """How many points were off-trend, and whether they ended off the law."""
    off, parts = done[_off(done)], []
    if len(off):
        lo, hi = _law(off)
        outside = apart(off["val_loss"], off["val_loss"], lo, hi) != 0
        parts.append(f"{len(off)} finished point{'s' * (len(off) != 1)}, {outside.sum()} of "
                     "which ended outside the law's interval")  # fmt: skip
    if len(stopped):
        parts.append(f"{len(stopped)} stopped as hopeless (trainer.stop_hopeless)")
    if not parts:
        return ""
    return (
        "Off-trend (the forecast's interval apart from the law's): " + ", and ".join(parts) + ". "
    )


def _row(r, law: bool) -> dict:
    """One forecast's row of the table; a point stopped as hopeless has no final loss."""
    final = r["status"] == "ok"
    row = {"point": r.get("label") or r["point_id"][:8], "N": fmt(r["params"]),
           "at step": f"{int(r['forecast_step']):,}" + (f" of {int(r['steps']):,}" if final else ""),
           "forecast (90%)": f"{r['forecast_loss']:.4f} [{r['forecast_lo']:.4f}, {r['forecast_hi']:.4f}]"}  # fmt: skip
    if law:
        row["law (95%)"] = ("" if pd.isna(r.get("forecast_law")) else
                            f"{r['forecast_law']:.4f} [{r['forecast_law_lo']:.4f}, {r['forecast_law_hi']:.4f}]")  # fmt: skip
    return row | {"final": f"{r['val_loss']:.4f}" if final else "stopped",
                  "error": f"{r['forecast_loss'] / r['val_loss'] - 1:+.1%}" if final else "",
                  "from runs": int(r["forecast_refs"])}  # fmt: skip


def forecasts_section(df_all: pd.DataFrame) -> Section | None:
    """Each forecast, its interval, the law's beside it, the loss reached and the error; with
    the summary line. Points stopped as hopeless are listed without a final loss."""
    if "forecast_loss" not in df_all:
        return None
    status = df_all["status"] if "status" in df_all else pd.Series("ok", index=df_all.index)
    forecast = df_all["forecast_loss"].notna()
    done = df_all[status.eq("ok") & forecast & df_all["val_loss"].notna()]
    stopped = df_all[status.eq("hopeless") & forecast]
    if not len(done) and not len(stopped):
        return None
    law = "forecast_law" in df_all and df_all["forecast_law"].notna().any()
    together = pd.concat([done, stopped]).sort_values(["params", "lr"])
    rows = [_row(r, law) for _, r in together.iterrows()]
    return Section("Forecasts of the final loss", [
        f"{summary(done) + '. ' if len(done) else ''}{_trend_line(done, stopped)}Each point "
        "forecasts at its first evaluation past trainer.forecast of its steps, from the finished "
        "points of the sweep with the same schedule: least squares of their log final loss on their log loss at "
        "that step, log peak lr and log size; a point inside its size's grid of lrs is read off "
        "parabolas in log lr through the grid, weighted to the runs nearest its lr. The law is L(N) through the study points that "
        "had finished, at the point's size: a new run's loss with its 95% interval.",
        Frame(pd.DataFrame(rows)),
    ])  # fmt: skip


def forecast_plot(ok: pd.DataFrame, out_dir: Path, title: str | None = None) -> list[Path]:
    """Forecast against the loss reached, with the 90% intervals and the diagonal."""
    done = _forecast(ok)
    if done is None:
        return []
    fig, ax = plt.subplots(figsize=(5, 5))
    y = done["forecast_loss"].to_numpy()
    yerr = np.stack([y - done["forecast_lo"].to_numpy(), done["forecast_hi"].to_numpy() - y])
    ax.errorbar(done["val_loss"], y, yerr=yerr, fmt="o", capsize=2, label="forecast (90%)")
    lo = min(done["val_loss"].min(), done["forecast_lo"].min()) * 0.95
    hi = max(done["val_loss"].max(), done["forecast_hi"].max()) * 1.05
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, label="forecast = final")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend()
    _loglog(ax, "final validation loss", "forecast of it", title or "forecasts of the final loss")
    if hi / lo < 4:  # too narrow for a log axis's ticks
        ax.set_xscale("linear")
        ax.set_yscale("linear")
    ax.set_aspect("equal")
    return _save(fig, out_dir, "forecasts")
