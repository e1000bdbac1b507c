"""Constants, units (a task on a model) and field pairs (a task and its reverse): what every part keys on."""

from __future__ import annotations

import logging
import re
from typing import Any

import pandas as pd

from lexprobe.predict._schema import GAIN_NAMES, ITEMS, SPLITS

#: Per-item features measured on a task's items (no training).
MEASURED_FEATURES = ("alignment", "lexicalization", "log_popularity", "target_tokens")


#: Features of the predictor (task means) and of the AUC models (per item): the measured ones and two controls
#: computed from an items table, the string template (:func:`template_share`) and the seen answer
#: (:func:`seen_target_share`).
FEATURES = (*MEASURED_FEATURES, "template_share", "seen_target_share")


#: The three verdicts, from best to worst.
VERDICTS = ("will generalize", "memorization only", "unlikely to improve")


_SPLITS = SPLITS  # declared with the tables (lexprobe.predict._schema)


#: A cut between "reached" and "not reached" (memorized, generalized) is fitted only when each side holds units
#: of at least this many field pairs. With fewer, Youden's J puts the cut wherever one pair's held-out
#: prediction falls (calibration v2: 40 of 41 units memorized, and the one that did not set the memorization
#: cut), so no cut is fitted and the flag goes to the side most calibration units are on. The same number
#: makes :func:`lexprobe.predict.fit_predictor` warn of a thin calibration.
MIN_CLASS_PAIRS = 3


_GAIN_NAMES = GAIN_NAMES


def field_pair(task: str) -> str:
    """The field pair of a task: ``name-to-symbol`` and ``symbol-to-name`` are both ``name/symbol``.

    A task and its reverse share their items' texts (and, on one model, their alignment, lexicalization and
    popularity), so they are held out together: the hold-out unit of every evaluation is the field pair.

    Examples
    --------
    >>> field_pair("name-to-symbol"), field_pair("symbol-to-name"), field_pair("id-to-name")
    ('name/symbol', 'name/symbol', 'id/name')
    """
    match = re.fullmatch(r"(.+?)-to-(.+)", str(task).strip())
    if not match:
        return str(task).strip()
    return "/".join(sorted((match.group(1), match.group(2))))


def task_identity(ontology: str, task: str) -> str:
    """``"<ontology name> <field pair>"``: what identifies a task for leaving it out (never a file name).

    ``ontology`` is the name of the ontology as loaded (:attr:`lexprobe.ontology.Ontology.name`), which is the
    same for a built-in and for its file given as a path.

    Examples
    --------
    >>> task_identity("hgnc", "symbol-to-name")  # held out together with hgnc name-to-symbol
    'hgnc name/symbol'
    """
    return f"{ontology} {field_pair(task)}"


def _units(frame: pd.DataFrame) -> pd.Series:
    """One key per calibration unit: a task (``label``) measured with one model. The same task tuned on two
    models is two units; every hold-out leaves out all units of a field pair.

    ``frame``: an items or tasks table, or a unit table made from them; the label columns it may lack (``model``
    here, ``ontology``, ``task`` and ``field_pair`` in :func:`_pair_groups`) are declared alike in both schemas.
    """
    if not ITEMS.has(frame, "model"):
        return frame["label"].astype(str)
    return frame["label"].astype(str) + " | " + frame["model"].astype(str)


def _pair_groups(frame: pd.DataFrame) -> pd.Series:
    """The hold-out group of each row: ontology and field pair (a ``field_pair`` column wins when given)."""
    label = frame["label"].astype(str)
    ontology = frame["ontology"].astype(str) if ITEMS.has(frame, "ontology") else label.str.rsplit(" ", n=1).str[0]
    if ITEMS.has(frame, "field_pair") and frame["field_pair"].notna().all():
        pair = frame["field_pair"].astype(str)
    elif ITEMS.has(frame, "task"):
        pair = frame["task"].map(field_pair)
    else:
        pair = label.str.rsplit(" ", n=1).str[-1].map(field_pair)
    return ontology + " " + pair


def _measured_verdict(task_row: pd.Series | dict[str, Any]) -> str:
    if task_row["generalized"]:
        return VERDICTS[0]
    if task_row["memorized"]:
        return VERDICTS[1]
    return VERDICTS[2]


logger = logging.getLogger(__name__)
