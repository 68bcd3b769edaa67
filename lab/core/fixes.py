"""Reading the reference fixes: `fixes/<id>.sql`, split into named blocks.

A block starts at a line `-- name: BLOCK` and runs to the next one. The blocks every fix may have:
`setup` (tables and data that make the anti-pattern visible, on top of `lab/trial/schema.sql`), `naive`
(the statement(s) that hurt), `migrate` (the DDL of the fix) and `fixed` (the statement(s) after
the fix); an entry whose naive code answers wrongly adds `oracle`, the right answer computed
another way. The lesson, the detector tests and the lab all read the same blocks, so the SQL that
is taught is the SQL that is measured.
"""

from __future__ import annotations

import re
from importlib import resources

from pglab.lab.core.errors import UserError

_BLOCK = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_blocks(text: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    markers = list(_BLOCK.finditer(text))
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        blocks[marker.group(1)] = text[marker.end() : end].strip()
    return blocks


def fix_blocks(entry_id: str) -> dict[str, str]:
    """The named blocks of `fixes/<entry_id>.sql`; a UserError if the file does not exist."""
    resource = resources.files("pglab.fixes") / f"{entry_id}.sql"
    if not resource.is_file():
        raise UserError(f"no reference fix file fixes/{entry_id}.sql")
    return parse_blocks(resource.read_text(encoding="utf-8"))


def chat_schema() -> str:
    """The naive chat schema every lab run and detector test starts from."""
    return (resources.files("pglab.lab.trial") / "schema.sql").read_text(encoding="utf-8")
