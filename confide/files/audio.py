"""Audio: MP3 loses its ID3 (v1 and v2) and APEv2 tags (mutagen); M4A loses its iTunes tags
(mutagen), and then every user-data, metadata and free box is blanked in place (renamed ``free``
and zeroed) along with the creation and modification times of the movie, its tracks and media.
Blanking in place keeps every sample offset valid, so the audio itself is never rewritten."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

import mutagen
from mutagen.apev2 import delete as delete_ape
from mutagen.id3 import delete as delete_id3
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.mp4._atom import Atom, Atoms

from confide.files.errors import CannotStrip, StripFailure
from confide.files.types import FileType

# Boxes whose whole content is metadata (ISO 14496-12, QuickTime): blanked wherever they sit.
_BLANK = frozenset({b"udta", b"meta", b"uuid", b"free", b"skip", b"ID32", b"XMP_"})
# Boxes that begin with version, flags, creation time and modification time.
_TIMED = frozenset({b"mvhd", b"tkhd", b"mdhd"})
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"})
CHUNK = 1 << 16


def strip_mp3(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    try:
        MP3(dst)  # the MPEG frames must parse
        delete_id3(dst, delete_v1=True, delete_v2=True)
        delete_ape(dst)
        left = MP3(dst)
    except (mutagen.MutagenError, OSError, ValueError, EOFError):
        raise CannotStrip(StripFailure.DAMAGED, FileType.MP3) from None
    if left.tags:
        raise CannotStrip(StripFailure.LEFT_OVER, FileType.MP3)


def strip_m4a(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    try:
        audio = MP4(dst)
        if audio.tags is not None:
            audio.tags.delete(dst)
        with dst.open("r+b") as f:
            for atom in Atoms(f).atoms:
                _blank(f, atom)
        MP4(dst)  # still parses as MP4
    except (mutagen.MutagenError, OSError, ValueError, EOFError, KeyError):
        raise CannotStrip(StripFailure.DAMAGED, FileType.M4A) from None


def _blank(fh: BinaryIO, atom: Atom) -> None:
    if atom.name in _BLANK:
        header = 16 if _extended(fh, atom) else 8
        fh.seek(atom.offset + 4)
        fh.write(b"free")
        fh.seek(atom.offset + header)
        left = atom.length - header
        while left > 0:
            n = min(left, CHUNK)
            fh.write(b"\x00" * n)
            left -= n
        return
    if atom.name in _TIMED:
        fh.seek(atom.offset + 8)
        version = fh.read(1)
        width = 8 if version == b"\x01" else 4
        fh.seek(atom.offset + 12)
        fh.write(b"\x00" * (2 * width))
        return
    if atom.name in _CONTAINERS:
        for child in atom.children or []:
            _blank(fh, child)


def _extended(fh: BinaryIO, atom: Atom) -> bool:
    fh.seek(atom.offset)
    return int.from_bytes(fh.read(4), "big") == 1
