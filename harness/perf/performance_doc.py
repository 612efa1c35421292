"""The benchmark's tables, its final line, and ``docs/PERFORMANCE.md`` rendered from a bench JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.files import write_text_atomic
from harness.perf.bench_settings import RUNNERS

FINAL_LINE = re.compile(r"^speedup_vs_trainer=(\d+\.\d+) real_tokens_per_s=(\d+)$")


def runs_frame(results: dict) -> pd.DataFrame:
    """One row per run, in readable units."""
    frame = pd.DataFrame(results["runs"])
    return pd.DataFrame({
        "dataset": frame.dataset, "seed": frame.seed, "runner": frame.runner, "steps": frame.steps,
        "train s": frame.train_s.round(1), "samples/s": frame.samples_per_s.round(1),
        "real tok/s": frame.real_tokens_per_s.round(0).astype(int), "padding %": (100 * frame.padding_share).round(1),
        "peak RSS MiB": frame.peak_rss_mb.round(0), "ΔRSS MiB": frame.rss_delta_mb.round(0),
        "eval s": frame.eval_s.round(1), "test F1": frame.final_test_f1.round(2),
    })


def summary_frame(results: dict) -> pd.DataFrame:
    """Per dataset and runner: means (± std over seeds) and the speedup."""
    rows = []
    for dataset, entry in results["summary"]["per_dataset"].items():
        for runner in RUNNERS:
            if runner not in entry:
                continue
            s = entry[runner]
            rows.append({
                "dataset": dataset, "runner": runner,
                "train s": _pm(s["train_s_mean"], s["train_s_std"], 1),
                "samples/s": f"{s['samples_per_s_mean']:.1f}", "real tok/s": f"{s['real_tokens_per_s_mean']:.0f}",
                "padding %": f"{100 * s['padding_share_mean']:.1f}", "peak RSS MiB": f"{s['peak_rss_mb_mean']:.0f}",
                "ΔRSS MiB": f"{s['rss_delta_mb_mean']:.0f}", "eval s": f"{s['eval_s_mean']:.1f}",
                "test F1": _pm(s["final_test_f1_mean"], s["final_test_f1_std"], 2),
                "speedup": f"{entry['speedup']:.2f}x" if runner == "ours" and "speedup" in entry else "",
            })
    return pd.DataFrame(rows)


def _pm(mean: float, std: float | None, digits: int) -> str:
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_tables(results: dict) -> str:
    """The terminal report: every run, then the means."""
    return ("runs\n" + runs_frame(results).to_string(index=False) + "\n\nmeans over seeds\n"
            + summary_frame(results).to_string(index=False))


def final_line(results: dict) -> str:
    """The last line ``bench`` prints, for scripts: ``speedup_vs_trainer=<x> real_tokens_per_s=<y>``."""
    summary = results["summary"]
    return f"speedup_vs_trainer={summary['speedup_vs_trainer']:.2f} real_tokens_per_s={summary['real_tokens_per_s']:.0f}"


def load_bench_json(bench_json: str | Path | dict) -> dict:
    return json.loads(Path(bench_json).read_text()) if not isinstance(bench_json, dict) else bench_json


def _trainer_precision(settings: dict) -> str:
    """The Trainer's precision in a bench JSON's settings (absent or null: the same as ours)."""
    return settings.get("trainer_precision") or settings["precision"]


def _other_run_section(results: dict) -> list[str]:
    """A further bench run (e.g. another precision) as a short section: its command, headline, means."""
    settings, summary = results["settings"], results["summary"]
    load = ", ".join(f"{x:.2f}" for x in results["machine"]["load_average_before"])
    return [
        f"### Ours {settings['precision']} against Trainer {_trainer_precision(settings)}",
        "",
        "```bash",
        results["command"],
        "```",
        "",
        f"`{final_line(results)}`; Trainer {summary['trainer_real_tokens_per_s']:.0f} real tokens/s; "
        f"load average at start {load}; created {results['created']}.",
        "",
        # Runs from before the precision rule recorded no CPU capability: say so rather than guess.
        f"Machine: {results['machine']['cpu']}, "
        f"{results['machine'].get('hardware') or 'CPU capability not recorded (a run from before precision: auto)'}.",
        "",
        summary_frame(results).to_markdown(index=False),
        "",
    ]


def generate_performance_md(bench_json: str | Path | dict, out: str | Path = "docs/PERFORMANCE.md",
                            others: Sequence[str | Path | dict] = ()) -> Path:
    """Render a bench JSON as ``docs/PERFORMANCE.md``: the command, the machine, and the tables.

    ``others``: further bench JSONs (other precisions or sizes), each rendered as a short section.
    """
    results = load_bench_json(bench_json)
    settings, m, v, summary = results["settings"], results["machine"], results["versions"], results["summary"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_before"])
    steps = "/".join(sorted({str(run["steps"]) for run in results["runs"]}))
    lines = [
        "# Performance: our training loop against transformers' Trainer",
        "",
        "Generated by `harness.perf.performance_doc.generate_performance_md` from the JSON that this command wrote; do not edit by hand:",
        "",
        "```bash",
        results["command"],
        "```",
        "",
        f"**Headline**: `{final_line(results)}` (train time of Trainer / ours, same optimiser steps on the same real tokens; "
        f"real tokens/s of our loop). Trainer: {summary['trainer_real_tokens_per_s']:.0f} real tokens/s; our evaluation: "
        f"{summary['eval_real_tokens_per_s']:.0f} real tokens/s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, device `{m['device']}`"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + (f" ({m['hardware']})" if m.get("hardware") else "")
        + "".join(f", {k}={val}" for k, val in m.get("env", {}).items()) + f"; load average at start {load} "
        "(other work on the machine slows both runners and makes the numbers noisy). "
        f"Created {results['created']}; total wall time {results['wall_s']:.0f} s.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        f"Cell: `{settings['model']}`, batch size {settings['batch_size']}, lr {settings['lr']:g}, "
        f"{settings['epochs']} epoch(s), max length {settings['max_length']}, precision: ours {settings['precision']}, "
        f"Trainer {_trainer_precision(settings)}, "
        f"{settings['n_train']:,} training and {settings['n_test']:,} test examples per dataset, seeds "
        f"{', '.join(map(str, settings['seeds']))}. Mean tokens per training example: "
        + ", ".join(f"{name} {sizes['train']['mean_tokens']:.1f}" for name, sizes in results["data"].items()) + ".",
        "",
        *([f"The runners differ in precision here (ours {settings['precision']}, Trainer "
           f"{_trainer_precision(settings)}): the speedup includes what {settings['precision']} buys; F1 shows whether "
           "it changed the result. Same-precision runs, where given, are under *Other settings*.", ""]
          if _trainer_precision(settings) != settings["precision"] else []),
        "## Means over seeds",
        "",
        summary_frame(results).to_markdown(index=False),
        "",
        *(["## Other settings, same benchmark", ""] + [line for other in others for line in _other_run_section(load_bench_json(other))]
          if others else []),
        "## Every run (in the order run: Trainer and ours alternate)",
        "",
        runs_frame(results).to_markdown(index=False),
        "",
        "## How it is measured",
        "",
        "- **Trainer**: `Trainer` + `DataCollatorWithPadding` on a `datasets.Dataset` tokenised with `.map` "
        "(not timed), `eval_strategy=\"epoch\"` on validation and test, weighted F1 from `compute_metrics`.",
        "- **Ours**: `harness.method.train.train_and_evaluate` (length-bucketed batches, pre-tokenised arrays, fused AdamW, "
        "exact touched-rows Adam for the word-embedding table) "
        "on the same train/validation/test rows from `harness.method.prepare.make_splits`.",
        "- Both start from the same weights (`load_classifier(model, n, seed=seed)`), and every pair is checked to take "
        "the same number of optimiser steps on the same number of real tokens.",
        "- *train s*: time inside the training epochs only; *real tok/s*: non-padding tokens trained / train s; "
        "*padding %*: padded share of the training batches; *peak RSS*: the process's resident-set high-water mark "
        "during the run (reset before each run on Linux); *eval s*: validation and test scoring.",
        "- Speedup = mean Trainer train time / mean our train time.",
        f"- *test F1*: weighted F1 on the test split after the last epoch ({steps} optimiser steps per run). "
        "Both runners optimise the same way but draw different batches and dropout masks, so F1 differs run to run; "
        "after few steps it says little about quality (a model that has not left the majority class scores "
        "~40 on SST-2): raise `--n-train` (e.g. 2000) to compare F1.",
        "",
    ]
    return write_text_atomic(out, "\n".join(lines))
