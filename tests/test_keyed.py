"""Keyed artifacts (talkface/keyed.py): one key function and one rule, "current when the stored key
matches the key computed now", shared by workspace steps, job stages, prepared GAN splits and
LRW records. Each user's own re-run behaviour is tested with it (test_recon, test_stages,
test_gan_train, test_motion_train); here: the mechanism, and that each user stores its keys through it."""

from __future__ import annotations

import numpy as np
import pytest

from talkface.errors import TalkfaceError
from talkface.keyed import KeyBook, artifact_key
from talkface.motion.records import LRWRecord, stored_key, write_record
from talkface.pipelines.stages import StageBook
from talkface.workspace import Workspace


def test_keys_depend_on_content_not_order():
    assert artifact_key({"config": {"a": 1, "b": 2}, "inputs": ["x"]}) == \
        artifact_key({"inputs": ["x"], "config": {"b": 2, "a": 1}})
    assert artifact_key({"config": {"a": 1}}) != artifact_key({"config": {"a": 2}})
    assert len(artifact_key([])) == 16


def test_an_entry_is_current_only_when_finished_with_the_same_key(tmp_path):
    book = KeyBook(tmp_path / "book.json", "test book", "things")
    assert not book.current("a", "k1")
    book.begin("a", "k1")  # interrupted: found with its key, but not current
    again = KeyBook(tmp_path / "book.json", "test book", "things")
    assert again.entry("a") == {"key": "k1", "done": False} and not again.current("a", "k1")
    again.finish("a", "k1", outputs={"n": 1})
    reread = KeyBook(tmp_path / "book.json", "test book", "things")
    assert reread.current("a", "k1") and not reread.current("a", "k2")
    reread.forget(["a"])
    assert not KeyBook(tmp_path / "book.json", "test book", "things").current("a", "k1")
    with pytest.raises(TalkfaceError, match="is not a other book record"):
        KeyBook(tmp_path / "book.json", "other book", "things")


def test_run_skips_current_resumes_interrupted_and_redoes_changed(tmp_path):
    book, folder, calls = KeyBook(tmp_path / "book.json", "test book", "things"), tmp_path / "made", []

    def make(tag):
        def fn():
            calls.append((tag, folder.exists()))
            folder.mkdir(exist_ok=True)
            if tag == "interrupted":
                raise KeyboardInterrupt
            return {"tag": tag}
        return fn

    with pytest.raises(KeyboardInterrupt):
        book.run("a", "k1", make("interrupted"), folder)
    assert book.run("a", "k1", make("resumed"), folder).ran  # same key: the folder is kept to resume from
    assert not book.run("a", "k1", make("skipped"), folder).ran
    changed = book.run("a", "k2", make("changed"), folder)  # another key: the folder is removed first
    assert changed.ran and changed.outputs == {"tag": "changed"}
    assert calls == [("interrupted", False), ("resumed", True), ("changed", False)]


def test_workspace_steps_and_job_stages_are_entries_of_a_key_book(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    ws.save_array("mfcc.npy", np.zeros((2, 28, 12), np.float32))
    ws.record("mfcc", "k1")
    steps = KeyBook(ws.root / "manifest.json", "talkface person workspace", "steps")
    assert steps.current("mfcc", "k1") and Workspace(ws.root).is_current("mfcc", "k1")
    assert not Workspace(ws.root).is_current("mfcc", "k2")
    ws.path("mfcc.npy").unlink()  # a step is a multi-file artifact: its key and its outputs
    assert not Workspace(ws.root).is_current("mfcc", "k1")

    stages = StageBook(tmp_path / "job.json", "test job")
    stages.run("train", "k1", lambda: {})
    assert KeyBook(tmp_path / "job.json", "test job", "stages").current("train", "k1")


def test_a_one_file_artifact_carries_its_key(tmp_path):
    record = LRWRecord(windows=np.zeros((29, 28, 12), np.float32), motion=np.zeros((29, 70), np.float32),
                       identity=np.zeros(80, np.float32), word="ABOUT", split="train",
                       source="ABOUT/train/ABOUT_00001.mp4", coeffs="truth")
    path = tmp_path / "records" / "ABOUT_00001.npz"
    assert stored_key(path) is None  # absent: not current for any key
    write_record(path, record, "k1")
    assert stored_key(path) == "k1"
    with path.open("wb") as handle:  # a record written before records carried keys
        np.savez(handle, format=np.str_("talkface-lrw-record-v1"))
    assert stored_key(path) is None



def test_a_workspace_step_that_did_not_finish_names_the_step_and_the_command(tmp_path):
    # The output file exists (e.g. written by an older talkface, or by an interrupted run) but the
    # book does not record the step as finished: the error says so in one line.
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    ws.save_array("coeffs.npy", np.zeros((2, 257), np.float32))
    with pytest.raises(TalkfaceError, match=r"has not finished preprocess step 'coeffs'.*talkface preprocess"):
        ws.load_array("coeffs.npy")
