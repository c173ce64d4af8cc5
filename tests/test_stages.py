"""StageBook: a finished stage is skipped, an interrupted one resumes, a changed one starts afresh."""

from __future__ import annotations

import json

import pytest

from talkface.errors import TalkfaceError
from talkface.keyed import artifact_key
from talkface.pipelines.stages import StageBook, summary_table


def test_finished_stage_is_skipped_with_its_outputs(tmp_path):
    calls = []
    book = StageBook(tmp_path / "job.json", "test job")
    first = book.run("train", "k1", lambda: calls.append(1) or {"checkpoint": "a.pt"})
    again = StageBook(tmp_path / "job.json", "test job").run("train", "k1", lambda: calls.append(2) or {})
    assert calls == [1]
    assert first.ran and not again.ran
    assert again.outputs == {"checkpoint": "a.pt"} and again.seconds == first.seconds


def test_interrupted_stage_runs_again_keeping_its_folder(tmp_path):
    folder = tmp_path / "run"
    book = StageBook(tmp_path / "job.json", "test job")

    def interrupted():
        folder.mkdir()
        (folder / "step_1.pt").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        book.run("train", "k1", interrupted, folder)
    assert json.loads((tmp_path / "job.json").read_text())["stages"]["train"] == {"key": "k1", "done": False}
    seen = []
    StageBook(tmp_path / "job.json", "test job").run(
        "train", "k1", lambda: seen.append((folder / "step_1.pt").read_text()) or {}, folder)
    assert seen == ["partial"]  # same key: the stage finds its checkpoint and resumes from it


def test_changed_key_removes_the_stale_folder_and_reruns(tmp_path):
    folder = tmp_path / "run"
    book = StageBook(tmp_path / "job.json", "test job")
    book.run("train", "k1", lambda: folder.mkdir() or {}, folder)
    (folder / "old.pt").write_text("stale")
    seen = []
    result = book.run("train", "k2", lambda: seen.append(folder.exists()) or {"n": 2}, folder)
    assert result.ran and seen == [False] and book.outputs("train") == {"n": 2}


def test_unfinished_outputs_and_foreign_records_are_clear_errors(tmp_path):
    book = StageBook(tmp_path / "job.json", "test job")
    with pytest.raises(TalkfaceError, match="stage 'train' has not finished"):
        book.outputs("train")
    book.save()
    with pytest.raises(TalkfaceError, match="is not a other job record"):
        StageBook(tmp_path / "job.json", "other job")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TalkfaceError, match="bad.json: is not valid JSON"):
        StageBook(tmp_path / "bad.json", "test job")


def test_keys_depend_on_content_not_order_and_table_lists_stages(tmp_path):
    assert artifact_key({"a": 1, "b": [1, 2]}) == artifact_key({"b": [1, 2], "a": 1})
    assert artifact_key({"a": 1}) != artifact_key({"a": 2})
    book = StageBook(tmp_path / "job.json", "test job")
    results = [book.run("prep", "k", lambda: {"validation": {"psnr": 31.25}})]
    table = summary_table(results, lambda r: r.outputs["validation"])
    assert "prep" in table and "ran" in table and "psnr 31.25" in table
