"""The security page's table (docs/security.md) names, for each defence, the tests that show
it: each named test must exist, so the table cannot point at a test that was renamed or
removed."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def security_rows() -> list[str]:
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("\n## What is defended, and the tests that show it\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "`" in line]


def test_every_test_the_security_table_names_exists():
    rows = security_rows()
    assert len(rows) >= 20
    for row in rows:
        shown_by = row.rstrip(" |").rsplit(" | ", 1)[1]
        names = re.findall(r"`([^`]+)`", shown_by)
        assert names, f"No test named in: {row[:60]}"
        module = None
        for name in names:
            path, _, test = name.partition("::")
            if path:
                module = ROOT / "tests" / path
                assert module.exists(), f"{name}: no such file"
            assert module is not None, f"{name}: no file before it"
            if test:
                assert f"def {test}(" in module.read_text(), f"{name}: no such test"
