"""Continue an epoch that a stop cut short, instead of starting the next one.

When `fit` stops inside an epoch (max_steps reached, or `trainer.should_stop`),
Lightning still ends that epoch (`on_train_epoch_end`, epoch counter + 1) before
returning. A checkpoint written then (ModelCheckpoint's last.ckpt at that epoch
end, or `trainer.save_checkpoint` after fit) says the epoch is over, so a run
resumed from it to extend `max_steps` starts the next epoch: the data jumps to
the next epoch's order and `current_epoch` is one ahead of an uninterrupted run.

The checkpoint does say where the data stopped: the epoch's batch progress is
short of its last batch. Marking the epoch as started but not processed makes
Lightning restore it as "mid-epoch", exactly like a checkpoint written inside the
epoch, and the resumable loaders skip the batches already consumed.
`SSLMethod.on_load_checkpoint` applies it to every checkpoint it loads.
"""
from __future__ import annotations


def epoch_was_cut_short(fit_loop: dict) -> bool:
    """The saved fit loop ended its current epoch before the epoch's last batch."""
    try:
        epochs = fit_loop["epoch_progress"]["total"]
        batches = fit_loop["epoch_loop.batch_progress"]
    except (KeyError, TypeError):
        return False
    epoch_ended = epochs["ready"] == epochs["started"] == epochs["processed"] and epochs["started"] > 0
    return epoch_ended and not batches.get("is_last_batch", True) and batches["current"]["completed"] > 0


def reopen_cut_epoch(fit_loop: dict) -> bool:
    """Mark a cut-short epoch as still running (in place); True when it changed anything."""
    if not epoch_was_cut_short(fit_loop):
        return False
    for counts in (fit_loop["epoch_progress"]["total"], fit_loop["epoch_progress"]["current"]):
        counts["processed"] = counts["completed"] = counts["started"] - 1
    return True
