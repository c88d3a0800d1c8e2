"""Run health: what in a study's runs makes its law less trustworthy, one line each, with the fix.

``check(rows, histories)`` reads the results table (every row, statuses included) and the
points' histories (``store.read_histories``) and returns ``Finding``s: overfitting,
under-training, an lr or batch at the edge of what was tried, too few sizes or too narrow a
span, a saturated largest size, tokens per parameter and warmup for language models,
divergence and loss spikes, seeds that scatter more than sizes differ. Nothing trains or plots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..store import is_tuning, read_histories

# thresholds, with the reason for each
OVERFIT = 0.01  # final validation loss this far above its best: the fitted loss is not the best
# val loss fell this much over the last tenth of training, and that tenth brought this share of
# the run's whole fall: still learning fast. (A decaying lr's last steps gain a little: not this.)
STILL_FALLING, LAST_SHARE = 0.02, 0.05
MIN_SIZES, MIN_SPAN = 5, 30.0  # fewer sizes or a narrower span cannot pin an exponent
MIN_TOKENS_PER_PARAM = 10.0  # below, LMs sit far from the compute-optimal regime (Chinchilla: ~20)
TOKENS_SPREAD = 4.0  # tokens per parameter differing more than this across sizes mixes regimes
WARMUP_TOKENS = 5.0  # warmup over more than this many tokens per parameter (Porian et al. 2024: ~N)
STUCK = 0.01  # validation loss at the end within this of the first evaluation: it never learned
SPIKE = 0.3  # train loss rising this much from one evaluation to the next after the warmup
SEED_NOISE = 1.0  # seeds' spread (SD) larger than this times the smallest gap between sizes

# settings that name what a run tried rather than which experiment it belongs to
_TRIED = {"optim.lr": "lr", "trainer.batch_size": "batch size"}
_IGNORED = {"trainer.seed", "trainer.threads", "trainer.device", "trainer.checkpoint_every",
            "trainer.profile", "trainer.pack_seeds", "trainer.forecast", "trainer.stop_hopeless",
            "logger.name", "out"}  # fmt: skip
STOPPED = ("diverged", "hopeless")  # runs that ended early, worse than any that finished


@dataclass(frozen=True)
class Finding:
    kind: str  # the check's name: overfitting, under-training, edge, no gain, spikes, …
    text: str  # what was seen
    fix: str  # what to do about it

    def line(self) -> str:
        return f"{self.kind}: {self.text}. {self.fix}"


def check(rows: pd.DataFrame, histories: dict | None = None, x: str = "params",
          y: str = "val_loss") -> list[Finding]:  # fmt: skip
    """Every finding about a study's runs (``rows``: a results table; ``histories``: point id ->
    its history table)."""
    histories = histories or {}
    ok = rows[rows["status"].eq("ok")] if "status" in rows else rows
    trained = ok[~is_tuning(ok)]
    findings = []
    findings += _overfitting(trained, histories, y)
    findings += _under_training(trained, histories)
    # a diverged run, or one stopped as hopeless, was tried too: worse than any that finished
    tried = rows[rows["status"].isin(["ok", *STOPPED])] if "status" in rows else rows
    findings += _edges(tried, y)
    findings += _sizes(trained, x)
    findings += _no_gain(trained, x, y)
    findings += _language(trained)
    findings += _divergence(rows[~is_tuning(rows)], histories)  # tuning grids may diverge
    findings += _seeds(trained, x, y)
    return findings


def check_table(table, x: str = "params", y: str = "val_loss") -> list[Finding]:
    """``check`` on a study read by ``store.load_table``, with its points' histories."""
    keep = table.all["role"] != "trunk" if "role" in table.all else slice(None)  # no finished run
    return check(table.all.loc[keep], read_histories(table.sweep_dir) if table.sweep_dir else {}, x, y)


def learned(history: pd.DataFrame) -> bool:
    """Whether the validation loss fell by ``STUCK`` from its first evaluation (True for one)."""
    if history is None or len(history) < 2:
        return True
    return history["val_loss"].iloc[-1] < history["val_loss"].iloc[0] * (1 - STUCK)


def _settings(df: pd.DataFrame, but: str | None = None) -> list[str]:
    """The config columns that name an experiment (bookkeeping ones aside), ``but`` one."""
    return [c for c in df.columns if "." in c and c not in _IGNORED and c != but
            and df[c].notna().any()]  # fmt: skip


def _name(row) -> str:
    label = row.get("label")
    return str(label) if isinstance(label, str) and label else str(row.get("point_id", "?"))[:8]


