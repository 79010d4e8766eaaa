from __future__ import annotations

import os
import shutil

import kaldiio
import numpy as np
import pytest

from dino_speech.embedding_io import (
    EmbeddingWriter,
    as_table,
    merge_shards,
    read_embeddings,
    save_npz,
    write_embeddings,
)
from dino_speech.errors import DataError


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return [f"spk{i % 3}-utt{i}" for i in range(7)], rng.normal(size=(7, 16)).astype(np.float32)


def test_kaldi_roundtrip_and_kaldiio_reads_it(tmp_path, table):
    ids, X = table
    scp = write_embeddings(tmp_path / "emb", ids, X)
    assert scp == tmp_path / "emb" / "xvector.scp"
    assert (tmp_path / "emb" / "xvector.ark").is_file()
    by_kaldiio = kaldiio.load_scp(str(scp))
    assert list(by_kaldiio) == ids
    for i, utt in enumerate(ids):
        vec = by_kaldiio[utt]
        assert vec.shape == (16,) and vec.dtype == np.float32  # a Kaldi float vector, not a matrix
        np.testing.assert_array_equal(vec, X[i])
    for path in (scp, tmp_path / "emb" / "xvector.ark", tmp_path / "emb"):
        got_ids, got = read_embeddings(path)
        assert got_ids == ids
        np.testing.assert_array_equal(got, X)


def test_npz_roundtrip(tmp_path, table):
    ids, X = table
    path = save_npz(tmp_path / "e.npz", ids, X.astype(np.float64))
    got_ids, got = read_embeddings(path)
    assert got_ids == ids and got.dtype == np.float32
    np.testing.assert_allclose(got, X)


def test_relative_ark_path_resolves_after_moving_the_directory(tmp_path, table, monkeypatch):
    ids, X = table
    monkeypatch.chdir(tmp_path)
    scp = write_embeddings("exp/emb", ids, X)
    assert scp.read_text().split()[1].startswith("exp/emb/xvector.ark:")  # Kaldi style
    shutil.move(tmp_path / "exp", tmp_path / "moved")
    os.chdir(tmp_path / "moved")  # neither cwd-relative nor scp-relative path as written
    got_ids, got = read_embeddings(tmp_path / "moved" / "emb" / "xvector.scp")
    np.testing.assert_array_equal(got, X)


def test_absolute_ark_path_resolves_after_moving_the_directory(tmp_path, table):
    ids, X = table
    scp = write_embeddings(tmp_path / "exp" / "emb", ids, X)  # absolute paths, as the recipes
    assert scp.read_text().split()[1].startswith(str(tmp_path / "exp" / "emb" / "xvector.ark:"))
    shutil.move(tmp_path / "exp", tmp_path / "moved")
    got_ids, got = read_embeddings(tmp_path / "moved" / "emb" / "xvector.scp")
    assert got_ids == ids
    np.testing.assert_array_equal(got, X)


def test_merge_shards(tmp_path, table):
    ids, X = table
    a = write_embeddings(tmp_path / "shards", ids[:4], X[:4], name="xvector.0-of-2")
    b = write_embeddings(tmp_path / "shards", ids[4:], X[4:], name="xvector.1-of-2")
    out = merge_shards([a, b], tmp_path)
    assert out == tmp_path / "xvector.scp" and (tmp_path / "xvector.ark").is_file()
    got_ids, got = read_embeddings(out)
    assert got_ids == ids
    np.testing.assert_array_equal(got, X)
    assert list(kaldiio.load_scp(str(out))) == ids
    with pytest.raises(DataError, match="xvector.0-of-2.scp:1: duplicate utterance id"):
        merge_shards([a, a], tmp_path / "dup")
    assert not list((tmp_path / "dup").glob("*.ark"))  # nothing half-written left behind


def test_streaming_writer_discards_on_error(tmp_path, table):
    ids, X = table
    with pytest.raises(DataError, match="dimension 3, not 16"), EmbeddingWriter(tmp_path) as w:
        w.add(ids[0], X[0])
        w.add(ids[1], X[1, :3])
    assert not list(tmp_path.iterdir())


def test_mixed_dimension_is_an_error(tmp_path):
    kaldiio.save_ark(
        str(tmp_path / "x.ark"),
        {"a": np.zeros(4, np.float32), "b": np.zeros(5, np.float32)},
        scp=str(tmp_path / "x.scp"),
    )
    for path in (tmp_path / "x.ark", tmp_path / "x.scp"):
        with pytest.raises(DataError, match="mixed dimension: 4 .*'a'.*5 .*'b'"):
            read_embeddings(path)
    with pytest.raises(DataError, match="mixed shapes"):
        write_embeddings(tmp_path / "o", ["a", "b"], [np.zeros(3), np.zeros(4)])


def test_bad_inputs(tmp_path, table):
    ids, X = table
    with pytest.raises(DataError, match="not found"):
        read_embeddings(tmp_path / "none.scp")
    with pytest.raises(DataError, match="duplicate"):
        write_embeddings(tmp_path / "o", ["a", "a"], X[:2])
    with pytest.raises(DataError, match="whitespace"):
        write_embeddings(tmp_path / "o", ["a b", "c"], X[:2])
    with pytest.raises(DataError, match="2 ids but 3"):
        write_embeddings(tmp_path / "o", ["a", "b"], X[:3])
    bad = X[:2].copy()
    bad[1, 3] = np.nan
    write_embeddings(tmp_path / "nan", ["a", "b"], bad)
    with pytest.raises(DataError, match="1 embeddings hold NaN.*first: b"):
        read_embeddings(tmp_path / "nan")
    (tmp_path / "broken.scp").write_text("a\n")
    with pytest.raises(DataError, match="broken.scp:1"):
        read_embeddings(tmp_path / "broken.scp")
    (tmp_path / "gone.scp").write_text("a nowhere.ark:3\n")
    with pytest.raises(DataError, match="archive 'nowhere.ark' not found"):
        read_embeddings(tmp_path / "gone.scp")
    (tmp_path / "empty.scp").write_text("")
    with pytest.raises(DataError, match="no embeddings"):
        read_embeddings(tmp_path / "empty.scp")
    np.savez(tmp_path / "wrong.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="'ids' and 'vectors'"):
        read_embeddings(tmp_path / "wrong.npz")


def test_as_table_accepts_dict_and_pair(table):
    ids, X = table
    got_ids, got = as_table(dict(zip(ids, X, strict=True)))
    assert got_ids == ids
    np.testing.assert_array_equal(got, X)
    got_ids, got = as_table((ids, X))
    np.testing.assert_array_equal(got, X)
