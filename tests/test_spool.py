"""The local spool of updates acknowledged while the database was unreachable."""

from __future__ import annotations

import stat
from pathlib import Path

from bot.telegram.spool import UpdateSpool


def test_spool_keeps_updates_in_order_privately_until_dropped(tmp_path: Path) -> None:
    spool = UpdateSpool(tmp_path / "spool" / "8080")
    assert spool.load() == []  # nothing kept yet, no directory yet
    for uid in (12, 3, 7):
        spool.put(uid, {"update_id": uid, "message": {"text": f"made-up {uid}"}})
    spool.put(7, {"update_id": 7, "message": {"text": "made-up 7, again"}})  # replaced, not added
    assert [u["update_id"] for u in spool.load()] == [3, 7, 12]  # oldest first
    assert spool.load()[1]["message"]["text"] == "made-up 7, again"
    # It holds message texts and raw ids: only the service's user may read it.
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in spool.directory.iterdir())
    assert not list(spool.directory.glob("*.tmp"))
    spool.drop(3)
    spool.drop(3)  # twice is fine
    assert [u["update_id"] for u in spool.load()] == [7, 12]


def test_an_unreadable_kept_update_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool = UpdateSpool(tmp_path)
    spool.put(5, {"update_id": 5})
    (tmp_path / "6.json").write_text("{half a json", encoding="utf-8")
    (tmp_path / "x.json").write_text("{}", encoding="utf-8")
    assert [u["update_id"] for u in spool.load()] == [5]
    assert (tmp_path / "6.json").exists()  # left for a person to look at, not deleted
