"""The audit's words, defined once: similarity bands, guides, reviewers' verdicts and descriptor directions.

Each is a StrEnum, so a member is equal to the string stored in audit.sqlite and written to reports ("high", "td",
"not_copy"), and carries the words a person reads (`label`). Importable without torch or Qt.
"""

from __future__ import annotations

from enum import StrEnum


class BandName(StrEnum):
    HIGH = "high"
    MID = "mid"
    LOW = "low"

    @property
    def label(self) -> str:
        return self.value


# The order a reviewer reads them in (closest first), and the order of their edges on a similarity axis.
BANDS_HIGH_FIRST = (BandName.HIGH, BandName.MID, BandName.LOW)
BANDS_LOW_FIRST = (BandName.LOW, BandName.MID, BandName.HIGH)


class Guide(StrEnum):
    """What steered an extraction leg: nothing (Random, gamma 0), SIDE's f_TD, or the baseline OL-TI's f_TI."""

    NONE = "none"
    TD = "td"
    TI = "ti"

    @property
    def label(self) -> str:
        return {"none": "random (no guidance)", "td": "SIDE (f_TD)", "ti": "OL-TI (f_TI)"}[self.value]

    @property
    def short(self) -> str:
        return {"none": "Random", "td": "SIDE", "ti": "OL-TI"}[self.value]

    @property
    def tag(self) -> str:
        """How a run's name begins in the GUI's gallery and tables ("random", "TD γ=5")."""
        return {"none": "random", "td": "TD", "ti": "TI"}[self.value]

    @property
    def time_dependent(self) -> bool:
        return self is Guide.TD


GUIDES = tuple(Guide)


class Verdict(StrEnum):
    """A reviewer's call on one pair."""

    COPY = "copy"
    NOT_COPY = "not_copy"
    UNSURE = "unsure"

    @property
    def label(self) -> str:
        return {"copy": "Copy", "not_copy": "Not a copy", "unsure": "Unsure"}[self.value]


VERDICTS = tuple(Verdict)


class Direction(StrEnum):
    """Which way a descriptor's score points: a distance (nL2 on pixels, smaller = closer, range [0, 2]) or a
    similarity (cosine of embeddings, larger = closer, up to 1)."""

    DISTANCE = "distance"
    SIMILARITY = "similarity"

    @property
    def unit(self) -> str:
        return "nL2" if self is Direction.DISTANCE else "cosine"

    @property
    def raw_name(self) -> str:
        """What the matcher's raw score is before normalisation: RMS pixel distance, or the cosine itself."""
        return "raw l2 (RMS, 0..1)" if self is Direction.DISTANCE else "cosine"

    @property
    def closer(self) -> str:
        return "smaller = closer" if self is Direction.DISTANCE else "larger = closer"

    @property
    def top(self) -> float:
        """The upper end of the score's range: a band that ends there includes its upper edge."""
        return 2.0 if self is Direction.DISTANCE else 1.0

    @property
    def percentile(self) -> int:
        """Which percentile of the best scores is the closest-matches statistic: the 5th distance, the 95th
        similarity."""
        return 5 if self is Direction.DISTANCE else 95

    @classmethod
    def of_descriptor(cls, descriptor: str) -> Direction:
        """Pixels are compared by nL2; every embedding (SSCD, any TorchScript model) by cosine."""
        return cls.DISTANCE if descriptor == "pixels" else cls.SIMILARITY
