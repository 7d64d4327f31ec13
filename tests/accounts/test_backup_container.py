"""The encrypted container: what it accepts, what it refuses, and that it streams any size."""

import hashlib
import io
import os
import struct
import threading
import time

import pytest

from accounts import backup_container as container

# The refusals are checked by their (English) messages.
pytestmark = pytest.mark.usefixtures("english")

HEADER_LENGTH = struct.Struct(">I")


@pytest.fixture(scope="module")
def keys(backup_keys):
    return {
        "public": container.load_public_key(backup_keys["public"]),
        "private": container.load_private_key(backup_keys["private"]),
        "other": container.load_private_key(backup_keys["other"]),
    }


def seal(keys, payload, *, chunk_size=1024, backup_id="b-1"):
    out = io.BytesIO()
    writer = container.ContainerWriter(
        out, keys["public"], backup_id=backup_id, created_at="2026-11-25T00:00:00+00:00",
        chunk_size=chunk_size,
    )  # fmt: skip
    writer.write(payload)
    writer.close()
    return out.getvalue()


def open_(keys, data, key="private"):
    return b"".join(container.ContainerReader(io.BytesIO(data), keys[key]).chunks())


def chunk_offsets(data):
    """(start, end) of every chunk record after the header."""
    (length,) = HEADER_LENGTH.unpack(data[8:12])
    position, offsets = 12 + length, []
    while position < len(data):
        (size,) = HEADER_LENGTH.unpack(data[position + 1 : position + 5])
        offsets.append((position, position + 5 + size))
        position += 5 + size
    return offsets


PAYLOAD = os.urandom(5000)


def test_what_is_sealed_opens_with_the_private_key(keys):
    assert open_(keys, seal(keys, PAYLOAD)) == PAYLOAD


def test_an_empty_payload_still_has_a_last_chunk(keys):
    data = seal(keys, b"")
    assert len(chunk_offsets(data)) == 1
    assert open_(keys, data) == b""


def test_a_payload_of_whole_chunks_ends_with_an_empty_last_chunk(keys):
    data = seal(keys, PAYLOAD[:3072])
    assert len(chunk_offsets(data)) == 4
    assert open_(keys, data) == PAYLOAD[:3072]


def test_the_header_names_the_key_and_holds_no_plaintext_key(keys):
    data = seal(keys, PAYLOAD)
    header, _raw = container.read_header(io.BytesIO(data))
    assert header["key_id"] == container.key_id(keys["public"])
    assert header["cipher"] == "AES-256-GCM" and header["key_wrap"] == "RSA-OAEP-SHA256"
    assert PAYLOAD[:64] not in data


@pytest.mark.parametrize("where", ["first chunk", "middle chunk", "last chunk", "tag"])
def test_a_changed_byte_is_refused(keys, where):
    data = bytearray(seal(keys, PAYLOAD))
    offsets = chunk_offsets(bytes(data))
    position = {
        "first chunk": offsets[0][0] + 10,
        "middle chunk": offsets[2][0] + 500,
        "last chunk": offsets[-1][0] + 6,
        "tag": offsets[1][1] - 1,
    }[where]
    data[position] ^= 0x01
    with pytest.raises(container.ContainerError, match="does not authenticate"):
        open_(keys, bytes(data))


def test_a_changed_header_is_refused(keys):
    data = seal(keys, PAYLOAD, backup_id="b-1")
    forged = data.replace(b'"backup_id":"b-1"', b'"backup_id":"b-2"')
    assert forged != data
    with pytest.raises(container.ContainerError, match="does not authenticate"):
        open_(keys, forged)


@pytest.mark.parametrize("cut", ["inside a chunk", "at a chunk boundary", "inside the header"])
def test_a_truncated_container_is_refused(keys, cut):
    data = seal(keys, PAYLOAD)
    offsets = chunk_offsets(data)
    end = {
        "inside a chunk": offsets[2][0] + 100,
        "at a chunk boundary": offsets[-1][0],
        "inside the header": 20,
    }[cut]
    with pytest.raises(container.ContainerError, match="truncated"):
        open_(keys, data[:end])


def test_a_more_chunk_relabelled_as_last_is_refused(keys):
    # Cutting after chunk 2 and flagging it last would pass as a shorter, complete backup if
    # the flag were not sealed into the nonce.
    data = bytearray(seal(keys, PAYLOAD))
    offsets = chunk_offsets(bytes(data))
    data[offsets[1][0]] = container.LAST
    with pytest.raises(container.ContainerError):
        open_(keys, bytes(data[: offsets[1][1]]))


