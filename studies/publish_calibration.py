"""Re-publish the shipped calibration's tables in docs/study.md and docs/prediction.md from its files
(`data/calibration/study-v2.2/`): the kind table, the hold-out scores, skill within kinds and at each budget;
study v2's per-model tables come from calibration v2 (`docs/results/calibration-v2/`). The README's sentence
quotes the same files by hand, and tests/test_readme_results.py checks it against them.

    python studies/publish_calibration.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lexprobe.predict import kind_markdown, rule_table_markdown
from lexprobe.predict._correlate import (
    budget_skill_markdown,
    holdout_markdown,
    kind_skill_markdown,
    surface_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
CAL = ROOT / "data" / "calibration" / "study-v2.2"
#: Calibration v3 as far as it is measured (``bash studies/make_calibration.sh candidate``): published, not shipped.
CANDIDATE = ROOT / "docs" / "results" / "calibration-v3-partial"
CANDIDATE_MARKERS = ("<!-- candidate: from calibration-v3-partial/baselines.csv -->", "<!-- /candidate -->")
V2 = ROOT / "docs" / "results" / "calibration-v2"


def table_at(text: str, header_start: str, new: str) -> str:
    """``text`` with the Markdown table whose header line starts with ``header_start`` replaced by ``new``."""
    lines = text.split("\n")
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    j = i
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    return "\n".join([*lines[:i], new.strip("\n"), *lines[j:]])


def readme_scores(baselines: pd.DataFrame) -> str:
    """docs/study.md's hold-out table: the predictor, the paper's rule and the kind mean, each
    hold-out scheme."""
    cells = ["verdicts_right", "brier", "committed", ("gain_mae_points", "generalization gain error (points)")]
    cells += ["brier_skill_over_papers_rule", "gain_error_over_kind_mean"]
    return rule_table_markdown(baselines, "held_out_by", cells=cells)


def candidate_block(page: str) -> str:
    """``page`` with the block between :data:`CANDIDATE_MARKERS` holding the candidate's held-out tables, each
    rule beside the baselines, by field pair, ontology and model (the shipped calibration's ``holdout_markdown``)."""
    start, end = CANDIDATE_MARKERS
    block = "\n".join([start, holdout_markdown(pd.read_csv(CANDIDATE / "baselines.csv")), end])
    return page[: page.index(start)] + block + page[page.index(end) + len(end) :]


def main() -> None:
    # study v2's outcomes by kind (every unit at 20 exposures, with its 5-shot comparison): calibration v2
    tasks, holdout = pd.read_csv(V2 / "tasks.csv"), pd.read_csv(V2 / "holdout.csv")
    baselines, by_kind = pd.read_csv(CAL / "baselines.csv"), pd.read_csv(CAL / "baselines_by_kind.csv")
    kinds = "\n".join(line for line in kind_markdown(tasks, holdout).splitlines() if line.startswith("|"))
    by_budget = pd.read_csv(CAL / "baselines_by_budget.csv")
    summary = (V2 / "summary.md").read_text(encoding="utf-8")
    per_model = summary.split("\n## ")[0]

    study = (ROOT / "docs" / "study.md").read_text(encoding="utf-8")
    study = table_at(study, "| kind | units |", kinds)
    for table in per_model.split("### ")[1:]:
        name = table.split("\n", 1)[0]
        body = table.split("\n", 1)[1].strip("\n")
        start = study.index(f"### {name}\n")
        header_line = body.split("\n", 1)[0][:30]
        rest = study[start:]
        study = study[:start] + table_at(rest, header_line, body)
    study = table_at(
        study,
        "| held out by | rule |" if "| held out by | rule |" in study else "| rule (fitted",
        readme_scores(baselines),
    )
    (ROOT / "docs" / "study.md").write_text(study, encoding="utf-8")

    page = (ROOT / "docs" / "prediction.md").read_text(encoding="utf-8")
    marker_start, marker_end = "<!-- holdout: from baselines.csv -->", "<!-- /holdout -->"
    surface = pd.read_csv(CAL / "surface.csv")
    parts = [holdout_markdown(baselines), kind_skill_markdown(by_kind), "", budget_skill_markdown(by_budget)]
    parts += ["", surface_markdown(surface)]
    block = "\n".join([marker_start, *parts, marker_end])
    if marker_start in page:
        page = page[: page.index(marker_start)] + block + page[page.index(marker_end) + len(marker_end) :]
    else:
        page = table_at(page, "| rule | verdicts right | generalization gain error (points) |", block)
    page = candidate_block(page)
    (ROOT / "docs" / "prediction.md").write_text(page, encoding="utf-8")

    from lexprobe.figures import plot_reliability

    for path in plot_reliability(
        pd.read_csv(CAL / "reliability.csv"), ROOT / "figures", stem="calibration_v2_2_reliability"
    ):
        if path.suffix == ".svg":  # the pages show the PNG
            path.unlink()


if __name__ == "__main__":
    main()
