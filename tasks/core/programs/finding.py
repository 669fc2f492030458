"""A doctor check's verdict, shared by the checks of each area (doctor.py, doctor_db.py)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

LEVELS = ("ok", "warn", "fail")


@dataclass(frozen=True)
class Finding:
    """One check's verdict on one host: its name, ok / warn / fail, what it found, and the fix."""
    check: str
    level: str
    text: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def worst(found: list[Finding]) -> str:
    return max((f.level for f in found), key=LEVELS.index, default="ok")
