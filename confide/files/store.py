"""Where attachment bytes live: encrypted chunk streams, one per file and copy (docs/attachments.md
"Storage", docs/deploy.md "Attachment store").

A file has up to three copies: ``original`` (as uploaded, kept only until stripping succeeds,
or while quarantined), ``stripped`` (what is served) and ``preview`` (a re-encoded image, served
inline to staff). Each copy is a sequence of chunks of at most :data:`CHUNK_BYTES` plaintext,
each sealed with AES-256-GCM under the file's own random key. The associated data names the
file, the copy, the chunk's index and whether it is the last chunk, so a chunk moved to another
file, copy or place, a reordering, a truncation (the new last chunk was not sealed as last) or
a chunk appended after the last all fail to open.

The store itself only ever holds ciphertext: :class:`ChunkStore` is the swappable part. The
PostgreSQL store (:class:`PostgresChunkStore`, table ``attachment_chunks``) is the default and
the only one built, so backups and retention cover files like everything else. An
S3-compatible store would implement the same four calls with one object per chunk
(``<file id>/<copy>/<index>``); see docs/deploy.md for what it would change.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from asyncpg import Connection
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confide.crypto import DecryptionError
from confide.db import Pool

CHUNK_BYTES = 256 * 1024  # plaintext per chunk: 80 chunks for a 20 MiB file
NONCE_BYTES = 12
KEY_BYTES = 32
_FORMAT = b"confide-chunk-v1"


class Copy(StrEnum):
    ORIGINAL = "original"
    STRIPPED = "stripped"
    PREVIEW = "preview"


class ChunkStore(Protocol):
    """Ciphertext chunks per (file id, copy), numbered from 0. Implementations never see a key
    or plaintext, and need no transaction of their own: each call is one short operation, so no
    connection is held while a slow client sends or reads a file."""

    async def put(
        self, file_id: UUID, copy: Copy, index: int, data: bytes, *, conn: Connection | None = None
    ) -> None:
        """Store (or overwrite: a retried write is harmless) one chunk. ``conn``: the caller's
        open transaction (the stripped copy is written inside the transaction that checks the
        run still holds its lease; a store elsewhere writes at once)."""

    async def count(self, file_id: UUID, copy: Copy) -> int:
        """How many chunks the copy has (0: none)."""

    async def get(self, file_id: UUID, copy: Copy, index: int) -> bytes:
        """One chunk; DecryptionError if it is missing (the copy changed while read)."""

    async def delete(
        self, file_id: UUID, copy: Copy | None = None, *, conn: Connection | None = None
    ) -> None:
        """Delete a copy (None: every copy). ``conn``: the caller's open transaction, so that
        a store in the same database deletes atomically with the state change it goes with (a
        store elsewhere deletes at once; what it leaves after a crash is swept by
        :meth:`sweep`, and without the file key is unreadable anyway)."""

    async def sweep(self, conn: Connection, limit: int) -> int:
        """Delete up to ``limit`` chunks of files that neither an upload nor an attachment names
        any more (how many)."""


class PostgresChunkStore:
    """The default store: ``attachment_chunks`` rows (bytea, TOAST storage EXTERNAL)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def put(
        self, file_id: UUID, copy: Copy, index: int, data: bytes, *, conn: Connection | None = None
    ) -> None:
        from confide.sql import attachments as sql

        if conn is not None:
            await sql.put_chunk(conn, file_id, copy.value, index, data)
            return
        async with self._pool.acquire() as own:
            await sql.put_chunk(own, file_id, copy.value, index, data)

    async def count(self, file_id: UUID, copy: Copy) -> int:
        from confide.sql import attachments as sql

        async with self._pool.acquire() as conn:
            return await sql.chunk_count(conn, file_id, copy.value)

    async def get(self, file_id: UUID, copy: Copy, index: int) -> bytes:
        from confide.sql import attachments as sql

        async with self._pool.acquire() as conn:
            data = await sql.get_chunk(conn, file_id, copy.value, index)
        if data is None:
            raise DecryptionError("chunk missing")
        return data

    async def delete(
        self, file_id: UUID, copy: Copy | None = None, *, conn: Connection | None = None
    ) -> None:
        from confide.sql import attachments as sql

        if conn is not None:
            await sql.delete_chunks(conn, file_id, None if copy is None else copy.value)
            return
        async with self._pool.acquire() as own:
            await sql.delete_chunks(own, file_id, None if copy is None else copy.value)

    async def sweep(self, conn: Connection, limit: int) -> int:
        from confide.sql import attachments as sql

        return await sql.sweep_orphan_chunks(conn, limit)


def new_file_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _aad(file_id: UUID, copy: Copy, index: int, final: bool) -> bytes:
    return b"|".join(
        (_FORMAT, str(file_id).encode(), copy.value.encode(), str(index).encode(), b"%d" % final)
    )


class SealedWriter:
    """Writes one copy as it comes: ``write`` any amount, ``close`` once. Holds at most one
    chunk of plaintext. A copy of 0 bytes is one empty last chunk."""

    def __init__(
        self,
        store: ChunkStore,
        key: bytes,
        file_id: UUID,
        copy: Copy,
        *,
        conn: Connection | None = None,
    ) -> None:
        self._store = store
        self._conn = conn
        self._aead = AESGCM(key)
        self._file_id = file_id
        self._copy = copy
        self._buffer = bytearray()
        self._index = 0
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        # Keep at least one byte back, so the last chunk written is always sealed as last.
        while len(self._buffer) > CHUNK_BYTES:
            await self._flush(bytes(self._buffer[:CHUNK_BYTES]), final=False)
            del self._buffer[:CHUNK_BYTES]

    async def close(self) -> None:
        await self._flush(bytes(self._buffer), final=True)
        self._buffer.clear()

    async def _flush(self, data: bytes, *, final: bool) -> None:
        nonce = os.urandom(NONCE_BYTES)
        aad = _aad(self._file_id, self._copy, self._index, final)
        await self._store.put(
            self._file_id,
            self._copy,
            self._index,
            nonce + self._aead.encrypt(nonce, data, aad),
            conn=self._conn,
        )
        self._index += 1


async def read_copy(
    store: ChunkStore, key: bytes, file_id: UUID, copy: Copy
) -> AsyncIterator[bytes]:
    """The plaintext of a copy, a chunk at a time; DecryptionError on any tampering, a missing
    copy, a truncation or a reordering (raised before the bytes of the chunk concerned)."""
    count = await store.count(file_id, copy)
    if count == 0:
        raise DecryptionError("no such copy")
    aead = AESGCM(key)
    for index in range(count):
        blob = await store.get(file_id, copy, index)
        aad = _aad(file_id, copy, index, index == count - 1)
        try:
            yield aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError("chunk does not open") from None


def default_store(pool: Pool) -> ChunkStore:
    """The store in use: PostgreSQL (the only one built; docs/deploy.md)."""
    return PostgresChunkStore(pool)
