"""What every stage config shares: the dict a manifest records and the config read back from one (issue 33).

The stage configs (:class:`lexprobe.embed.ExtractionConfig`, :class:`lexprobe.align.AlignmentConfig`,
:class:`lexprobe.lexical.LexicalConfig`, :class:`lexprobe.predict.FeatureConfig`,
:class:`lexprobe.exposure.ExposureConfig`, :class:`lexprobe.train.TrainConfig`) are frozen dataclasses with flat
fields; each inherits :class:`StageConfig` for ``to_dict`` / ``from_dict``. The keys are the field names, as
``dataclasses.asdict`` gives them, so the manifests already published stay readable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["StageConfig"]

_C = TypeVar("_C", bound="StageConfig")


class StageConfig:
    """Mixin for a stage's config dataclass: :meth:`to_dict` and :meth:`from_dict`.

    Examples
    --------
    >>> import dataclasses, json
    >>> @dataclasses.dataclass(frozen=True)
    ... class Toy(StageConfig):
    ...     layers: tuple[int, ...] = (0, -1)
    ...     seed: int = 0
    >>> Toy().to_dict()
    {'layers': (0, -1), 'seed': 0}
    >>> Toy.from_dict(json.loads(json.dumps(Toy(seed=3).to_dict())) | {"layers_resolved": [0, 30]})
    Toy(layers=(0, -1), seed=3)
    """

    def to_dict(self) -> dict[str, Any]:
        """Every field by its name, as ``dataclasses.asdict`` gives them (what a manifest's ``config`` records):
        values as the config holds them, which ``json`` writes as they are (a tuple as a list)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        """The config a dict records (:meth:`to_dict`, or a manifest's ``config`` read from JSON).

        Keys that are no field of the config are left out: a manifest records what the run resolved beside
        its config (``layers_resolved``, ``pairs_resolved``, ``fields_resolved``), and records of other
        versions may name settings this one does not have. A field the dict lacks takes its default; a list
        becomes a tuple (JSON has no tuples), so ``from_dict(json.loads(json.dumps(c.to_dict()))) == c``.
        The config's own checks run as for any other construction.
        """
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})
