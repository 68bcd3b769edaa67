"""Tiered hints: the symptom, then where to look, then the idea of the fix.

They come from the lesson and the catalogue, so they never drift from what pglab teaches. A mystery
exercise keeps the anti-pattern's name out of the first two tiers; the last one names it.
"""

from __future__ import annotations

from pglab.lab.core.catalogue import Entry, find_entry


def tiers(entry: Entry, mystery: bool) -> list[str]:
    seen = _first_paragraph(entry.sections.get("What you see under load", ""))
    named = not mystery
    return [
        f"The symptom: {seen}",
        f"Where to look: {entry.runtime_signal}. "
        + ("Run `pglab diagnose --dsn DSN` against the server `pglab lab observe .` prints, while it runs, "
           "and read the plans of the slowest statements." if mystery else
           f"`pglab explain {entry.id}` says how pglab detects it."),
        f"The idea of the fix: {entry.fix_hint}. {_first_paragraph(entry.sections.get('The fix', ''))}"
        + ("" if named else f" (This is {entry.id}: `pglab explain {entry.id}`.)"),
    ]


def next_hint(entry_id: str, mystery: bool, used: int) -> str | None:
    """The hint after `used` ones, or None when every tier has been shown."""
    hints = tiers(find_entry(entry_id), mystery)
    return hints[used] if used < len(hints) else None


def hint_count(entry_id: str, mystery: bool) -> int:
    return len(tiers(find_entry(entry_id), mystery))


def _first_paragraph(text: str) -> str:
    return text.strip().split("\n\n")[0].replace("\n", " ")
