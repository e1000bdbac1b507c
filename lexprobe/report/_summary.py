"""The report's opening summary: verdicts with their key numbers, every warning, and each stage's headline numbers.

Everything is read from the runs' own files (manifests, ``holdout.csv``/``loto.csv``, ``baselines.csv``,
``prediction.csv``, ``alignment_summary.csv``, ``lexicalization_fields.csv``, ``evaluation.json``); a file that
is missing or unreadable leaves its part of the summary out (the run's own section says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from lexprobe.report._tables import (
    MISSING,
    VALUE_LABELS,
    Cell,
    Run,
    Table,
    describe,
    format_gain,
    format_value,
    heading,
    is_missing,
    read_csv,
    read_json,
)


@dataclass(frozen=True)
class Verdicts:
    """One correlate or predict run's verdicts: a table of them, the predictor beside trivial baselines, and
    one sentence saying whether it beat them."""

    heading: str
    anchor: str
    table: Table | None
    baselines: Table | None = None
    finding: str | None = None


@dataclass(frozen=True)
class RunWarning:
    """A warning a run recorded, with the run it came from."""

    anchor: str
    heading: str
    text: str


@dataclass(frozen=True)
class ReportSummary:
    """What the report opens with."""

    verdicts: list[Verdicts] = field(default_factory=list)
    warnings: list[RunWarning] = field(default_factory=list)
    headlines: list[Table] = field(default_factory=list)


def summarize(runs: Sequence[Run]) -> ReportSummary:
    """The summary of ``runs`` (in page order: run ``i`` is the section ``#run-{i + 1}``)."""
    anchors = [f"#run-{i}" for i in range(1, len(runs) + 1)]
    verdicts: list[Verdicts] = []
    for run, anchor in zip(runs, anchors, strict=True):
        if run.stage == "correlate":
            verdicts.append(_correlate_verdicts(run, anchor))
    predictions = [(run, anchor) for run, anchor in zip(runs, anchors, strict=True) if run.stage == "predict"]
    if predictions:
        verdicts += _predict_verdicts(predictions)
    headlines = [
        t
        for t in (
            _alignment_headline(runs, anchors),
            _lexicalization_headline(runs, anchors),
            _training_headline(runs, anchors),
        )
        if t is not None
    ]
    warnings = [RunWarning(a, heading(r), w) for r, a in zip(runs, anchors, strict=True) for w in _warnings_of(r)]
    return ReportSummary(verdicts=verdicts, warnings=warnings, headlines=headlines)


# --- verdicts ----------------------------------------------------------------------------------------------


def _frame(rows: list[dict[str, str | Cell]], caption: str) -> Table:
    """A table from rows already formatted (str, or a :class:`Cell` for a link); missing as :data:`MISSING`."""
    headers = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value: str | Cell | None) -> Cell:
        if isinstance(value, Cell):
            return value
        return Cell(MISSING if value is None or value == "" else value, numeric=_looks_numeric(value))

    body = [[cell(row.get(h)) for h in headers] for row in rows]
    return Table(caption=caption, headers=[(h, h) for h in headers], rows=body, n_rows=len(body))


def _looks_numeric(text: str | None) -> bool:
    return bool(text) and text.lstrip("+−-")[:1].isdigit()


def _text(value: object) -> str:
    return MISSING if is_missing(value) else str(value)


def _verdict_of(row: pd.Series) -> str:
    for key in ("stated_verdict", "verdict"):
        if key in row and not is_missing(row[key]):
            return str(row[key])
    return MISSING


