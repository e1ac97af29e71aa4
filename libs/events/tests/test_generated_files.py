"""The one write/check helper every generator (schemas, AsyncAPI, OpenAPI, manifests) uses."""

from pathlib import Path

import pytest

from oms_events.generated import GeneratedFiles, command


def _files(root: Path, owned: str | None = "*.json") -> GeneratedFiles:
    return GeneratedFiles(root, lambda: {"a.json": "A\n", "sub/b.json": "B\n"}, owned=owned, stale_note=" (gone)")


def test_write_then_check_is_clean_and_a_write_removes_stale_owned_files(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not ours")
    files = _files(tmp_path)
    files.write()
    assert files.differences() == []
    assert not (tmp_path / "old.json").exists()
    assert (tmp_path / "notes.txt").read_text() == "not ours"
    assert (tmp_path / "sub" / "b.json").read_text() == "B\n"


def test_check_reports_missing_stale_and_differing_files_in_that_order(tmp_path: Path) -> None:
    files = GeneratedFiles(tmp_path, lambda: {"a.json": "A\n", "c.json": "C\n"}, owned="*.json", stale_note=" (gone)")
    (tmp_path / "a.json").write_text("changed\n")
    (tmp_path / "old.json").write_text("{}")
    assert files.differences() == ["missing c.json", "stale old.json (gone)", "differs a.json"]


def test_without_an_owned_glob_other_files_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text("{}")
    files = _files(tmp_path, owned=None)
    files.write()
    assert files.differences() == []
    assert (tmp_path / "other.json").exists()


def test_the_command_writes_or_checks_and_says_how_to_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path)
    report = "{problem} (run: make it)"
    assert command("doc", [files], report=report, argv=["--check"]) == 1
    assert "missing a.json (run: make it)" in capsys.readouterr().err
    assert command("doc", [files], report=report, argv=["--write"]) == 0
    assert command("doc", [files], report=report, argv=["--check"]) == 0
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        command("doc", [files], argv=[])
