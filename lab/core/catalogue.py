"""Discovery of the anti-pattern catalogue.

Every module in `pglab.antipatterns` is one entry; its file name is the id. Finding them with
`pkgutil` instead of a registry means adding an anti-pattern is adding files, never editing a
list. The lesson is the module docstring, split into fixed sections so that `pglab explain`,
the completeness test and later tooling all read the same text.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import ModuleType

from pglab import antipatterns
from pglab.lab.core.errors import UnknownEntry, UserError
from pglab.lab.core.fixes import fix_blocks

LESSON_SECTIONS = (
    "What it is",
    "Why it hurts",
    "What you see under load",
    "How pglab detects it",
    "The fix",
    "Example",
    "References",
)
CATEGORIES = ("indexing", "query-shape", "round-trips", "connections", "transactions", "writes")
CODE_PATTERN = re.compile(r"^PGL\d{3}$")
_HEADING = re.compile(r"^## (.+?)\s*$", re.MULTILINE)
_FENCE = re.compile(r"```[a-z]*\n.*?```", re.DOTALL)
# A line `{fix:BLOCK}` in a lesson stands for that block of `fixes/<id>.sql`, and `{path:FUNCTION}`
# for that function of the lab service's code path `lab/trial/service/paths/<id>.py`: the fix is
# written once, and the lesson shows the very code the lab measures.
_INCLUDE = re.compile(r"^\{(fix|path):(\w+)\}$", re.MULTILINE)
SERVICE_PATHS = "pglab.lab.trial.service.paths"


def include_fixes(entry_id: str, text: str) -> str:
    """`text` with every include line replaced by the fenced block it names."""
    if "{fix:" not in text and "{path:" not in text:
        return text

    def block(match: re.Match[str]) -> str:
        kind, name = match.groups()
        if kind == "fix":
            blocks = fix_blocks(entry_id)
            if name not in blocks:
                raise UserError(f"the lesson of {entry_id} includes {{fix:{name}}}, but fixes/{entry_id}.sql has "
                                f"no '{name}' block")
            return f"```sql\n{blocks[name]}\n```"
        return f"```python\n{path_function(entry_id, name)}\n```"

    return _INCLUDE.sub(block, text)


def path_function(entry_id: str, name: str) -> str:
    """The source of one function of the lab service's code path for `entry_id`, read as text."""
    resource = resources.files(SERVICE_PATHS) / f"{entry_id}.py"
    if not resource.is_file():
        raise UserError(f"the lesson of {entry_id} includes {{path:{name}}}, but the lab service has no path "
                        f"{entry_id}.py")
    source = resource.read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return ast.get_source_segment(source, node) or ""
    raise UserError(f"the lesson of {entry_id} includes {{path:{name}}}, but paths/{entry_id}.py has no {name}()")


@dataclass(frozen=True)
class Entry:
    id: str
    code: str
    title: str
    category: str
    static_signal: str | None
    not_static_reason: str | None
    runtime_signal: str
    fix_hint: str
    sections: dict[str, str]
    module: ModuleType

    @property
    def summary(self) -> str:
        """The first paragraph of "What it is": short enough for a table cell."""
        return self.sections.get("What it is", "").strip().split("\n\n")[0].replace("\n", " ")

    @property
    def lesson_markdown(self) -> str:
        body = "\n\n".join(f"## {name}\n\n{include_fixes(self.id, text.strip())}"
                           for name, text in self.sections.items())
        return f"# {self.code} {self.id}: {self.title}\n\n{body}\n"

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "code": self.code,
            "title": self.title,
            "category": self.category,
            "summary": self.summary,
            "static_signal": self.static_signal,
            "not_static_reason": self.not_static_reason,
            "runtime_signal": self.runtime_signal,
            "fix_hint": self.fix_hint,
        }


def parse_lesson(docstring: str) -> tuple[str, dict[str, str]]:
    """Split a lesson docstring into its title line and its `## ` sections, in file order."""
    text = docstring.strip()
    title, _, rest = text.partition("\n")
    headings = list(_HEADING.finditer(rest))
    sections: dict[str, str] = {}
    for index, match in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(rest)
        sections[match.group(1)] = rest[match.end() : end].strip()
    return title.strip(), sections


