"""The file an upload reads is held to what it was when attached: each 64 KiB chunk is checked
against its digest before it is given to the encryptor, so a changed chunk is never sealed
under the attachment's key and nonce (``client/core/upload_source.py``)."""

from __future__ import annotations

import os

import pytest

from client.core.upload_source import CHANGED, GONE, SourceChanged, SourceFile
from shared.attachment import CHUNK


def test_the_chunks_before_a_changed_one_are_given_out_and_the_changed_one_never(tmp_path):
    path = tmp_path / "file.bin"
    data = bytearray(os.urandom(5 * CHUNK + 100))
    path.write_bytes(bytes(data))
    source = SourceFile.fingerprint(path, len(data))
    assert b"".join(source.pieces()) == bytes(data)
    data[3 * CHUNK + 1] ^= 1
    path.write_bytes(bytes(data))
    given: list[bytes] = []
    with pytest.raises(SourceChanged) as changed:
        given.extend(source.pieces())
    assert changed.value.reason == CHANGED
    assert b"".join(given) == bytes(data[: 3 * CHUNK]), "nothing of the changed chunk"


def test_a_shorter_file_a_resized_one_and_a_missing_one_are_told_apart(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(2 * CHUNK))
    source = SourceFile.fingerprint(path, 2 * CHUNK)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(SourceChanged, match=CHANGED):
        list(source.pieces())
    with pytest.raises(SourceChanged, match=CHANGED):
        source.check_size()
    path.unlink()
    with pytest.raises(SourceChanged, match=GONE):
        source.check_size()
    with pytest.raises(SourceChanged, match=GONE):
        list(source.pieces())


def test_a_file_not_its_attached_size_when_first_read_is_refused(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(CHUNK + 10))
    with pytest.raises(SourceChanged, match=CHANGED):
        SourceFile.fingerprint(path, CHUNK + 9)  # it grew between attaching and reading
    with pytest.raises(SourceChanged, match=CHANGED):
        SourceFile.fingerprint(path, CHUNK + 11)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert list(SourceFile.fingerprint(empty, 0).pieces()) == []