def _overfitting(ok: pd.DataFrame, histories: dict, y: str) -> list[Finding]:
    if "best_val_loss" not in ok or "val_loss" not in ok or y == "best_val_loss":
        return []  # fitting the best checkpoint's loss is the cure
    out = []
    for _, row in ok.iterrows():
        final, best = row["val_loss"], row["best_val_loss"]
        if not (np.isfinite(final) and np.isfinite(best)) or final <= best * (1 + OVERFIT):
            continue
        h = histories.get(str(row.get("point_id")))
        at = ""
        if h is not None and len(h):
            at = f" at step {int(h.loc[h['val_loss'].idxmin(), 'step'])}"
        fitted = "the final loss is what is fitted (val_loss)" if y == "val_loss" \
            else f"the fitted loss is {y}"  # fmt: skip
        out.append(Finding(
            "overfitting",
            f"{_name(row)}: validation loss rose {final / best - 1:.1%} from its best "
            f"({best:.4g}{at}) to {final:.4g} at the end; {fitted}",
            "Give it more unique data (data.train_size), fewer epochs or weight decay, or fit "
            "the best checkpoint's loss: --y best_val_loss",
        ))  # fmt: skip
    return out


def _under_training(ok: pd.DataFrame, histories: dict) -> list[Finding]:
    out = []
    for _, row in ok.iterrows():
        h = histories.get(str(row.get("point_id")))
        if h is None or len(h) < 4:
            continue
        last = h["step"].iloc[-1]
        before = h[h["step"] <= 0.9 * last]
        if before.empty:
            continue
        first, then, now = (
            h["val_loss"].iloc[0],
            before["val_loss"].iloc[-1],
            h["val_loss"].iloc[-1],
        )
        if not np.isfinite([first, then, now]).all() or now >= then * (1 - STILL_FALLING):
            continue
        share = (then - now) / (first - now) if first > now else 1.0
        if share < LAST_SHARE:
            continue
        out.append(Finding(
            "under-training",
            f"{_name(row)}: validation loss still fell {1 - now / then:.1%} over the last tenth "
            f"of training ({then:.4g} → {now:.4g}), {share:.0%} of its whole fall",
            "Train longer (trainer.steps, or a budget in tokens per parameter) so the loss "
            "flattens before the end",
        ))  # fmt: skip
    return out


def _edges(ok: pd.DataFrame, y: str) -> list[Finding]:
    """A setting tried at three or more values whose best is the smallest or largest tried."""
    out = []
    if y not in ok:
        return out
    for column, what in _TRIED.items():
        if column not in ok:
            continue
        rest = _settings(ok, but=column)
        keyed = ok.assign(**{c: ok[c].astype(str) for c in rest})
        for _, runs in keyed.groupby(rest, dropna=False) if rest else [(None, keyed)]:
            loss = pd.to_numeric(runs[y], errors="coerce")
            if "status" in runs:
                loss = loss.where(~runs["status"].isin(STOPPED), np.inf)
            losses = loss.groupby(runs[column]).mean().dropna()
            if len(losses) < 3:
                continue
            best = losses.idxmin()
            if best not in (losses.index.min(), losses.index.max()):
                continue
            end = "smallest" if best == losses.index.min() else "largest"
            way = "down" if end == "smallest" else "up"
            size = runs["label"].iloc[0] if "label" in runs else ""
            size = (
                ""
                if not isinstance(size, str)
                else " ".join(
                    p for p in str(size).split() if not p.startswith(f"{column.split('.')[-1]}=")
                )
            )
            out.append(Finding(
                "edge",
                f"{size + ': ' if size else ''}the best {what} tried ({best:g}) is the {end} of "
                f"{', '.join(f'{v:g}' for v in losses.index)}",
                f"Extend the {what}s tried {way} (tune.lrs for a tuned lr) until the loss turns",
            ))  # fmt: skip
    return out


def _sizes(ok: pd.DataFrame, x: str) -> list[Finding]:
    if x not in ok:
        return []
    sizes = pd.to_numeric(ok[x], errors="coerce").dropna().unique()
    if len(sizes) == 0:
        return []
    span = sizes.max() / sizes.min()
    if len(sizes) >= MIN_SIZES and span >= MIN_SPAN:
        return []
    return [Finding(
        "sizes",
        f"{len(sizes)} sizes spanning {span:.0f}× in {x}",
        f"A law and its held-out check need {MIN_SIZES} or more sizes over {MIN_SPAN:.0f}× or more: "
        "add sizes at both ends",
    )]  # fmt: skip


def _no_gain(ok: pd.DataFrame, x: str, y: str) -> list[Finding]:
    """The largest size no better than a smaller one: a saturated task, or too little training."""
    if x not in ok or y not in ok:
        return []
    loss = pd.to_numeric(ok[y], errors="coerce").groupby(pd.to_numeric(ok[x])).mean().dropna()
    if len(loss) < 3:
        return []
    largest, smaller = loss.index[-1], loss.iloc[:-1]
    if loss.iloc[-1] < smaller.min():
        return []
    best = smaller.idxmin()
    return [Finding(
        "no gain",
        f"the largest size ({largest:,.0f} {x}) reaches {loss.iloc[-1]:.4g}, no better than "
        f"{smaller.min():.4g} at {best:,.0f}",
        "Train the larger sizes longer or at a tuned lr, or use a harder task: a saturated "
        "loss has no law to extrapolate",
    )]  # fmt: skip


