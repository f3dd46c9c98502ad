"""Reading tqdm's progress bar back from captured stderr."""
from __future__ import annotations


def renders(err: str) -> list[str]:
    """Each drawing of the bar, in order (tqdm redraws it in place after a carriage return)."""
    return [line for line in err.replace("\n", "\r").split("\r") if line.strip()]
