from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from dino_speech.file_io import atomic_path, atomic_torch_save, atomic_write_text, load_torch_file


def test_atomic_path_replaces_only_when_the_block_ends(tmp_path):
    out = tmp_path / "sub" / "list.txt"
    atomic_write_text(out, "old\n")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["list.txt"]  # no temporary left


def test_atomic_path_keeps_the_suffix_writers_need_and_usual_permissions(tmp_path):
    out = tmp_path / "vectors.npz"
    with atomic_path(out, suffix=".npz") as tmp:
        assert tmp.name.endswith(".npz") and tmp.parent == tmp_path
        np.savez(tmp, x=np.arange(3))  # np.savez would append .npz to any other name
    assert np.load(out)["x"].tolist() == [0, 1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_torch_files_round_trip_with_their_format(tmp_path):
    path = tmp_path / "model.pt"
    atomic_torch_save({"format": "x/1", "value": 3}, path)
    assert load_torch_file(path, ["x/1"], "test file")["value"] == 3
    with pytest.raises(Exception, match="not a test file"):
        load_torch_file(path, ["y/1"], "test file")
