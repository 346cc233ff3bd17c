"""Checkpoints that never lose finished work: atomic writes, a last.ckpt that is always the
newest state (its predecessor kept until the new one is complete), resume-path resolution that
skips a corrupt file, and pre-emption signals turned into a saved, resumable stop."""
from .atomic_io import AtomicCheckpointIO, CheckpointWriteError, fsync_directory
from .best_checkpoint import BestCheckpoint
from .ckpt_path import resolve_ckpt_path
from .last_checkpoint import LAST_NAME, PREVIOUS_NAME, LastCheckpoint
from .preemption import Preemption
from .resolve import CheckpointNotFoundError, existing_checkpoints, find_resumable, is_readable

__all__ = [
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "CheckpointNotFoundError",
    "CheckpointWriteError",
    "LAST_NAME",
    "LastCheckpoint",
    "PREVIOUS_NAME",
    "Preemption",
    "existing_checkpoints",
    "find_resumable",
    "fsync_directory",
    "is_readable",
    "resolve_ckpt_path",
]
