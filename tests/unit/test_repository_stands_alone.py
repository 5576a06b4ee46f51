"""A fresh clone with nothing beside it has everything it reads, links and cites.

No tracked file may read a path outside the checkout (``../shared``, a development machine's
absolute folder, ``PROJECT_ROOT.parent``, ``Path(__file__).parents[n]`` above the root), link
one from Markdown, or cite the team's outside design page; and every sample payload is listed
in ``samples/README.md`` with its source at a commit and its licence.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from synapseops.settings import PROJECT_ROOT
from tests.fixtures import SAMPLES

THIS_FILE = Path(__file__).resolve().relative_to(PROJECT_ROOT).as_posix()
# What the walk skips when there is no git checkout to ask (an unpacked archive).
UNTRACKED = {".git", ".venv", ".data", "node_modules", "build", "__pycache__"}

OUTSIDE = {
    "a sibling checkout's folder": re.compile(r"\.\./shared\b|\bshared/fixtures\b"),
    "a development machine's absolute path": re.compile(r"(?<![\w.])/work/"),
    "the folder above the project": re.compile(r"\bPROJECT_ROOT\.parent\b"),
    "the team's outside design page": re.compile(r"\bDESIGN\.md\b"),
}
PARENTS = re.compile(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")

LICENCES = {"MIT", "Apache-2.0", "CC0-1.0", "BSD-2-Clause", "BSD-3-Clause"}
PINNED_SOURCE = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+/blob/[0-9a-f]{40}/\S+")
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*([^|]+?)\s*\|\s*$")


def tracked_files() -> list[str]:
    """The repository's files: git's list in a checkout, else a walk of the tree."""
    if (PROJECT_ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True
        ).stdout.decode()
        return [name for name in listed.split("\0") if name]
    return [
        path.relative_to(PROJECT_ROOT).as_posix()
        for path in PROJECT_ROOT.rglob("*")
        if path.is_file()
        and not UNTRACKED.intersection(path.relative_to(PROJECT_ROOT).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]


def text_of(name: str) -> str | None:
    path = PROJECT_ROOT / name
    if not path.is_file():
        return None  # listed by git but deleted in the work tree
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def reaches_outside(name: str, text: str) -> list[str]:
    """Each way ``text`` (the file ``name``) reads, links or cites something outside the repo."""
    found = [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {why} ({match.group(0)!r})"
        for why, pattern in OUTSIDE.items()
        for match in pattern.finditer(text)
    ]
    # parents[0] of a file is its folder; parents[depth - 1] is the root, anything above is out.
    depth = len(Path(name).parts)
    for match in PARENTS.finditer(text):
        if int(match.group(1)) >= depth:
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{name}:{line}: climbs above the project ({match.group(0)!r})")
    if name.endswith(".md"):
        for match in MARKDOWN_LINK.finditer(text):
            target = match.group(1).split("#", 1)[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # an anchor, or a URL (https:, mailto:)
            resolved = ((PROJECT_ROOT / name).parent / target).resolve()
            if not resolved.is_relative_to(PROJECT_ROOT) or not resolved.exists():
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{name}:{line}: links {target!r}, not a file of this repository")
    return found


def test_no_tracked_file_reads_links_or_cites_anything_outside_the_repository() -> None:
    problems = [
        problem
        for name in tracked_files()
        if name != THIS_FILE and (text := text_of(name)) is not None
        for problem in reaches_outside(name, text)
    ]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("tests/fixtures.py", 'SAMPLES = PROJECT_ROOT.parent / "shared" / "fixtures"\n'),
        ("tests/unit/t.py", 'X = Path(__file__).resolve().parents[3] / "shared"\n'),
        ("bench/b.py", "# copies of /work/shared/fixtures\n"),
        ("README.md", "The map is in [`design`](../shared/DESIGN.md).\n"),
        ("docs/x.md", "See [the layout](../nowhere.md).\n"),
    ],
)
def test_the_check_sees_each_way_out(name: str, text: str) -> None:
    assert reaches_outside(name, text)


def test_the_check_lets_in_repository_paths_and_urls_through() -> None:
    text = (
        'ROOT = Path(__file__).resolve().parents[2]\nS = PROJECT_ROOT / "samples"\n'
        "[arch](../../docs/ARCHITECTURE.md) [up](https://github.com/stripe/openapi) [a](#top)\n"
    )
    assert reaches_outside("tests/unit/x.md", text) == []


def sample_rows() -> dict[str, tuple[str, str]]:
    """``samples/README.md``'s table: file → (source cell, licence cell)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in (SAMPLES / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = (match.group(2).strip(), match.group(3))
    return rows


def test_every_sample_is_listed_with_its_source_and_licence() -> None:
    files = {
        path.relative_to(SAMPLES).as_posix()
        for path in SAMPLES.rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    rows = sample_rows()
    assert sorted(files - rows.keys()) == [], "samples missing from samples/README.md"
    assert sorted(rows.keys() - files) == [], "samples/README.md lists files that are not there"
    for name, (source, licence) in rows.items():
        if name.startswith("mappings/"):
            # Rules the project wrote itself, not a copy of anyone's payload.
            assert "written for this project" in source, name
            continue
        assert PINNED_SOURCE.search(source), f"{name}: no source link at a commit"
        assert licence in LICENCES, f"{name}: licence {licence!r}"
