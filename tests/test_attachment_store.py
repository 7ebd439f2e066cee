"""Stories: a file's encrypted chunks cannot be truncated, reordered, moved or extended without
it being noticed, whichever store holds them (confide.files.store)."""

from __future__ import annotations

import os
from uuid import UUID, uuid4

import pytest
from asyncpg import Connection

from confide.crypto import DecryptionError
from confide.files.store import CHUNK_BYTES, Copy, SealedWriter, new_file_key, read_copy


class MemoryStore:
    """The ChunkStore protocol over a dict: what an S3-compatible store would hold."""

    def __init__(self) -> None:
        self.chunks: dict[tuple[UUID, Copy, int], bytes] = {}

    async def put(
        self, file_id: UUID, copy: Copy, index: int, data: bytes, *, conn: Connection | None = None
    ) -> None:
        self.chunks[(file_id, copy, index)] = data

    async def count(self, file_id: UUID, copy: Copy) -> int:
        return sum(1 for f, c, _ in self.chunks if f == file_id and c == copy)

    async def get(self, file_id: UUID, copy: Copy, index: int) -> bytes:
        try:
            return self.chunks[(file_id, copy, index)]
        except KeyError:
            raise DecryptionError("chunk missing") from None

    async def delete(
        self, file_id: UUID, copy: Copy | None = None, *, conn: Connection | None = None
    ) -> None:
        for key in [k for k in self.chunks if k[0] == file_id and copy in (None, k[1])]:
            del self.chunks[key]

    async def sweep(self, conn: Connection, limit: int) -> int:
        return 0


async def stored(store: MemoryStore, key: bytes, file_id: UUID, data: bytes) -> None:
    writer = SealedWriter(store, key, file_id, Copy.ORIGINAL)
    for start in range(0, len(data), 100_000):  # as blocks arrive from a client
        await writer.write(data[start : start + 100_000])
    await writer.close()


async def read(store: MemoryStore, key: bytes, file_id: UUID, copy: Copy = Copy.ORIGINAL) -> bytes:
    return b"".join([block async for block in read_copy(store, key, file_id, copy)])


async def test_a_file_reads_back_as_written_in_chunks_that_hold_no_plaintext() -> None:
    store, key, file_id = MemoryStore(), new_file_key(), uuid4()
    data = os.urandom(2 * CHUNK_BYTES + 1234) + b"CANARY-PLAINTEXT"
    await stored(store, key, file_id, data)
    assert await store.count(file_id, Copy.ORIGINAL) == 3
    assert all(b"CANARY" not in blob for blob in store.chunks.values())
    assert await read(store, key, file_id) == data
    empty = uuid4()
    await stored(store, key, empty, b"")
    assert await read(store, key, empty) == b""
    exact = uuid4()
    await stored(store, key, exact, b"x" * CHUNK_BYTES)  # a full chunk stays the last one
    assert await store.count(exact, Copy.ORIGINAL) == 1
    assert await read(store, key, exact) == b"x" * CHUNK_BYTES


async def test_tampering_with_the_chunks_is_detected() -> None:
    store, key, file_id = MemoryStore(), new_file_key(), uuid4()
    await stored(store, key, file_id, os.urandom(3 * CHUNK_BYTES))
    chunks = dict(store.chunks)
    # Truncated: the last chunk dropped.
    del store.chunks[(file_id, Copy.ORIGINAL, 2)]
    with pytest.raises(DecryptionError):
        await read(store, key, file_id)
    # Reordered.
    store.chunks = dict(chunks)
    first, second = (file_id, Copy.ORIGINAL, 0), (file_id, Copy.ORIGINAL, 1)
    store.chunks[first], store.chunks[second] = chunks[second], chunks[first]
    with pytest.raises(DecryptionError):
        await read(store, key, file_id)
    # Extended: a copy of a chunk appended after the last.
    store.chunks = dict(chunks)
    store.chunks[(file_id, Copy.ORIGINAL, 3)] = chunks[(file_id, Copy.ORIGINAL, 2)]
    with pytest.raises(DecryptionError):
        await read(store, key, file_id)
    # Moved to another copy or another file, or opened with another key.
    store.chunks = {(f, Copy.STRIPPED, i): v for (f, _, i), v in chunks.items()}
    with pytest.raises(DecryptionError):
        await read(store, key, file_id, Copy.STRIPPED)
    other = uuid4()
    store.chunks = {(other, c, i): v for (_, c, i), v in chunks.items()}
    with pytest.raises(DecryptionError):
        await read(store, key, other)
    store.chunks = dict(chunks)
    with pytest.raises(DecryptionError):
        await read(store, new_file_key(), file_id)
    assert len(await read(store, key, file_id)) == 3 * CHUNK_BYTES
