"""The resumable loader picks up where a killed run stopped, for one-item batches (SFT) and for batches
of several items (GRPO's questions), and the epochs after the resumed one start at their beginning."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fireact.modules.resumable import ResumableLoader, ResumableShuffle


def loader(n: int, batch_size: int, trainer=None) -> ResumableLoader:
    return ResumableLoader(list(range(n)), sampler=ResumableShuffle(n, seed=5), trainer=trainer,
                           batch_size=batch_size, collate_fn=list)  # fmt: skip


def epoch(dl: ResumableLoader, e: int) -> list[list[int]]:
    dl.sampler.set_epoch(e)  # as Lightning does at every epoch start
    return list(dl)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_resumed_epoch_continues_in_the_same_order(batch_size):
    whole = loader(10, batch_size)
    epochs = [epoch(whole, e) for e in range(3)]
    assert epochs[0] != epochs[1] and sorted(sum(epochs[1], [])) == list(range(10))
    # the killed run had trained 2 batches of epoch 1; Lightning saved what the trainer had processed
    trainer = SimpleNamespace(current_epoch=1, fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(
        batch_progress=SimpleNamespace(current=SimpleNamespace(processed=2)))))  # fmt: skip
    state = loader(10, batch_size, trainer).state_dict()
    assert state == {"epoch": 1, "batches_done": 2}
    resumed = loader(10, batch_size)
    resumed.load_state_dict(state)
    assert epoch(resumed, 1) == epochs[1][2:]  # nothing trained twice, nothing skipped
    assert epoch(resumed, 2) == epochs[2]  # the next epoch from its start


def test_an_epoch_end_checkpoint_resumes_at_the_next_epoch():
    first = epoch(loader(6, 2), 1)
    resumed = loader(6, 2)
    resumed.load_state_dict({"epoch": 0, "batches_done": 3})  # all of epoch 0 done
    assert epoch(resumed, 1) == first
