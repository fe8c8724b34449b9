"""The repository stands on its own: its design document and licences are in it, and nothing points outside."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from repo_paths import REPO

TEXT_SUFFIXES = {".py", ".md", ".toml", ".json", ".nk", ".gizmo", ".txt", ".sh", ".lock", ""}
#: Phrases that send a reader to files a user of this repository does not have.
OUTSIDE_POINTERS = re.compile(r"shared folder|\.\./shared/|/work/shared|team's shared", re.IGNORECASE)


def _tracked_text_files():
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot list the repository's files")
    files = [REPO / line for line in out.splitlines() if line]
    return [p for p in files if p.is_file() and p.suffix in TEXT_SUFFIXES and p != Path(__file__).resolve()]



def _lines_matching(pattern: re.Pattern) -> list:
    """``path:line: text`` of every line of the repository's text files that ``pattern`` finds."""
    return [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
            for path in _tracked_text_files()
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if pattern.search(line)]

def test_the_design_document_is_in_the_repository_and_nothing_points_to_a_shared_folder():
    design = REPO / "docs" / "DESIGN.md"
    text = design.read_text()
    for heading in ("Numerics contract", "The Nuke contract", "Architecture"):
        assert heading in text, heading
    offenders = _lines_matching(OUTSIDE_POINTERS)
    assert not offenders, "references to files outside the repository:\n" + "\n".join(offenders)
    assert "docs/DESIGN.md" in (REPO / "README.md").read_text()


def test_code_licence_and_weights_licence_are_stated():
    licence = (REPO / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the CorridorKey for Nuke contributors" in licence
    assert re.search(r'^license\s*=\s*"MIT"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Licence\n", 1)[1].split("\n## ", 1)[0]
    for needle in ("MIT", "CC BY-NC-SA 4.0", "paid API", "commercial"):
        assert needle in section, needle


def test_every_mention_of_the_design_document_gives_its_path():
    """A bare "DESIGN.md" sends a reader looking in the wrong folder: it lives at docs/DESIGN.md."""
    offenders = _lines_matching(re.compile(r"(?<![\w/])DESIGN\.md"))
    assert not offenders, "write docs/DESIGN.md:\n" + "\n".join(offenders)


def _docs():
    return [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))


def _cells(row: str) -> list:
    """A markdown table row's cells (an escaped ``\\|`` stays inside its cell)."""
    return re.split(r"(?<!\\)\|", row.strip().strip("|"))


def test_every_knob_table_in_the_docs_is_the_knob_spec():
    """A markdown table with a Knob column lists exactly the spec's knobs; the full knob table is the generated one."""
    from corridorkey_model.keying.knobs import KNOBS, knob_table_markdown

    names = [k.name for k in KNOBS]
    tables = 0
    for path in _docs():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            cells = [c.strip() for c in _cells(line)]
            if not line.startswith("|") or "Knob" not in cells:
                continue
            tables += 1
            column = cells.index("Knob")
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(re.findall(r"`(\w+)`", _cells(row)[column])[0])
            assert rows == names, f"{path.relative_to(REPO)}:{i + 1}: knob table lists {rows}, the spec {names}"
            if line.startswith("| Knob | Type |"):
                assert "\n".join(lines[i:i + 2 + len(rows)]) == knob_table_markdown(), path
    assert tables >= 3  # README, docs/nuke.md, docs/pipeline.md


def test_no_doc_counts_the_knobs_wrong():
    from corridorkey_model.keying.knobs import KNOBS

    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
    count = re.compile(r"\b(?:with|the|has|its|all) (\w+) (?:live |model |\.cat )?knobs\b", re.IGNORECASE)
    for path in _docs() + sorted((REPO / "export").glob("*.py")) + sorted((REPO / "corridorkey_model").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in count.finditer(line):
                said = words.get(m.group(1).lower(), int(m.group(1)) if m.group(1).isdigit() else None)
                assert said in (None, len(KNOBS)), f"{path.relative_to(REPO)}:{n}: {line.strip()}"
