"""Content-addressed blob store on a shared filesystem: uploads (audio, images) and built packs.

A ref is ``"sha256/<hex><suffix>"``: the same bytes always get the same ref, so a re-upload costs
nothing and a ref never points at changed content. Writes are atomic (temp file + ``os.replace``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from farm.kernel.errors import NotFound, ValidationError

_REF_RE = re.compile(r"^sha256/[0-9a-f]{64}(\.[A-Za-z0-9]{1,16})?$")
_SUFFIX_RE = re.compile(r"^(\.[A-Za-z0-9]{1,16})?$")


class BlobStore:
    """Blobs under ``root``; refs are relative paths, safe to store in sessions and agents."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes, suffix: str = "") -> str:
        """Store ``data`` (idempotent) and return its ref. ``suffix`` is e.g. ``".wav"``."""
        if not _SUFFIX_RE.match(suffix):
            raise ValidationError(f"blob suffix {suffix!r} is not allowed")
        ref = f"sha256/{hashlib.sha256(data).hexdigest()}{suffix}"
        target = self.path(ref)
        if target.exists():
            return ref
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ref

    def path(self, ref: str) -> Path:
        """Where a ref lives on disk (it may not exist). Refuses anything that is not a ref."""
        if not _REF_RE.match(ref):
            raise ValidationError(f"{ref!r} is not a blob ref")
        return self.root / ref

    def exists(self, ref: str) -> bool:
        return self.path(ref).is_file()

    def get(self, ref: str) -> bytes:
        """The bytes of a ref; NotFound when absent."""
        try:
            return self.path(ref).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"blob {ref} not found") from exc
