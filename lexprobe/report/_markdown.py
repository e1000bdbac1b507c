"""The Markdown of a ``lexprobe correlate`` output: ``summary.md`` and its tables, and the rule tables the
published pages quote.

Everything here renders plain tables (``tasks.csv``, ``holdout.csv``, ``baselines*.csv``, ``surface.csv``, a
:class:`~lexprobe.predict.CorrelationResult`) and computes nothing: :mod:`lexprobe.predict` computes them.
It imports no stage, so the stage can import it (as it does :mod:`lexprobe.figures`); what it needs of the
predictor's vocabulary (its rule names, verdicts, splits, the kinds of task) is given once, to
:class:`CorrelationMarkdown`, and :mod:`lexprobe.predict` re-exports the bound renderers under their old
names (``lexprobe.predict.kind_markdown`` is ``CorrelationMarkdown(...).kind_markdown``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lexprobe.exceptions import PredictionError, TaskError

if TYPE_CHECKING:
    from lexprobe.predict import CorrelationResult


SUMMARY_HEADER = (
    "| task | pairs | baseline train | tuned train | baseline withheld | tuned withheld | memorization gain "
    "| generalization gain | layer | alignment z | lexicalization | predicted without the task | measured |"
)


#: The cells a rule table can show (:func:`rule_table_markdown`): name -> (header, the cell of a row of
#: ``baselines.csv``, ``baselines_by_kind.csv`` or ``baselines_by_budget.csv``).
RULE_CELLS: dict[str, tuple[str, Callable[[pd.Series], str]]] = {
    "units": ("units", lambda r: str(int(r["n_units"]))),
    "verdicts_right": ("verdicts right", lambda r: f"{int(r['verdicts_right'])}/{int(r['n_units'])}"),
    "brier": ("Brier", lambda r: _fmt(r["brier"], ".3f")),
    "committed": (
        "committed (right)",
        lambda r: f"{_fmt(r['committed_share'], '.0%')} ({_fmt(r['committed_right'], '.0%')})",
    ),
    "gain_mae_points": ("generalization gain MAE", lambda r: _fmt(r["gain_mae_points"], ".2f")),
    "memorization_mae_points": ("memorization gain MAE", lambda r: _fmt(r["memorization_mae_points"], ".2f")),
    "brier_skill_over_papers_rule": (
        "Brier skill over the paper's rule",
        lambda r: _fmt(r["brier_skill_over_papers_rule"], "+.2f"),
    ),
    "gain_error_over_kind_mean": ("gain error / kind mean's", lambda r: _fmt(r["gain_error_over_kind_mean"], ".2f")),
}

#: The key columns a rule table is split by: column -> (header, format of its values).
RULE_KEYS = {"kind": ("kind", ""), "exposures": ("exposures", "g"), "held_out_by": ("held out by", "")}

#: What the skill tables show: the units, verdicts, Brier score and both gain errors.
SKILL_CELLS = ("units", "verdicts_right", "brier", "gain_mae_points", "memorization_mae_points")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or pd.isna(value) else format(value, spec)


def _interval(frame_row: pd.Series, name: str, sign: str = "") -> str:
    return f"{frame_row[name]:{sign}.3f} [{frame_row[name + '_ci_low']:.3f}, {frame_row[name + '_ci_high']:.3f}]"


@dataclasses.dataclass(frozen=True)
class CorrelationMarkdown:
    """Renders a correlate output's tables as Markdown, in the predictor's words.

    Attributes
    ----------
    predictor_rule, papers_rule, kind_mean : str
        The ``rule`` of the predictor, of the paper's rule and of the kind mean in ``baselines*.csv``.
    verdicts : tuple of str
        The verdicts, in the order of the ``p: VERDICT`` columns of ``holdout.csv``.
    splits : tuple of str
        The splits (``train``, ``withheld``), in the order the tables show them.
    commit : float
        The probability at which the predictor commits to a verdict.
    min_class_pairs : int
        The field pairs a kind needs for a ridge of its own (the surface check shows only those kinds).
    surfaces : tuple of str
        The surface forms of the surface check, in its columns' order.
    at_recorded_budget : callable
        Which rows of a table are at their unit's recorded budget (a learning curve's other points are not).
    kind_of : callable
        The kind of a task name (:func:`lexprobe.tasks.task_kind`; raises ``TaskError`` for a name with none).
    kind_order : tuple of str
        The kinds in the order they are shown (others follow, sorted).

    Examples
    --------
    The predictor's instance is ``lexprobe.predict._correlate.MARKDOWN``; one of its tables, for one unit:

    >>> import pandas as pd
    >>> from lexprobe.predict._correlate import MARKDOWN
    >>> unit = {"label": "hgnc/name-to-symbol", "model": "smollm2-135m", "shots": 5}
    >>> for split, (zero, five, tuned) in {"train": (0.1, 0.3, 1.0), "withheld": (0.1, 0.3, 0.5)}.items():
    ...     lead = tuned - five
    ...     unit |= {f"baseline_{split}": zero, f"fewshot_{split}": five, f"tuned_{split}": tuned}
    ...     unit |= {f"tuned_minus_fewshot_{split}{end}": lead + d for end, d in [("", 0), ("_ci_low", -0.1),
    ...                                                                        ("_ci_high", 0.1)]}
    >>> row = MARKDOWN.few_shot_markdown(pd.DataFrame([unit])).splitlines()[-1]
    >>> row.split(" | ")[4:6]  # withheld: 0-shot / 5-shot / tuned, and the lead over 5-shot with its interval
    ['0.10 / 0.30 / 0.50', '+0.200 [0.100, 0.300]']
    >>> MARKDOWN.few_shot_markdown(pd.DataFrame([unit]).drop(columns="shots"))  # no few-shot baseline: no table
    ''
    """

    predictor_rule: str
    papers_rule: str
    kind_mean: str
    verdicts: tuple[str, ...]
    splits: tuple[str, ...]
    commit: float
    min_class_pairs: int
    surfaces: tuple[str, ...]
    at_recorded_budget: Callable[[pd.DataFrame], pd.Series]
    kind_of: Callable[[str], str]
    kind_order: tuple[str, ...]

    def few_shot_markdown(self, tasks: pd.DataFrame) -> str:
        """The tasks that have a few-shot baseline (``shots`` in ``tasks.csv``): zero-shot, K-shot and fine-tuned
        accuracy per split, and the fine-tuned model's lead over the K-shot baseline with its interval. ``""``
        when none has one.

        Examples
        --------
        >>> from lexprobe.predict import few_shot_markdown, read_tasks_table, shipped_calibration_dir
        >>> tasks = read_tasks_table(shipped_calibration_dir() / "study-v2.2" / "tasks.csv")
        >>> few_shot_markdown(tasks).splitlines()[0]
        '## Fine-tuning against the few-shot baseline'
        >>> few_shot_markdown(tasks.drop(columns="shots"))  # no few-shot baseline: no section
        ''
        """
        if "shots" not in tasks or tasks["shots"].isna().all():
            return ""
        out = [
            "## Fine-tuning against the few-shot baseline",
            "",
            "The base model shown K train pairs before each query (`TASK/shots-K`), beside the zero-shot base model "
            "and the fine-tuned model on the same pairs. Lead: fine-tuned minus K-shot accuracy, paired over pairs, "
            "95% bootstrap interval. On withheld pairs, a lead above 0 is generalization that in-context examples do "
            "not give. Majority rule: always the commonest target of the train pairs (what a model that learned only "
            "the class "
            "prior scores).",
            "",
            "| unit | K | train: 0-shot / K-shot / tuned | lead on train | withheld: 0-shot / K-shot / tuned "
            "| lead on withheld | majority rule, withheld |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, t in tasks[tasks["shots"].notna()].iterrows():
            cells = [f"{t['label']} ({t['model']})", str(int(t["shots"]))]
            for split in self.splits:
                cells.append(f"{t[f'baseline_{split}']:.2f} / {t[f'fewshot_{split}']:.2f} / {t[f'tuned_{split}']:.2f}")
                cells.append(_interval(t, f"tuned_minus_fewshot_{split}", "+"))
            majority = t.get("majority_withheld", np.nan)
            cells.append("-" if pd.isna(majority) else f"{majority:.2f} ({t['majority_target']})")
            out.append("| " + " | ".join(cells) + " |")
        return "\n".join([*out, ""])

    def kind_markdown(self, tasks: pd.DataFrame, holdout: pd.DataFrame | None = None) -> str:
        """The units by kind of task (:func:`lexprobe.tasks.task_kind`): how many memorized and generalized (a
        gain interval above 0), the spread of their generalization gains, how many beat both trivial rules on
        withheld pairs (the fine-tuned model's lead over the K-shot baseline has its interval above 0 and its
        accuracy exceeds the majority rule's), and, held out by field pair, how many verdicts the predictor and
        the majority verdict got right. ``""`` when a task has no kind (a name that is not SOURCE-to-TARGET).
        A learning curve's other budgets are left out: each unit counts once, at its recorded budget.

        Examples
        --------
        >>> from lexprobe.predict import kind_markdown, read_tasks_table, shipped_calibration_dir
        >>> tasks = read_tasks_table(shipped_calibration_dir() / "study-v2.2" / "tasks.csv")
        >>> kind_markdown(tasks).splitlines()[0]
        '## By kind of task'
        """
        tasks = tasks[self.at_recorded_budget(tasks).to_numpy()]
        try:
            kinds = tasks["task"].map(self.kind_of)
        except (TaskError, KeyError):
            return ""
        order = [k for k in self.kind_order if k in set(kinds)] + sorted(set(kinds) - set(self.kind_order))
        verdicts = None
        if holdout is not None and {"label", "model", "verdict", "measured_verdict"} <= set(holdout):
            if "held_out_by" in holdout:
                holdout = holdout[holdout["held_out_by"] == "field pair"]
            verdicts = holdout.set_index(["label", "model"])
        has_rules = {"tuned_minus_fewshot_withheld_ci_low", "majority_withheld"} <= set(tasks)
        out = [
            "## By kind of task",
            "",
            "Units (a task on a model) by the kind of their two fields; memorized and generalized: the gain's 95% "
            "interval lies above 0 on train and on withheld pairs. Beats both trivial rules: on withheld pairs the "
            "fine-tuned model leads the K-shot baseline (interval above 0) and scores above the majority rule. "
            "Verdicts: held out by field pair (the predictor, the paper's rule and the majority verdict, each fitted "
            "without the pair).",
            "",
            "| kind | units | memorized | generalized | generalization gain, median [min, max] "
            "| beats 5-shot and majority, withheld | predictor's verdict right | the paper's rule right "
            "| majority verdict right |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for kind in order:
            part = tasks[kinds == kind]
            gains = part["generalization_gain"].astype(float)
            cells = [
                kind,
                str(len(part)),
                str(int((part["memorization_gain_ci_low"].astype(float) > 0).sum())),
                str(int((part["generalization_gain_ci_low"].astype(float) > 0).sum())),
                f"{gains.median():+.2f} [{gains.min():+.2f}, {gains.max():+.2f}]",
            ]
            if has_rules:
                beats = (part["tuned_minus_fewshot_withheld_ci_low"].astype(float) > 0) & (
                    part["tuned_withheld"].astype(float) > part["majority_withheld"].astype(float)
                )
                cells.append(f"{int(beats.sum())}/{int(part['tuned_minus_fewshot_withheld_ci_low'].notna().sum())}")
            else:
                cells.append("-")
            for column in ("verdict", "the paper's rule (kinds of the fields): verdict", "majority verdict: verdict"):
                if verdicts is None or column not in verdicts:
                    cells.append("-")
                    continue
                keys = [k for k in zip(part["label"], part["model"]) if k in verdicts.index]
                right = sum(verdicts.loc[k, column] == verdicts.loc[k, "measured_verdict"] for k in keys)
                cells.append(f"{right}/{len(keys)}")
            out.append("| " + " | ".join(cells) + " |")
        return "\n".join([*out, ""])

    def holdout_markdown(self, baselines: pd.DataFrame) -> str:
        """``baselines.csv`` as Markdown, one table per hold-out scheme, and a sentence each on what the
        predictor's numbers say against the paper's rule and the kind mean."""
        out = [
            "Brier: multi-class (0 best, 2 worst); log loss with probabilities floored at 0.01; committed: the share "
            f"of units whose likeliest verdict has probability >= {self.commit} and how often it is right there; a "
            "rule that states a verdict without a probability gives it probability 1. Gain errors in points of the "
            "share of pairs. Brier skill is over the paper's rule (above 0: better), gain error is over the kind "
            "mean's "
            "(below 1: better).",
            "",
        ]
        if "held_out_by" not in baselines:  # written before the three hold-outs: by field pair only
            baselines = baselines.assign(held_out_by="field pair")
        for column in ("brier", "log_loss", "committed_share", "committed_right", "memorization_mae_points"):
            if column not in baselines:
                baselines = baselines.assign(**{column: np.nan})
        for column in ("brier_skill_over_papers_rule", "gain_error_over_kind_mean"):
            if column not in baselines:
                baselines = baselines.assign(**{column: np.nan})
        for scheme, b in baselines.groupby("held_out_by", sort=False):
            n = int(b["n_units"].iloc[0])
            out += [
                f"### Held out by {scheme}",
                "",
                "| rule | verdicts right | Brier | log loss | committed (right) | generalization gain MAE | "
                "memorization gain MAE | Spearman, gen. gain | Brier skill over the paper's rule "
                "| gain error / kind mean's |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for _, r in b.iterrows():
                out.append(
                    f"| {r['rule']} | {int(r['verdicts_right'])}/{n} | {_fmt(r['brier'], '.3f')} | "
                    f"{_fmt(r['log_loss'], '.3f')} | {_fmt(r['committed_share'], '.0%')} "
                    f"({_fmt(r['committed_right'], '.0%')}) | {r['gain_mae_points']:.2f} | "
                    f"{_fmt(r['memorization_mae_points'], '.2f')} | {_fmt(r['gain_spearman'], '+.2f')} | "
                    f"{_fmt(r['brier_skill_over_papers_rule'], '+.2f')} | "
                    f"{_fmt(r['gain_error_over_kind_mean'], '.2f')} |"
                )
            own = b[b["rule"].astype(str).str.startswith("predictor")]
            paper = b[b["rule"] == self.papers_rule]
            kind = b[b["rule"] == self.kind_mean]
            if not own.empty and not paper.empty and not kind.empty:
                own = own.iloc[0]
                better = (
                    own["brier"] < paper["brier"].iloc[0] and own["gain_mae_points"] < kind["gain_mae_points"].iloc[0]
                )
                out += [
                    "",
                    f"Held out by {scheme}, the predictor {'beats' if better else 'does not beat both of'} the paper's "
                    f"rule and the kind mean: Brier {own['brier']:.3f} against {paper['brier'].iloc[0]:.3f} (skill "
                    f"{own['brier_skill_over_papers_rule']:+.2f}), generalization gain error "
                    f"{own['gain_mae_points']:.2f} against {kind['gain_mae_points'].iloc[0]:.2f} points (ratio "
                    f"{own['gain_error_over_kind_mean']:.2f}); "
                    f"it commits on {own['committed_share']:.0%} of units and is right on "
                    f"{_fmt(own['committed_right'], '.0%')} of those.",
                ]
            out.append("")
        return "\n".join(out)

    def rule_table_markdown(
        self,
        table: pd.DataFrame,
        key: str,
        *,
        cells: Sequence[str | tuple[str, str]] = SKILL_CELLS,
        rules: Sequence[str] | None = None,
    ) -> str:
        """A Markdown table of rules' hold-out scores, one row per value of ``key`` and rule, in ``table``'s order.

        Parameters
        ----------
        table : DataFrame
            ``baselines.csv``, ``baselines_by_kind.csv`` or ``baselines_by_budget.csv`` (filter the hold-out
            scheme first where ``key`` is not ``held_out_by``).
        key : {"kind", "exposures", "held_out_by"}
            The first column (:data:`RULE_KEYS`); the rule is the second.
        cells : sequence of str or (str, str)
            The other columns, names of :data:`RULE_CELLS`; ``(name, header)`` gives one another header.
        rules : sequence of str, optional
            The rules shown; default the predictor, the paper's rule and the kind mean.

        Examples
        --------
        >>> from lexprobe.predict import rule_table_markdown, shipped_calibration_dir
        >>> baselines = pd.read_csv(shipped_calibration_dir() / "study-v2.2" / "baselines.csv")
        >>> markdown = rule_table_markdown(baselines, "held_out_by", cells=("units", "verdicts_right"))
        >>> for line in markdown.splitlines()[:3]:
        ...     print(line)
        | held out by | rule | units | verdicts right |
        |---|---|---|---|
        | field pair | predictor (kind-anchored) | 74 | 62/74 |
        """
        if key not in RULE_KEYS:
            raise PredictionError(f"`key` must be one of {sorted(RULE_KEYS)}, got {key!r}")
        chosen = [(c, RULE_CELLS[c][0] if c in RULE_CELLS else c) if isinstance(c, str) else tuple(c) for c in cells]
        unknown = [name for name, _ in chosen if name not in RULE_CELLS]
        if unknown:
            raise PredictionError(f"`cells` must name columns of RULE_CELLS ({sorted(RULE_CELLS)}), got {unknown}")
        rules = [self.predictor_rule, self.papers_rule, self.kind_mean] if rules is None else list(rules)
        header, spec = RULE_KEYS[key]
        headers = [header, "rule", *(h for _, h in chosen)]
        out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for _, r in table[table["rule"].isin(rules)].iterrows():
            row = [format(r[key], spec), str(r["rule"]), *(RULE_CELLS[name][1](r) for name, _ in chosen)]
            out.append("| " + " | ".join(row) + " |")
        return "\n".join(out)

    def kind_skill_markdown(self, by_kind: pd.DataFrame) -> str:
        """Skill within kinds, held out by field pair: per kind, the predictor beside the paper's rule and the
        kind mean (verdicts, Brier, gain errors). Between kinds the paper's rule answers; this is what is left."""
        part = by_kind[by_kind["held_out_by"] == "field pair"]
        return "\n".join(["### Within kinds, held out by field pair", "", self.rule_table_markdown(part, "kind")])

    def budget_skill_markdown(self, by_budget: pd.DataFrame) -> str:
        """Skill at each budget, held out by field pair, over the field pairs measured at several budgets: the
        predictor beside the paper's rule and the kind mean (which know no budget)."""
        part = by_budget[by_budget["held_out_by"] == "field pair"]
        title = "### At each budget, held out by field pair (the field pairs with learning curves)"
        return "\n".join([title, "", self.rule_table_markdown(part, "exposures")])

    def surface_markdown(self, surface: pd.DataFrame) -> str:
        """The surface check of the predictor's within-kind features (:func:`surface_check`), kinds with units of
        at least three field pairs (those with a ridge): per kind, alignment z (read for the generalization gain)
        and the target's length in tokens (read for the memorization gain, itself a surface form: its own column
        says so) against each surface form. A ``surface.csv`` written before the memorization feature was checked
        has no ``gain`` column; its rows show the gain as ``-``."""
        pairs = surface.groupby(["kind", "feature"])["n_field_pairs"].transform("max")
        shown = surface[(pairs >= self.min_class_pairs).to_numpy()]
        out = [
            "### Surface check: within kinds, does a feature follow token length or digits?",
            "",
            "Spearman's rho over a kind's units (recorded budget) of each feature a kind's ridge reads against each "
            "surface form it could be standing in for: alignment z (generalization gain) against the sides' lengths "
            "in tokens and the target's share of digits and punctuation, and the target's length in tokens "
            "(memorization gain), itself a surface form, against the others; |rho| >= 0.7 is flagged.",
            "",
            "| kind | feature | gain | units | source tokens | target tokens | target digit share |",
            "|---|---|---|---|---|---|---|",
        ]
        for (kind, feature), part in shown.groupby(["kind", "feature"], sort=False):
            by_surface = part.set_index("surface")
            cells = []
            for name in self.surfaces:
                r = by_surface.loc[name] if name in by_surface.index else None
                if name == feature:
                    cells.append("itself")
                elif r is None or pd.isna(r["rho"]):
                    cells.append("-")
                else:
                    cells.append(
                        f"{r['rho']:+.2f}" + (" (flagged)" if pd.notna(r["flagged"]) and bool(r["flagged"]) else "")
                    )
            gain = part["gain"].iloc[0] if "gain" in part else ""
            gain = gain if isinstance(gain, str) and gain else "-"
            out.append(f"| {kind} | {feature} | {gain} | {int(part['n_units'].max())} | " + " | ".join(cells) + " |")
        return "\n".join(out)

    def evaluation_markdown(self, result: CorrelationResult) -> str:
        """The evaluation in Markdown: the predictor beside the baselines held out by field pair, by ontology and
        by model (verdicts, proper scores, committed verdicts, gain errors), within each kind, the per-unit
        field-pair hold-out, the grouped AUCs, and the correlations pooled and within tasks.

        Examples
        --------
        >>> from lexprobe.predict import CorrelationResult, evaluation_markdown, read_calibration_manifest
        >>> from lexprobe.predict import read_correlate_tables, shipped_calibration_dir
        >>> folder = shipped_calibration_dir() / "study-v2.2"  # a correlate output, read back
        >>> items, tasks = read_correlate_tables([folder / "items.csv.gz"], [folder / "tasks.csv"])
        >>> table = {name: pd.read_csv(folder / f"{name}.csv") for name in ("correlations", "auc", "loto", "holdout",
        ...                                                                    "baselines")}
        >>> result = CorrelationResult(items, tasks, table["correlations"], table["auc"], table["loto"],
        ...                            read_calibration_manifest(folder), holdout=table["holdout"],
        ...                            baselines=table["baselines"])
        >>> evaluation_markdown(result).splitlines()[0]
        '## Held out three ways: the predictor beside the baselines'
        """
        out = ["## Held out three ways: the predictor beside the baselines", ""]
        if result.baselines is None:
            out += ["One field pair only: no hold-out evaluation.", ""]
        else:
            out += [self.holdout_markdown(result.baselines), ""]
            if result.by_kind is not None:
                out += [self.kind_skill_markdown(result.by_kind), ""]
            if result.by_budget is not None:
                out += [self.budget_skill_markdown(result.by_budget), ""]
            if result.surface is not None and len(result.surface):
                out += [self.surface_markdown(result.surface), ""]
            h = result.holdout
            if "held_out_by" in h:
                h = h[h["held_out_by"] == "field pair"]
            out += [
                "### Per unit, held out by field pair",
                "",
                "| unit | field pair | predicted gen. gain [interval] | measured | p (generalize / memorize only / "
                "no gain) | stated verdict | measured verdict |",
                "|---|---|---|---|---|---|---|",
            ]
            for _, r in h.iterrows():
                probs = " / ".join(_fmt(r.get(f"p: {v}"), ".2f") for v in self.verdicts)
                out.append(
                    f"| {r['label']} ({r['model']}) | {r['group']} | {r['predicted_generalization_gain']:+.3f} "
                    f"[{r['predicted_generalization_gain_ci_low']:+.3f}, "
                    f"{r['predicted_generalization_gain_ci_high']:+.3f}] "
                    f"| {r['generalization_gain']:+.3f} | {probs} | {r['stated_verdict']} | {r['measured_verdict']} |"
                )
            out.append("")
        out += [
            "## Gained on a withheld pair: grouped AUC (leave one field pair out)",
            "",
            "| model | AUC, pooled [95% CI] | AUC within tasks [95% CI] |",
            "|---|---|---|",
        ]
        for _, r in result.auc.iterrows():

            def fmt(v, lo, hi):
                return "-" if pd.isna(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"

            out.append(
                f"| {r['model']} | {fmt(r['auc'], r['ci_low'], r['ci_high'])} "
                f"| {fmt(r['within_auc'], r['within_ci_low'], r['within_ci_high'])} |"
            )
        note = result.auc["note"].iloc[0] if len(result.auc) else ""
        out += ["", f"Intervals: cluster bootstrap over units. {note}".strip(), ""]
        out += [
            "## Spearman correlations, pooled and within tasks (cluster bootstrap over units)",
            "",
            "| relation | items | pooled [95% CI] | within tasks [95% CI] |",
            "|---|---|---|---|",
        ]
        c = result.correlations
        for relation, part in c[c["scope"].isin(["all", "within tasks"])].groupby("relation", sort=False):
            cells = []
            for scope in ("all", "within tasks"):
                r = part[part["scope"] == scope].iloc[0]
                cells.append("-" if pd.isna(r["rho"]) else f"{r['rho']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
            out.append(f"| {relation} ({part['split'].iloc[0]}) | {int(part['n'].iloc[0])} | {cells[0]} | {cells[1]} |")
        out.append("")
        return "\n".join(out)

    def summary_markdown(self, summary: pd.DataFrame) -> str:
        """:func:`summary_table` as Markdown: one table per model, accuracies and gains with 95% intervals.

        Examples
        --------
        >>> from lexprobe.predict import read_tasks_table, shipped_calibration_dir, summary_markdown, summary_table
        >>> tasks = read_tasks_table(shipped_calibration_dir() / "study-v2.2" / "tasks.csv")
        >>> markdown = summary_markdown(summary_table(tasks))
        >>> [line for line in markdown.splitlines() if line.startswith("### ")]  # one table per model
        ['### smollm2-135m', '### gemma3-270m']
        """
        out = []
        for model, part in summary.groupby("model", sort=False):
            out += [f"### {model}", "", SUMMARY_HEADER, "|" + "---|" * SUMMARY_HEADER.count(" | ") + "---|"]
            for _, r in part.iterrows():
                predicted = (
                    f"{r['predicted_verdict']} ({r['predicted_generalization_gain']:+.3f})"
                    if r["predicted_verdict"]
                    else ""
                )
                cells = [
                    r["label"],
                    f"{r['n_train']}+{r['n_withheld']}",
                    *(_interval(r, f"{w}_{s}") for s in self.splits for w in ("baseline", "tuned")),
                    _interval(r, "memorization_gain", "+"),
                    _interval(r, "generalization_gain", "+"),
                    str(int(r["layer"])),
                    f"{r['alignment_z']:.1f}",
                    f"{r['lexicalization']:.3f}",
                    predicted,
                    r["measured_verdict"],
                ]
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        return "\n".join(out)

    def summary_document(self, result: CorrelationResult, summary: pd.DataFrame | None = None) -> str:
        """``summary.md``: the per-model summary tables (``summary``, :func:`lexprobe.predict.summary_table`,
        where the tasks have what it needs), the few-shot comparison and the kinds of task (where the tasks
        have them), then :meth:`evaluation_markdown`."""
        columns = set(result.tasks.columns)
        text = self.evaluation_markdown(result)
        if {"memorization_gain_ci_low", "generalization_gain_ci_low"} <= columns and (
            kinds := self.kind_markdown(result.tasks, result.holdout)
        ):
            text = kinds + "\n" + text
        if {"baseline_train", "tuned_train"} <= columns and (few := self.few_shot_markdown(result.tasks)):
            text = few + "\n" + text
        if summary is not None:
            text = self.summary_markdown(summary) + "\n" + text
        return text
