"""Has a slice finished training? The convergence diagnostic behind PROVISIONAL verdicts.

A corrupted model that merely converges more slowly than the clean one reads as "never recovers"
when training stops early, so a verdict is only as good as the training behind it. Per slice (model,
dataset, pooling, mode), over its cells at the lr that ``aggregate.choose_lr`` picks for the protocol
the verdicts read (``metric``: ``selected`` by default; ``best`` for the paper's reading), so the
diagnostic judges the very rows the verdicts rest on:

* ``share_best_last``: the share of cells whose chosen epoch (best validation F1 under ``selected``,
  best test F1 under ``best``) is the last;
* ``share_rising``: the share of cells whose validation F1 at the last epoch beats every earlier epoch
  by more than ``rise_tolerance``: still climbing, not on a plateau (a best-last epoch that ties a
  plateau is not evidence of under-training, since a linearly decayed lr barely moves the last epoch);
* ``clean_val_gain``: the clean model's seed mean of (last epoch's validation F1 - the best earlier one).

A slice is *under-trained* when the clean model's validation F1 still rose at its last epoch by more
than ``rise_tolerance`` or when more than ``max_share_rising`` of its cells are still rising; a slice
trained for one epoch cannot show a plateau and counts as under-trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from harness.grid.aggregate import SLICE, choose_lr

COLUMNS = ["n_epochs_run", "last_val_f1", "best_earlier_val_f1"]
CHOSEN_EPOCH = {"best": "best_epoch", "selected": "selected_epoch"}


@dataclass(frozen=True)
class ConvergenceRule:
    # A last-epoch gain of validation F1 under 1 point is a plateau: the equivalence margin of the
    # verdicts (harness.verdict.decision), below the seed-to-seed spread of fine-tuning.
    rise_tolerance: float = 1.0
    # Corrupted models may legitimately still improve (the 100% model trains from scratch), but when
    # most of a slice is still climbing its comparisons measure speed of convergence, not recovery.
    max_share_rising: float = 0.5


DEFAULT_CONVERGENCE = ConvergenceRule()


def diagnose(cells: pd.DataFrame, rule: ConvergenceRule = DEFAULT_CONVERGENCE, metric: str = "selected"
             ) -> pd.DataFrame:
    """One row per slice: the shares above, the clean model's last-epoch gain, and the flag with its reason."""
    missing = [c for c in COLUMNS + [CHOSEN_EPOCH[metric]] if c not in cells.columns]
    if missing or cells.empty:
        return pd.DataFrame(columns=SLICE + ["n_cells", "epochs", "share_best_last", "share_rising",
                                             "clean_val_gain", "under_trained", "reason"])
    chosen = choose_lr(cells, metric)
    gain = chosen["last_val_f1"] - chosen["best_earlier_val_f1"]
    chosen = chosen.assign(best_last=chosen[CHOSEN_EPOCH[metric]] == chosen["n_epochs_run"],
                           rising=gain > rule.rise_tolerance, gain=gain)
    rows = []
    for key, part in chosen.groupby(SLICE, sort=False):
        clean = part[part["position"] == "none"]
        clean_gain = float(clean["gain"].mean()) if len(clean) else np.nan
        epochs = int(part["n_epochs_run"].min())
        share_rising = float(part["rising"].mean())
        reasons = []
        if epochs < 2:
            reasons.append("one epoch: no plateau can be seen")
        if np.isfinite(clean_gain) and clean_gain > rule.rise_tolerance:
            reasons.append(f"clean validation F1 still rose {clean_gain:+.2f} at the last epoch "
                           f"(> {rule.rise_tolerance:g})")
        if share_rising > rule.max_share_rising:
            reasons.append(f"{share_rising:.0%} of cells still rising (> {rule.max_share_rising:.0%})")
        rows.append({**dict(zip(SLICE, key)), "n_cells": len(part), "epochs": epochs,
                     "share_best_last": float(part["best_last"].mean()), "share_rising": share_rising,
                     "clean_val_gain": clean_gain, "under_trained": bool(reasons),
                     "reason": "; ".join(reasons) or "plateaued"})
    return pd.DataFrame(rows)


def under_trained_slices(diagnosis: pd.DataFrame) -> set[tuple[str, ...]]:
    """Slice keys (model, dataset, pooling, mode) the diagnostic flags: their verdicts are PROVISIONAL."""
    flagged = diagnosis[diagnosis["under_trained"].astype(bool)] if len(diagnosis) else diagnosis
    return {tuple(str(row[k]) for k in SLICE) for _, row in flagged.iterrows()}


def rule_dict(rule: ConvergenceRule = DEFAULT_CONVERGENCE) -> dict:
    return asdict(rule)