def test_reordered_chunks_are_refused(keys):
    data = seal(keys, PAYLOAD)
    offsets = chunk_offsets(data)
    (a0, a1), (b0, b1) = offsets[1], offsets[2]
    swapped = data[:a0] + data[b0:b1] + data[a0:a1] + data[b1:]
    with pytest.raises(container.ContainerError, match="Chunk 2 .*does not authenticate"):
        open_(keys, swapped)


def test_a_chunk_spliced_in_from_another_backup_is_refused(keys):
    one, two = seal(keys, PAYLOAD), seal(keys, PAYLOAD)
    (a0, a1), (b0, b1) = chunk_offsets(one)[1], chunk_offsets(two)[1]
    spliced = one[:a0] + two[b0:b1] + one[a1:]
    with pytest.raises(container.ContainerError, match="does not authenticate"):
        open_(keys, spliced)


def test_data_after_the_last_chunk_is_refused(keys):
    with pytest.raises(container.ContainerError, match="after its last chunk"):
        open_(keys, seal(keys, PAYLOAD) + b"\x00")


def test_the_wrong_private_key_is_refused_before_any_chunk_is_read(keys):
    with pytest.raises(container.WrongKey, match="encrypted for key"):
        container.ContainerReader(io.BytesIO(seal(keys, PAYLOAD)), keys["other"])


def test_something_that_is_not_a_backup_is_refused(keys):
    with pytest.raises(container.ContainerError, match="not a CIMS backup"):
        open_(keys, b"PGDMP" + os.urandom(100))


def test_parts_come_back_by_name_in_order(keys):
    out = io.BytesIO()
    archive = container.ArchiveWriter(
        container.ContainerWriter(out, keys["public"], backup_id="b", created_at="t")
    )
    for name, body in [("a.bin", PAYLOAD), ("empty", b""), ("文件/报告.pdf", b"%PDF")]:
        archive.begin(name)
        archive.write(body)
        archive.end()
    archive.close()
    reader = container.ContainerReader(io.BytesIO(out.getvalue()), keys["private"])
    parts = [(name, b"".join(blocks)) for name, blocks in container.read_parts(reader)]
    assert parts == [("a.bin", PAYLOAD), ("empty", b""), ("文件/报告.pdf", b"%PDF")]


def test_more_than_two_gibibytes_stream_through_in_constant_memory(keys):
    """2 GiB and a bit (not a whole number of chunks) through a pipe: encrypted on one thread,
    decrypted on another, never held in memory or on disk, checked by length and SHA-256."""
    total = 2 * 1024**3 + 12_345
    block = bytearray(os.urandom(container.CHUNK_SIZE))
    read_fd, write_fd = os.pipe()
    sent, received = hashlib.sha256(), hashlib.sha256()
    errors = []

    def encrypt():
        try:
            with os.fdopen(write_fd, "wb", buffering=container.CHUNK_SIZE) as out:
                writer = container.ContainerWriter(
                    out, keys["public"], backup_id="big", created_at="t"
                )
                remaining, index = total, 0
                while remaining:
                    # Every block differs, so a chunk repeated or dropped changes the hash.
                    block[:8] = index.to_bytes(8, "big")
                    piece = bytes(block[: min(remaining, len(block) - 7)])
                    sent.update(piece)
                    writer.write(piece)
                    remaining -= len(piece)
                    index += 1
                writer.close()
        except Exception as error:  # reported by the main thread
            errors.append(error)

    started = time.monotonic()
    thread = threading.Thread(target=encrypt)
    thread.start()
    length = chunks = 0
    with os.fdopen(read_fd, "rb", buffering=container.CHUNK_SIZE) as source:
        for plaintext in container.ContainerReader(source, keys["private"]).chunks():
            received.update(plaintext)
            length += len(plaintext)
            chunks += 1
    thread.join()
    seconds = time.monotonic() - started
    assert errors == []
    assert length == total
    assert chunks == total // container.CHUNK_SIZE + 1
    assert received.hexdigest() == sent.hexdigest()
    print(f"\n2 GiB encrypted and decrypted in {seconds:.1f} s: {total / seconds / 1e6:.0f} MB/s")
