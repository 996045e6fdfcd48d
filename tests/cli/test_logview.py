"""paxosctl.logview on real files: merging by time, --since, following
across appends, rotation and truncation."""

from __future__ import annotations

import os
from pathlib import Path

from paxosctl.logview import Follower, merge, read, record_time


def stamp(seconds: int) -> str:
    return f"2026-11-30 10:00:{seconds:02d},000"


def test_records_merge_by_time_and_since_cuts_at_a_record(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(f"{stamp(1)} a one\n{stamp(5)} a two\n  a traceback line\n")
    (tmp_path / "a.log.1").write_text(f"{stamp(0)} a oldest\n")  # rotated: older
    (tmp_path / "b.log").write_text(f"{stamp(3)} b one\n{stamp(6)} b two\n")
    merged = [(l.source, l.text) for l in merge([read(tmp_path, "a"), read(tmp_path, "b")])]
    assert merged == [("a", f"{stamp(0)} a oldest"), ("a", f"{stamp(1)} a one"),
                      ("b", f"{stamp(3)} b one"), ("a", f"{stamp(5)} a two"),
                      ("a", "  a traceback line"), ("b", f"{stamp(6)} b two")]
    since = record_time(stamp(5))
    assert [l.text for l in read(tmp_path, "a", since)] == [f"{stamp(5)} a two",
                                                             "  a traceback line"]
    assert record_time("  a traceback line") is None


def test_a_follower_sees_appends_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("before\n")
    follower = Follower(path, "x")
    assert read(tmp_path, "x", upto=follower)[0].text == "before"
    assert follower.poll() == []
    with open(path, "a") as f:
        f.write("one\ntw")
    assert follower.poll() == ["one"]  # a partial line waits for its end
    with open(path, "a") as f:
        f.write("o\n")
    assert follower.poll() == ["two"]
    with open(path, "a") as f:
        f.write("last of the old file\n")
    os.rename(path, tmp_path / "x.log.1")  # rotation
    path.write_text("first of the new file\n")
    assert follower.poll() == ["last of the old file", "first of the new file"]
    with open(path, "r+") as f:
        f.truncate(0)
    with open(path, "a") as f:
        f.write("after truncation\n")
    assert follower.poll() == ["after truncation"]
    follower.close()


def test_a_follower_reads_every_line_across_several_rotations_between_polls(tmp_path: Path) -> None:
    """The agents' own RotatingFileHandler rotates three times between two
    polls (each file holding lines): every line is printed once, in order."""
    import logging
    import logging.handlers

    path = tmp_path / "agent.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=200, backupCount=5)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test_logview_rotations")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("before following")
        follower = Follower(path, "agent")
        written = []
        for round_ in range(3):
            lines = [f"round {round_} line {n:02d} " + "x" * 20 for n in range(12)]
            for line in lines:
                logger.warning(line)  # 12 x ~42 bytes: two or more rotations per round
            written += lines
            assert len(list(tmp_path.glob("agent.log.*"))) >= 2
            assert follower.poll() == lines
        follower.close()
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_a_follower_whose_file_was_deleted_reads_every_backup(tmp_path: Path) -> None:
    """More rotations than backups: the followed file is gone, and every
    backup left was written after it."""
    path = tmp_path / "x.log"
    path.write_text("old\n")
    follower = Follower(path, "x")
    with open(path, "a") as f:
        f.write("last of the followed file\n")
    os.rename(path, tmp_path / "x.log.1")
    (tmp_path / "x.log.1").unlink()  # rotated past backupCount=1, as the handler deletes it
    (tmp_path / "x.log.1").write_text("a\nb\n")  # the next rotation's backup
    path.write_text("new\n")
    assert follower.poll() == ["last of the followed file", "a", "b", "new"]
    follower.close()
