"""Recorded episodes as trajectories, pure: a conversation the program edited or truncated between
calls, and a system prompt changed mid-episode, each start a new trajectory where the prefix breaks
(so none claims the model saw text it did not), counted in the summary; an abandoned episode is
written as unscored after its idle time."""

from __future__ import annotations

import json

import pytest

from fireact.data.recordings import RECORD_FILE, episode_trajectories, read_recording
from fireact.gateway.recorder import Recorder
from fireact.serve.http_app import BadRequest

SYSTEM = {"role": "system", "content": "Be brief."}
Q = {"role": "user", "content": "How long is the Nile?"}


def call(messages: list[dict], answer: dict, ids: tuple[list[int], list[int]] | None = None) -> dict:
    c = {"messages": messages, "tools": None, "message": answer}
    if ids is not None:
        c |= {"prompt_ids": ids[0], "token_ids": ids[1], "logprobs": [-0.5] * len(ids[1]), "fmt": "chat",
              "protocol": "react"}  # fmt: skip
    return c


def say(text: str) -> dict:
    return {"role": "assistant", "content": text}


def test_continued_edited_and_re_prompted_conversations_split_where_the_prefix_breaks():
    a1, a2, a3, a4 = say("Let me think."), say("About 6,650 km."), say("Still 6,650 km."), say("6,650 km.")
    more = {"role": "user", "content": "Are you sure?"}
    calls = [
        call([SYSTEM, Q], a1, ([1, 2, 3], [4, 5])),
        call([SYSTEM, Q, a1, more], a2, ([1, 2, 3, 4, 5, 6], [7])),  # continues: one trajectory
        call([SYSTEM, Q, more], a3, ([1, 2, 3, 6], [8])),  # the program dropped a1: edited
        call([{"role": "system", "content": "Be very brief."}, Q], a4, ([9, 2, 3], [10])),  # system prompt changed
    ]
    trajs, counts = episode_trajectories({"episode": "e", "closed": True, "reward": 1.0, "calls": calls})
    assert [t.meta["calls"] for t in trajs] == [2, 1, 1] and counts["edited"] == 1 and counts["system_changed"] == 1
    first = trajs[0]
    assert [(x.thought, x.observation) for x in first.turns] == [("Let me think.", "Are you sure?"),
                                                                 ("About 6,650 km.", None)]  # fmt: skip
    assert first.prediction == "About 6,650 km." and first.instructions == "Be brief."
    # the continuing calls' ids are one token row; each trajectory trains only what was sampled in it
    assert [(t.keep, t.prompt, t.generated) for t in first.token_turns] == [(0, [1, 2, 3], [4, 5]), (5, [6], [7])]
    assert [t.token_turns[0].generated for t in trajs[1:]] == [[8], [10]]
    assert trajs[2].instructions == "Be very brief." and all(t.reward == 1.0 for t in trajs)


def test_an_abandoned_episode_is_written_unscored_and_a_bounded_one_refuses_more(tmp_path):
    recorder = Recorder(tmp_path, "m", idle_seconds=60, max_calls=1)
    recorder.add("idle", {"messages": [Q], "tools": None}, {"message": say("hm")}, size=100)
    assert recorder.expire() == 0  # not idle yet
    with pytest.raises(BadRequest, match="close it") as e:  # at its bound: no more calls
        recorder.check_open("idle")
    assert e.value.status == 413
    assert recorder.expire(now=recorder.open["idle"].last + 61) == 1
    recorder.close_all()
    (line,) = (tmp_path / RECORD_FILE).read_text().splitlines()
    assert json.loads(line)["closed"] is False and json.loads(line)["info"] == {"abandoned_after_s": 60}
    (t,) = read_recording(tmp_path).trajectories
    assert t.reward is None and t.meta["unscored"]