def example_blocks(entry: Entry) -> dict[str, str]:
    """The naive and fixed code blocks of the lesson's Example section, keyed by `### ` label."""
    blocks: dict[str, str] = {}
    example = include_fixes(entry.id, entry.sections.get("Example", ""))
    for part in re.split(r"^### ", example, flags=re.MULTILINE)[1:]:
        label, _, body = part.partition("\n")
        fence = _FENCE.search(body)
        if fence:
            blocks[label.strip().lower()] = fence.group(0)
    return blocks


def _entry_from_module(entry_id: str, module: ModuleType) -> Entry:
    title, sections = parse_lesson(module.__doc__ or "")
    return Entry(
        id=entry_id,
        code=getattr(module, "CODE", ""),
        title=title,
        category=getattr(module, "CATEGORY", ""),
        static_signal=getattr(module, "STATIC_SIGNAL", None),
        not_static_reason=getattr(module, "NOT_STATIC_REASON", None),
        runtime_signal=getattr(module, "RUNTIME_SIGNAL", ""),
        fix_hint=getattr(module, "FIX_HINT", ""),
        sections=sections,
        module=module,
    )


@cache
def load_catalogue() -> tuple[Entry, ...]:
    """Every entry, ordered by code (codes are stable, so listings are too)."""
    entries = []
    for info in pkgutil.iter_modules(antipatterns.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{antipatterns.__name__}.{info.name}")
        entries.append(_entry_from_module(info.name, module))
    return tuple(sorted(entries, key=lambda entry: (entry.code, entry.id)))


def find_entry(key: str) -> Entry:
    """Look an entry up by id or by code, case-insensitively; suggest near names when none fits."""
    wanted = key.strip().lower()
    for entry in load_catalogue():
        if wanted in (entry.id, entry.code.lower()):
            return entry
    import difflib  # only for a mistyped id: `pglab check` does not pay for its import at start-up

    names = [entry.id for entry in load_catalogue()] + [entry.code for entry in load_catalogue()]
    close = difflib.get_close_matches(key.strip(), names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else "; `pglab catalog` lists them"
    raise UnknownEntry(f"unknown anti-pattern {key!r}{hint}")


def lesson_problems(entry: Entry) -> list[str]:
    """Everything an entry lacks, as readable complaints; empty when the entry is complete.

    The completeness test runs this over the whole catalogue, so a new entry missing a section, an
    example or its metadata fails CI instead of shipping half a lesson.
    """
    problems = [f"missing section {name!r}" for name in LESSON_SECTIONS if not entry.sections.get(name)]
    extra = [name for name in entry.sections if name not in LESSON_SECTIONS]
    problems += [f"unexpected section {name!r}" for name in extra]
    if [name for name in entry.sections if name in LESSON_SECTIONS] != [
        name for name in LESSON_SECTIONS if name in entry.sections
    ]:
        problems.append("sections out of order")
    try:
        blocks = example_blocks(entry)
    except UserError as error:
        blocks = {}
        problems.append(str(error))
    problems += [f"Example lacks a {label} code block" for label in ("naive", "fixed") if label not in blocks]
    if "postgresql.org/docs" not in entry.sections.get("References", ""):
        problems.append("References cite no PostgreSQL documentation page")
    if not entry.title:
        problems.append("no title line")
    if not CODE_PATTERN.match(entry.code):
        problems.append(f"code {entry.code!r} is not PGL + 3 digits")
    if entry.category not in CATEGORIES:
        problems.append(f"category {entry.category!r} is not one of {', '.join(CATEGORIES)}")
    if not entry.static_signal and not entry.not_static_reason:
        problems.append("neither STATIC_SIGNAL nor NOT_STATIC_REASON says how static analysis sees it")
    if not entry.runtime_signal:
        problems.append("no RUNTIME_SIGNAL")
    if not entry.fix_hint:
        problems.append("no FIX_HINT")
    detects = entry.sections.get("How pglab detects it", "")
    if "Static" not in detects or "Runtime" not in detects:
        problems.append("'How pglab detects it' must have a Static and a Runtime part")
    return problems
