"""The audit's words, defined once: similarity bands, guides, reviewers' verdicts and descriptor directions.

Each is a StrEnum, so a member is equal to the string stored in audit.sqlite and written to reports ("high", "td",
"not_copy"). Each member is declared with the words people read beside that value, so that a table of members is
the whole vocabulary. Importable without torch or Qt.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class Labelled(StrEnum):
    """A StrEnum whose members are declared as (stored value, the label people read)."""

    label: str

    def __new__(cls, value: str, label: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member


class BandName(Labelled):
    HIGH = "high", "high"
    MID = "mid", "mid"
    LOW = "low", "low"


# The order a reviewer reads them in (closest first), and the order of their edges on a similarity axis.
BANDS_HIGH_FIRST = (BandName.HIGH, BandName.MID, BandName.LOW)
BANDS_LOW_FIRST = (BandName.LOW, BandName.MID, BandName.HIGH)


class Guide(StrEnum):
    """What steered an extraction leg: nothing (Random, gamma 0), SIDE's f_TD, or the baseline OL-TI's f_TI."""

    label: str  # in reports: "SIDE (f_TD)"
    short: str  # in plot legends: "SIDE"
    tag: str  # how a run's name begins in the GUI's gallery and tables: "TD γ=5"

    NONE = "none", "random (no guidance)", "Random", "random"
    TD = "td", "SIDE (f_TD)", "SIDE", "TD"
    TI = "ti", "OL-TI (f_TI)", "OL-TI", "TI"

    def __new__(cls, value: str, label: str, short: str, tag: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label, member.short, member.tag = label, short, tag
        return member

    @property
    def time_dependent(self) -> bool:
        return self is Guide.TD


GUIDES = tuple(Guide)


class Verdict(Labelled):
    """A reviewer's call on one pair."""

    COPY = "copy", "Copy"
    NOT_COPY = "not_copy", "Not a copy"
    UNSURE = "unsure", "Unsure"


VERDICTS = tuple(Verdict)


class Direction(StrEnum):
    """Which way a descriptor's score points: a distance (nL2 on pixels, smaller = closer, range [0, 2]) or a
    similarity (cosine of embeddings, larger = closer, up to 1)."""

    unit: str  # the banded score's name
    raw_name: str  # the matcher's score before normalisation: RMS pixel distance, or the cosine itself
    closer: str
    top: float  # the upper end of the score's range: a band that ends there includes its upper edge
    percentile: int  # which percentile of the best scores is the closest-matches statistic

    DISTANCE = "distance", "nL2", "raw l2 (RMS, 0..1)", "smaller = closer", 2.0, 5
    SIMILARITY = "similarity", "cosine", "cosine", "larger = closer", 1.0, 95

    def __new__(cls, value: str, unit: str, raw_name: str, closer: str, top: float, percentile: int) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.unit, member.raw_name, member.closer, member.top, member.percentile = (
            unit, raw_name, closer, top, percentile)
        return member

    @classmethod
    def of_descriptor(cls, descriptor: str) -> Direction:
        """Pixels are compared by nL2; every embedding (SSCD, any TorchScript model) by cosine."""
        return cls.DISTANCE if descriptor == "pixels" else cls.SIMILARITY


# Words and figures the screens and the evidence export both print, once (the app imports them without torch).
DIFF_GAIN = 4  # the difference view shows 4 x |generated - training|: a 10-level difference must not look equal
DIFFERENCE = f"|difference| \u00d7 {DIFF_GAIN}"
EQUAL = "white = equal"
NEAREST = "nearest training image"
OUTSIDE = "outside the bands"
GU_CUT = 1 / 3  # Gu et al.: memorized where the nearest is under a third of the second nearest's l2 distance
NO_TARGET = "none (unguided)"  # a random image's target: its stored label only seeded its noise
