"""Attachments: content types judged by content, the organisation's limits, and metadata stripping
of files on disk (docs/attachments.md).

Nothing here knows of HTTP, Celery or storage: the web checks an upload with ``types`` and
``limits``, and the ``files`` worker calls ``strip.strip_file`` on a decrypted copy. The modules
that need Pillow, pikepdf or mutagen are imported only by ``strip``, so the web's start-up and the
organisation file's parsing stay light.
"""