def _gain(row: pd.Series, name: str) -> str:
    return format_gain(row.get(name), row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high"))


def _unit_rows(run: Run) -> tuple[list[dict[str, str | Cell]], str] | None:
    """Per task (and model): predicted and measured gains and verdicts, from ``holdout.csv`` or ``loto.csv``."""
    holdout = read_csv(run.path / "holdout.csv")
    if isinstance(holdout, pd.DataFrame) and "held_out_by" in holdout:
        holdout = holdout[holdout["held_out_by"] == "field pair"]
    if isinstance(holdout, pd.DataFrame) and not holdout.empty:
        rows = [
            {
                "task": _text(r.get("label")),
                "model": _text(r.get("model")),
                "predicted verdict": _verdict_of(r),
                "measured verdict": _text(r.get("measured_verdict")),
                "predicted generalization gain": _gain(r, "predicted_generalization_gain"),
                "measured generalization gain": _gain(r, "generalization_gain"),
                "predicted memorization gain": _gain(r, "predicted_memorization_gain"),
                "measured memorization gain": _gain(r, "memorization_gain"),
            }
            for _, r in holdout.iterrows()
        ]
        return rows, "holdout.csv: each task predicted by the predictor fitted without its field pair"
    loto = read_csv(run.path / "loto.csv")
    if not isinstance(loto, pd.DataFrame) or loto.empty or not {"label", "split", "predicted_gain"} <= set(loto):
        return None
    rows = []
    for _, group in loto.groupby([k for k in ("label", "model") if k in loto], sort=False):
        first = group.iloc[0]
        by_split = {str(r["split"]): r for _, r in group.iterrows()}
        row: dict[str, str | Cell] = {
            "task": _text(first["label"]),
            "model": _text(first.get("model")),
            "predicted verdict": _verdict_of(first),
            "measured verdict": _text(first.get("measured_verdict")),
        }
        for split, name in (("withheld", "generalization"), ("train", "memorization")):
            r = by_split.get(split)
            if r is not None:
                row[f"predicted {name} gain"] = format_gain(
                    r["predicted_gain"], r.get("predicted_ci_low"), r.get("predicted_ci_high")
                )
                row[f"measured {name} gain"] = format_gain(
                    r.get("measured_gain"), r.get("measured_ci_low"), r.get("measured_ci_high")
                )
        rows.append(row)
    return rows, "loto.csv: each task predicted by the predictor fitted without it"


def _baselines(run: Run) -> tuple[Table | None, str | None]:
    """The predictor beside the trivial baselines (``baselines.csv``), and one sentence: skill or none."""

    table = read_csv(run.path / "baselines.csv")
    needed = {"rule", "verdicts_right", "n_units", "gain_mae_points"}
    if not isinstance(table, pd.DataFrame) or table.empty or not needed <= set(table.columns):
        return None, None
    if "held_out_by" in table:
        table = table[table["held_out_by"] == "field pair"]
    proper = "brier" in table  # written since the predictor gives probabilities
    rows: list[dict[str, str | Cell]] = []
    for _, r in table.iterrows():
        row: dict[str, str | Cell] = {
            "rule (fitted without the held-out field pair)": _text(r["rule"]),
            "verdicts right": f"{format_value(r['verdicts_right'])[0]}/{format_value(r['n_units'])[0]}",
        }
        if proper:
            row["Brier"] = _fixed(r["brier"], 3)
            row["committed (right)"] = (
                f"{float(r['committed_share']):.0%} "
                f"({MISSING if is_missing(r['committed_right']) else format(float(r['committed_right']), '.0%')})"
            )
        row["generalization gain error (MAE, points)"] = _fixed(r["gain_mae_points"])
        if proper:
            row["Brier skill over the paper's rule"] = _fixed(r.get("brier_skill_over_papers_rule"))
            row["gain error / kind mean's"] = _fixed(r.get("gain_error_over_kind_mean"))
        else:
            row["error / best baseline's"] = _fixed(r.get("relative_error"))
        rows.append(row)
    shown = _frame(rows, "baselines.csv: held out by field pair, the predictor beside trivial rules")
    mine = table["rule"].astype(str).str.startswith("predictor")
    own, others = table[mine], table[~mine]
    if own.empty or others.empty or others["gain_mae_points"].isna().all():
        return shown, None
    own, best = own.iloc[0], others.sort_values("gain_mae_points").iloc[0]
    if is_missing(own["gain_mae_points"]):
        return shown, None
    skill = "shows skill" if own["gain_mae_points"] < best["gain_mae_points"] else "shows no skill"
    n = format_value(own["n_units"])[0]
    finding = (
        f"Held out by field pair, the predictor {skill} over the best trivial baseline ({best['rule']}): "
        f"generalization gain error {_fixed(own['gain_mae_points'])} against {_fixed(best['gain_mae_points'])} "
        f"points; {format_value(own['verdicts_right'])[0]}/{n} verdicts right against "
        f"{format_value(others['verdicts_right'].max())[0]}/{n} for the best baseline by verdicts."
    )
    return shown, finding


def _fixed(value: object, digits: int = 2) -> str:
    return MISSING if is_missing(value) else f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def _correlate_verdicts(run: Run, anchor: str) -> Verdicts:
    units = _unit_rows(run)
    table = _frame(*units) if units else None
    baselines, finding = _baselines(run)
    return Verdicts(heading=heading(run), anchor=anchor, table=table, baselines=baselines, finding=finding)


def _predict_verdicts(runs: list[tuple[Run, str]]) -> list[Verdicts]:
    """One table over every predict run (a row each), then each run's calibration check beside baselines."""
    rows: list[dict[str, str | Cell]] = []
    for run, anchor in runs:
        prediction = read_csv(run.path / "prediction.csv")
        if not isinstance(prediction, pd.DataFrame) or prediction.empty:
            continue
        r = prediction.iloc[0]
        label = r.get("label") if not is_missing(r.get("label")) else " · ".join(describe(run)[:2])
        row: dict[str, str | Cell] = {
            "task": Cell(str(label), href=anchor),
            "model": _text(r.get("model")),
            "verdict": _verdict_of(r),
        }
        if "measured_verdict" in r:  # the task was in the calibration: what fine-tuning really did
            row["measured verdict"] = _text(r["measured_verdict"])
        row["predicted generalization gain"] = _gain(r, "predicted_generalization_gain")
        if "measured_verdict" in r:
            row["measured generalization gain"] = format_gain(r.get("measured_generalization_gain"))
        row["predicted memorization gain"] = _gain(r, "predicted_memorization_gain")
        if "measured_verdict" in r:
            row["measured memorization gain"] = format_gain(r.get("measured_memorization_gain"))
        rows.append(row)
    found = []
    if rows:
        found.append(
            Verdicts(
                heading="predict",
                anchor=runs[0][1],
                table=_frame(rows, "prediction.csv: the verdict for each task asked about, with its intervals"),
            )
        )
    for run, anchor in runs:
        baselines, finding = _baselines(run)
        if baselines is not None:
            found.append(
                Verdicts(
                    heading=f"{heading(run)}: its calibration",
                    anchor=anchor,
                    table=None,
                    baselines=baselines,
                    finding=finding,
                )
            )
    return found


# --- headline numbers -------------------------------------------------------------------------------------


def _run_cell(run: Run, anchor: str) -> Cell:
    return Cell(" · ".join(describe(run)) or run.path.name, href=anchor)


def _alignment_headline(runs: Sequence[Run], anchors: list[str]) -> Table | None:
    rows: list[dict[str, str | Cell]] = []
    for run, anchor in zip(runs, anchors, strict=True):
        table = read_csv(run.path / "alignment_summary.csv") if run.stage == "align" else None
        if not isinstance(table, pd.DataFrame):
            continue
        name = " · ".join(describe(run, task=False))
        for _, r in table.iterrows():
            metric = _text(r.get("metric"))
            rows.append(
                {
                    "run": Cell(name or run.path.name, href=anchor),
                    "field pair": _text(r.get("pair")),
                    "metric": VALUE_LABELS["metric"].get(metric, metric),
                    "best layer": format_value(r.get("best_layer"))[0],
                    "value [95% CI]": format_gain(r.get("value"), r.get("ci_low"), r.get("ci_high"), signed=False),
                    "effect over the null": format_gain(r.get("effect")),
                    "z": format_value(r.get("z"))[0],
                    "p": format_value(r.get("p_value"))[0],
                    # the surface-form control (length, digits, punctuation regressed out); a dash for older runs
                    "effect, surface-controlled": format_gain(r.get("effect_ctl")),
                }
            )
    return _frame(rows, "alignment: each pair's best layer against the layer-max permutation null") if rows else None


def _lexicalization_headline(runs: Sequence[Run], anchors: list[str]) -> Table | None:
    rows: list[dict[str, str | Cell]] = []
    for run, anchor in zip(runs, anchors, strict=True):
        table = read_csv(run.path / "lexicalization_fields.csv") if run.stage == "lexicalization" else None
        if not isinstance(table, pd.DataFrame):
            continue
        name = " · ".join(describe(run, task=False))
        for _, r in table.iterrows():
            rows.append(
                {
                    "run": Cell(name or run.path.name, href=anchor),
                    "field": _text(r.get("field")),
                    "score [95% CI]": format_gain(
                        r.get("score"), r.get("score_ci_low"), r.get("score_ci_high"), signed=False
                    ),
                    "tokens / item": format_value(r.get("tokens_mean"))[0],
                    "digit or punct. tokens": format_value(r.get("digit_punct_share"))[0],
                    "agreement with names": format_value(r.get("agreement"))[0],
                    "category probe": format_value(r.get("probe_accuracy"))[0],
                    "majority baseline": format_value(r.get("probe_baseline"))[0],
                }
            )
    return _frame(rows, "lexicalization: how far each field is a meaningful token (score 0 to 1)") if rows else None


def _training_headline(runs: Sequence[Run], anchors: list[str]) -> Table | None:
    rows: list[dict[str, str | Cell]] = []
    for run, anchor in zip(runs, anchors, strict=True):
        evaluation = read_json(run.path, "evaluation.json") if run.stage in ("train", "evaluate") else None
        if evaluation is None:
            continue
        accuracy = {  # over all popularity bins, by (model, split); a K-shot evaluation has the baseline only
            (a.get("model"), a.get("split")): a.get("accuracy")
            for a in evaluation.get("accuracy") or []
            if isinstance(a, dict) and str(a.get("bin")) == "all"
        }
        gains = evaluation.get("gains") if isinstance(evaluation.get("gains"), dict) else {}
        row: dict[str, str | Cell] = {"run": _run_cell(run, anchor)}
        for split, name in (("train", "memorization"), ("withheld", "generalization")):
            g = gains.get(split) if isinstance(gains.get(split), dict) else {}
            row[f"{split}: baseline"] = format_gain(accuracy.get(("baseline", split)), signed=False)
            row[f"{split}: tuned"] = format_gain(accuracy.get(("tuned", split)), signed=False)
            row[f"{name} gain [95% CI]"] = format_gain(g.get("gain"), g.get("gain_ci_low"), g.get("gain_ci_high"))
        rows.append(row)
    caption = "fine-tuning: exact-match accuracy over all bins, before (baseline) and after (tuned)"
    return _frame(rows, caption) if rows else None


# --- warnings ---------------------------------------------------------------------------------------------


def _warnings_of(run: Run) -> list[str]:
    """The warnings a run recorded: its manifest's ``warnings``, and a prediction's ``warnings`` column."""
    found = [w for w in run.manifest.get("warnings") or [] if isinstance(w, str)]
    if run.stage == "predict":
        prediction = read_csv(run.path / "prediction.csv")
        if isinstance(prediction, pd.DataFrame) and "warnings" in prediction:
            for text in prediction["warnings"].dropna().astype(str):
                found += [w.strip() for w in text.split(" | ") if w.strip()]
    return list(dict.fromkeys(found))
