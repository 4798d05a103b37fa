"""Checkpoint files that are either complete or absent: write to a temporary file, then rename."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..io import write_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic (a kill mid-write keeps the old file).

    The checkpoint goes to a temporary file beside ``path`` and is moved over it
    (:func:`~selfsup_color.io.write_atomic`), so ``last.ckpt`` is always a whole checkpoint.
    Remote paths (fsspec URLs) use the plain write.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):  # remote (fsspec) storage: no local rename
            return super().save_checkpoint(checkpoint, path, storage_options)
        save = super().save_checkpoint
        write_atomic(path, lambda tmp: save(checkpoint, tmp, storage_options))
