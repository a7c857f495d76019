"""Share indices nobody claimed, survey after survey, sans-IO.

A share nobody claims may sit with a holder that joins pushed past the
lookup window and that will hand it closer soon; like a holder that failed
once, it is rebuilt at once only when the set is under the threshold, and
before it is rebuilt the holder looks farther for it.
"""

from __future__ import annotations

from p2pbackup.maintenance.survey import Survey

# Per share index: in how many surveys running nobody claimed it.
Streaks = dict[int, int]


def look_wider(survey: Survey, streaks: Streaks, lost_after: int, threshold: int) -> bool:
    """Shares nobody claimed, about to be rebuilt (under the threshold, or unseen
    too long): first look farther, where joins may have pushed their holders."""
    claimed = survey.claimed()
    if len(claimed) == survey.descriptor.n:
        return False
    due = any(
        streaks.get(i, 0) + 1 >= lost_after for i in range(survey.descriptor.n) if i not in claimed
    )
    return due or survey.live < threshold


def unseen_after(survey: Survey, streaks: Streaks) -> Streaks:
    """The streaks once this survey is counted: indices claimed now drop out."""
    claimed = survey.claimed()
    return {i: streaks.get(i, 0) + 1 for i in range(survey.descriptor.n) if i not in claimed}