def _language(ok: pd.DataFrame) -> list[Finding]:
    """Tokens per parameter and warmup, for language models."""
    if "task" not in ok or not ok["task"].eq("lm").any():
        return []
    lm = ok[ok["task"].eq("lm")]
    n = pd.to_numeric(lm.get("params_nonembedding"), errors="coerce")
    tokens = pd.to_numeric(lm.get("train_tokens"), errors="coerce")
    # one value per size (seeds of a size share it)
    ratio = (tokens / n).groupby(n).mean().dropna()
    out = []
    if len(ratio):
        low = ratio[ratio < MIN_TOKENS_PER_PARAM]
        if len(low):
            out.append(Finding(
                "tokens",
                f"{len(low)} of {len(ratio)} size{'s' * (len(ratio) > 1)} trained on under {MIN_TOKENS_PER_PARAM:g} tokens "
                f"per parameter (as few as {low.min():.2g})",
                "Budget tokens per parameter instead of steps (trainer.budget=tokens_per_param "
                "trainer.tokens_per_param=20)",
            ))  # fmt: skip
        if ratio.max() / ratio.min() > TOKENS_SPREAD:
            out.append(Finding(
                "tokens",
                f"tokens per parameter range from {ratio.min():.3g} to {ratio.max():.3g} across sizes",
                "Sizes trained in different regimes do not lie on one law: give every size the "
                "same tokens per parameter (trainer.budget=tokens_per_param)",
            ))  # fmt: skip
    if "optim.warmup" in lm:
        per_param = (pd.to_numeric(lm["optim.warmup"]) * tokens / n).groupby(n).max()
        long = per_param[per_param > WARMUP_TOKENS].dropna()
        if len(long):
            out.append(Finding(
                "warmup",
                f"{len(long)} size{'s' * (len(long) > 1)} warm up over more than {WARMUP_TOKENS:g} tokens per parameter "
                f"(up to {long.max():.3g})",
                "Small models need a short warmup (about N tokens; Porian et al. 2024): lower "
                "optim.warmup",
            ))  # fmt: skip
    return out


def _divergence(rows: pd.DataFrame, histories: dict) -> list[Finding]:
    out = []
    if "status" in rows:
        for _, row in rows[rows["status"].eq("diverged")].iterrows():
            out.append(Finding(
                "divergence",
                f"{_name(row)} diverged (non-finite loss at step {row.get('failed_at_step', '?')})",
                "Lower its lr or clip gradients (optim.grad_clip); it is left out of the fit",
            ))  # fmt: skip
    ok = rows[rows["status"].eq("ok")] if "status" in rows else rows
    for _, row in ok.iterrows():
        h = histories.get(str(row.get("point_id")))
        if h is None or len(h) < 3:
            continue
        if not learned(h):
            first, last = h["val_loss"].iloc[0], h["val_loss"].iloc[-1]
            out.append(Finding(
                "no learning",
                f"{_name(row)}: validation loss {last:.4g} at the end, {first:.4g} at the first "
                "evaluation",
                "It never learned (often an lr past the edge of stability): lower its lr",
            ))  # fmt: skip
            continue
        train = h["train_loss"].to_numpy(float)
        rises = train[1:] / train[:-1] - 1
        if np.nanmax(rises[1:], initial=0) > SPIKE:  # the first interval holds the warmup
            i = int(np.nanargmax(rises[1:])) + 2
            out.append(Finding(
                "spikes",
                f"{_name(row)}: train loss jumped {rises[i - 1]:.0%} at step {int(h['step'].iloc[i])}",
                "Lower the lr, lengthen the warmup or clip gradients (optim.grad_clip)",
            ))  # fmt: skip
    return out


def _seeds(ok: pd.DataFrame, x: str, y: str) -> list[Finding]:
    """Runs that share every setting but the seed, scattering more than neighbouring sizes differ."""
    if x not in ok or y not in ok:
        return []
    settings = _settings(ok)
    loss = pd.to_numeric(ok[y], errors="coerce")
    keyed = ok.assign(**{c: ok[c].astype(str) for c in settings}, _loss=loss)
    groups = keyed.groupby(settings, dropna=False)["_loss"] if settings else None
    spread = groups.std().dropna() if groups is not None else pd.Series(dtype=float)
    means = loss.groupby(ok[x]).mean().sort_index()
    if spread.empty or len(means) < 2:
        return []
    gap = float(np.abs(np.diff(means.to_numpy())).min())
    noise = float(spread.max())
    if noise <= SEED_NOISE * gap:
        return []
    text = (f"seeds of one setting scatter by up to {noise:.3g} (SD) while neighbouring sizes "
            f"differ by as little as {gap:.3g}")  # fmt: skip
    return [Finding("seeds", text, "Space the sizes further apart or run more seeds per size")]
