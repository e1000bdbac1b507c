"""The hint an error gives for a mistyped name."""

from __future__ import annotations

import pytest

from lexprobe.exceptions import did_you_mean


@pytest.mark.parametrize(
    ("value", "known", "hint"),
    [
        ("hgcn", ("go", "hgnc", "hpo"), " (did you mean 'hgnc'?)"),
        ("HGNC2", ("go", "hgnc", "hpo"), " (did you mean 'hgnc'?)"),
        ("symbl", ("name", "symbol", "synonym"), " (did you mean 'symbol'?)"),
        ("alias", ("alias_symbol", "symbol"), " (did you mean 'alias_symbol'?)"),  # the one name it begins
        ("smollm2", ("smollm2-135m", "gemma3-270m"), " (did you mean 'smollm2-135m'?)"),
        ("mesh", ("go", "hgnc", "hpo"), ""),
        ("gpt2", ("smollm2-135m", "gemma3-270m"), ""),
        ("", ("go", "hgnc"), ""),
    ],
)
def test_a_close_known_name_is_suggested_and_none_otherwise(value: str, known: tuple[str, ...], hint: str) -> None:
    assert did_you_mean(value, known) == hint


def test_a_value_two_names_begin_with_is_no_hint_unless_one_is_close() -> None:
    assert did_you_mean("prev", ("previous_symbol", "previous_name")) == ""
    assert did_you_mean("go-annotation", ("go", "go-annotations")) == " (did you mean 'go-annotations'?)"
