"""Continuous-batching decode loop for local HF models: each slot keeps its episode's KV across turns.

`run_rollouts` with an HFLM plays episodes here instead of one batched `generate` call per round:
- token-level continuous batching: a slot whose turn ends calls the tool and goes on at once, and a
  slot whose episode ends takes the next question at the next step (no waiting for the batch);
- tools that wait on the network (`blocking_io`, e.g. SerpAPI) run on a thread pool: that slot waits
  for its observation while the others keep decoding. Local tools (the snapshot) run inline, which
  keeps the batch composition, and so greedy output, independent of thread timing;
- KV reuse across turns and episodes: every slot stores the KV of the tokens it has seen; the next
  prompt is re-rendered and tokenized in full (exactly what one-at-a-time generation would see), its
  longest common prefix with the stored tokens is kept, and only the rest is fed. The few-shot
  prefix is prefilled once and copied to the slots that share it;
- draft and verify (greedy, when few rows are left): a step on few rows costs about as much as on
  many (the weights are read once per step), so each greedy row feeds its last token plus up to
  `draft_tokens` drafted ones, copied from what followed the latest earlier occurrence of its
  context's last n-gram (prompt lookup: actions copy entities from the question and observations).
  One forward scores them all; the drafts that match the model's own argmax are kept, plus its next
  token, and the KV of the rest is forgotten. Lossless: the tokens are the argmax at every position.

Rows live in one preallocated buffer per layer ([slots, kv heads, capacity, head dim]); row r's
token at position p is stored at index p, so rolling back is just forgetting a length, and a 4D
mask tells every query which stored keys are its own past. Greedy output equals one-at-a-time
generation up to fp rounding of different batch shapes.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from fireact.data.prompt_style import prompt_ids
from fireact.data.token_log import TokenTurn, common_prefix, start_turn
from fireact.lm.base import Completion, step_complete, truncate_at_stop
from fireact.lm.models import text_config
from fireact.rollout.job import RolloutJob
from fireact.rollout.sampling import choose_tokens


class _SlotState:
    """What the layers need for the current forward: which rows, where to write, how far to read."""

    def __init__(self, slots: int, capacity: int):
        self.slots, self.capacity = slots, capacity
        self.rows: torch.Tensor | None = None  # None: all rows (no gather)
        self.write_pos: torch.Tensor | None = None  # [n, q]; pads write to the trash index capacity-1
        self.kv_len = 0


class _SlotLayer(CacheLayerMixin):
    is_compileable = False
    is_sliding = False

    def __init__(self, state: _SlotState):
        super().__init__()
        self.state = state

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        _, h, _, d = key_states.shape
        shape = (self.state.slots, h, self.state.capacity, d)
        self.keys = torch.zeros(shape, dtype=key_states.dtype, device=key_states.device)
        self.values = torch.zeros(shape, dtype=value_states.dtype, device=value_states.device)
        self.is_initialized = True

    def grow(self, capacity: int) -> None:
        if self.keys is None or self.keys.shape[2] >= capacity:
            return
        b, h, old, d = self.keys.shape
        for name in ("keys", "values"):
            t = getattr(self, name)
            new = torch.zeros((b, h, capacity, d), dtype=t.dtype, device=t.device)
            new[:, :, : old - 1] = t[:, :, : old - 1]
            setattr(self, name, new)

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        st = self.state
        n, h, q, d = key_states.shape
        if st.rows is None:
            idx = st.write_pos[:, None, :, None].expand(n, h, q, d)
            self.keys.scatter_(2, idx, key_states)
            self.values.scatter_(2, idx, value_states)
            return self.keys[:, :, : st.kv_len], self.values[:, :, : st.kv_len]
        rows = st.rows[:, None]
        self.keys[rows, :, st.write_pos] = key_states.transpose(1, 2)
        self.values[rows, :, st.write_pos] = value_states.transpose(1, 2)
        return self.keys[st.rows, :, : st.kv_len], self.values[st.rows, :, : st.kv_len]

    def copy_prefix(self, src: int, dsts: list[int], n: int) -> None:
        if self.keys is not None:
            self.keys[dsts, :, :n] = self.keys[src, :, :n]
            self.values[dsts, :, :n] = self.values[src, :, :n]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.state.kv_len, 0

    def get_seq_length(self) -> int:
        return self.state.kv_len

    def get_max_length(self) -> int:
        return self.state.capacity


class SlotCache(Cache):
    """One KV row per slot, written at each token's own position (see module docstring).

    The rows start short and grow as the longest context does (by a quarter, in steps of `GRAIN`
    tokens), one layer at a time: the buffer is slots x capacity, so sizing it for the model's
    whole context up front would hold gigabytes no episode uses (40 slots x 2048 positions of
    SmolLM2-135M in fp32 is 3.8 GB, for ReAct episodes that reach ~400 tokens)."""

    GRAIN = 128

    def __init__(self, num_layers: int, slots: int, capacity: int = GRAIN * 2):
        self.state = _SlotState(slots, capacity)
        super().__init__(layers=[_SlotLayer(self.state) for _ in range(num_layers)])

    def ensure_capacity(self, needed: int) -> None:
        if needed + 1 <= self.state.capacity:
            return
        cap = max(needed + 1, self.state.capacity * 5 // 4)
        cap = -(-cap // self.GRAIN) * self.GRAIN
        for layer in self.layers:  # each layer's old buffer is freed before the next grows
            layer.grow(cap)
        self.state.capacity = cap

    def copy_prefix(self, src: int, dsts: list[int], n: int) -> None:
        for layer in self.layers:
            layer.copy_prefix(src, dsts, n)


@dataclass(eq=False)
class _Slot:
    index: int
    ex_index: int = -1
    episode: Any = None
    stored: list[int] = field(default_factory=list)  # tokens whose KV row `index` holds, in order
    feed: list[int] = field(default_factory=list)  # tokens to run next (a prompt suffix or one new token)
    generated: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    log: list[TokenTurn] = field(default_factory=list)  # the episode's exact tokens, when recording
    waiting: Future | None = None  # a tool call running off the decode path
    sampling: tuple[float, float] = (0.0, 1.0)  # (temperature, top_p) of this episode
    adapter: tuple[str, int] | None = None  # (LoRA adapter, version) its KV was computed with; None: as loaded
    generator: torch.Generator | None = None  # a request's own seeded sampler; None: the run's


class ContinuousBatcher:
    """Plays episodes on `slots` KV rows of an HFLM's model (greedy or sampled)."""

    def __init__(self, lm: Any, slots: int, min_shared_prefix: int = 32):
        self.lm, self.slots, self.min_shared_prefix = lm, max(1, slots), min_shared_prefix
        self.draft_tokens = getattr(lm, "draft_tokens", 0)
        self.drafts = {"proposed": 0, "accepted": 0}  # draft tokens fed and kept (bench/rollout_throughput.py)
        self.model, self.tok = lm.model, lm.tokenizer
        self.device = next(self.model.parameters()).device
        eos = lm.eos_ids
        self.eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        config = text_config(self.model.config)
        self.cache = SlotCache(config.num_hidden_layers, self.slots)
        self.max_context = getattr(config, "max_position_embeddings", None)

    def _ids(self, prompt) -> list[int]:
        return prompt_ids(prompt, self.tok)

    def _over_context(self, s: _Slot, ids: list[int]) -> bool:
        """True, the episode ended with an error naming it, when its prompt alone is longer than the
        model's context: a forward over it would allocate far past any budget (a 1 MB question is
        ~250k tokens, ~100 GB of attention) instead of failing with a message."""
        if self.max_context is None or len(ids) <= self.max_context:
            return False
        error = f"the prompt is {len(ids):,} tokens, over the model's context of {self.max_context:,}"
        s.episode.act(Completion("", len(ids), 0, error=error))
        return True

    def _forward(self, slots: list[_Slot], keep: int | None = None) -> torch.Tensor:
        """Run each slot's `feed` tokens (left-padded to a common width); returns the logits of the
        last token ([rows, vocab]), or with `keep` those of the last `keep` positions ([rows, keep, vocab])."""
        st = self.cache.state
        q = max(len(s.feed) for s in slots)  # (at least one slot feeds tokens)
        n = len(slots)
        kv_len = max(len(s.stored) + len(s.feed) for s in slots if s.feed)
        self.cache.ensure_capacity(kv_len)
        trash = st.capacity - 1
        ids = torch.full((n, q), self.lm.pad_id, dtype=torch.long)
        pos = torch.zeros((n, q), dtype=torch.long)
        write = torch.full((n, q), trash, dtype=torch.long)
        for r, s in enumerate(slots):
            m, start = len(s.feed), len(s.stored)
            if not m:  # an idle row in a whole-batch step: pads only (written to the trash index)
                continue
            ids[r, q - m :] = torch.tensor(s.feed)
            pos[r, q - m :] = torch.arange(start, start + m)
            write[r, q - m :] = pos[r, q - m :]
        # a query sees the stored keys up to its own position; pad queries see key 0 only (no NaN rows)
        mask = torch.arange(kv_len)[None, None, :] <= pos[:, :, None]
        whole = n == self.slots and all(s.index == r for r, s in enumerate(slots))
        st.rows = None if whole else torch.tensor([s.index for s in slots], dtype=torch.long, device=self.device)
        st.write_pos, st.kv_len = write.to(self.device), kv_len
        with torch.no_grad():
            out = self.lm.model(  # read each step: a server may load an adapter between steps
                input_ids=ids.to(self.device),
                attention_mask=mask[:, None].to(self.device),
                position_ids=pos.to(self.device),
                use_cache=True,
                logits_to_keep=keep or 1,
                **{self.lm.cache_kwarg: self.cache},
                **_adapter_names(slots),
            )
        for s in slots:
            s.stored += s.feed
            s.feed = []
        return out.logits[:, -1, :] if keep is None else out.logits

    def _admit(self, s: _Slot, pending: Any, job: RolloutJob) -> bool:
        """Start the next pending episode in the free slot `s`; False when it ended at once (a prompt
        over the context), leaving the slot free."""
        s.ex_index, ex = pending.popleft()
        s.episode = job.new_episode(ex)
        s.sampling = job.sampling_for(s.episode)
        seed = job.seed_for(s.episode)
        s.generator = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        ids = self._ids(s.episode.prompt())
        if self._over_context(s, ids):
            s.log = []
            self._next_turn(s, job)  # ends it: the slot is free again
            return False
        self._start_turn(s, ids, job.config.record_tokens, first=True)
        return True

    def _start_turn(self, s: _Slot, ids: list[int], record: bool = False, first: bool = False) -> None:
        if first and s.adapter != (adapter := self.job.adapter_for(s.episode)):
            s.adapter = adapter
            s.stored.clear()  # KV of other weights: nothing to reuse
        if record:  # the prompt as the part of the last context + sampled tokens it keeps, then new ids
            s.log = [] if first else s.log
            s.log.append(start_turn(s.log, ids))
        keep = min(common_prefix(s.stored, ids), len(ids) - 1)  # feed at least one token
        del s.stored[keep:]
        s.feed, s.generated, s.prompt_tokens = ids[keep:], [], len(ids)

    def _share_prefixes(self, fresh: list[_Slot]) -> None:
        """Prefill the prompt prefix shared by fresh slots once on one row and copy it to the rest."""
        if len(fresh) < 2 or len({s.adapter for s in fresh}) > 1:
            return
        full = [s.stored + s.feed for s in fresh]
        common = min(len(x) for x in full) - 1
        for x in full[1:]:
            common = min(common, common_prefix(full[0], x))
        kept = max(len(s.stored) for s in fresh)
        if common - kept < self.min_shared_prefix:
            return
        donor = max(fresh, key=lambda s: len(s.stored))
        donor_ids = donor.stored + donor.feed
        donor.feed = donor_ids[len(donor.stored) : common]
        self._forward([donor])
        donor.feed = donor_ids[common:]
        others = [s for s in fresh if s is not donor]
        self.cache.copy_prefix(donor.index, [s.index for s in others], common)
        for s in others:
            ids = s.stored + s.feed
            s.stored, s.feed = ids[:common], ids[common:]

    def run(self, job: RolloutJob) -> None:
        self.job = job
        with ThreadPoolExecutor(self.slots, thread_name_prefix="fireact-tool") as self._tool_pool:
            self._run(job)

    def _run(self, job: RolloutJob) -> None:
        pending = job.pending()
        slots = [_Slot(i) for i in range(self.slots)]
        cfg = job.config
        generator = torch.Generator(device=self.device).manual_seed(cfg.sampling_seed)
        while True:
            job.between_steps()
            for s in slots:
                if s.waiting is not None and s.waiting.done():
                    s.episode.observe(*s.waiting.result())
                    s.waiting = None
                    self._next_turn(s, job)
            fresh = [
                s for s in slots if s.episode is None and pending and not job.should_stop() and self._admit(s, pending, job)
            ]
            live = [s for s in slots if s.episode is not None]
            if not live:
                if job.wait_for_work():
                    continue
                return
            if all(s.waiting is not None for s in live):  # nothing to decode until a tool answers
                wait([s.waiting for s in live], return_when=FIRST_COMPLETED)
                continue
            self._share_prefixes(fresh)
            for phase in ("prefill", "decode"):
                group = [
                    s
                    for s in slots
                    if s.episode is not None and s.waiting is None and (len(s.feed) > 1) == (phase == "prefill")
                ]
                if not group:
                    continue
                if phase == "decode" and len(group) >= self.slots // 2:
                    # all rows, idle ones fed nothing: no gather/copy of the KV rows
                    in_group = {s.index for s in group}
                    held = {s.index: s.feed for s in slots if s.index not in in_group}
                    for s in slots:
                        if s.index in held:
                            s.feed = []
                    logits = self._forward(slots)
                    for s in slots:
                        if s.index in held:
                            s.feed = held[s.index]
                    logits = logits[[s.index for s in group]]
                elif phase == "decode" and self.draft_tokens and all(s.sampling[0] <= 0 for s in group):
                    self._decode_drafted(group, job, generator)
                    continue
                else:
                    logits = self._forward(group)
                nxt, logprobs = self._choose(group, logits, generator, cfg.record_tokens)
                for s, t, lp in zip(group, nxt, logprobs):
                    self._advance(s, t, lp, job)

    def _decode_drafted(self, group: list[_Slot], job: RolloutJob, generator: torch.Generator) -> None:
        """One greedy step that may emit several tokens per row (draft and verify, module docstring)."""
        k = min(self.draft_tokens, self.slots // len(group) - 1)  # ~ the tokens of a full decode step
        drafts = [_lookup_draft(s.stored + s.feed, k) if k > 0 else [] for s in group]
        for s, d in zip(group, drafts):
            s.feed = s.feed + d
        q = 1 + max(len(d) for d in drafts)
        logits = self._forward(group, keep=q)
        for r, (s, d) in enumerate(zip(group, drafts)):
            tokens, logprobs = choose_tokens(logits[r, q - 1 - len(d) :], 0.0, 1.0, generator, job.config.record_tokens)
            ok = 0
            while ok < len(d) and tokens[ok] == d[ok]:
                ok += 1
            del s.stored[len(s.stored) - (len(d) - ok) :]  # the rejected drafts' KV is forgotten
            self.drafts["proposed"] += len(d)
            self.drafts["accepted"] += ok
            for t, lp in zip(tokens[: ok + 1], logprobs[: ok + 1]):
                if not self._advance(s, t, lp, job):
                    break

    @staticmethod
    def _choose(group: list[_Slot], logits: torch.Tensor, generator: torch.Generator, with_logprobs: bool):
        """The next token of each slot: one call when the group samples alike (rollouts), else per
        row with its own temperature, top-p and seeded generator (requests to `fireact serve`)."""
        if len({s.sampling for s in group}) == 1 and all(s.generator is None for s in group):
            return choose_tokens(logits, *group[0].sampling, generator, with_logprobs)
        tokens, logprobs = [], []
        for r, s in enumerate(group):
            t, lp = choose_tokens(logits[r : r + 1], *s.sampling, s.generator or generator, with_logprobs)
            tokens += t
            logprobs += lp
        return tokens, logprobs

    def _advance(self, s: _Slot, token: int, logprob: float, job: RolloutJob) -> bool:
        """Append one generated token; False when it ended the turn."""
        s.generated.append(token)
        if job.config.record_tokens:
            s.log[-1].generated.append(token)
            s.log[-1].logprobs.append(logprob)
        text = self.tok.decode(s.generated, skip_special_tokens=True)
        spec = job.spec_for(s.episode)
        over = token in self.eos or len(s.generated) >= spec.max_tokens
        if not (over or step_complete(text, spec.stop, spec.stop_after_action)):
            s.feed = [token]
            if (stream := getattr(s.episode, "on_text", None)) is not None:
                stream(text)
            return True
        c = Completion(truncate_at_stop(text, spec.stop, spec.stop_after_action), s.prompt_tokens, len(s.generated))
        s.feed = []
        call = s.episode.act(c)
        if call is not None and getattr(call.tool, "blocking_io", False):
            s.waiting = self._tool_pool.submit(call.run)
            return False
        if call is not None:
            s.episode.observe(*call.run())
        self._next_turn(s, job)
        return False

    def _next_turn(self, s: _Slot, job: RolloutJob) -> None:
        """After a step and its observation: the episode's next prompt, or its end (the slot frees)."""
        ep = s.episode
        if ep.done:
            if job.config.record_tokens:
                ep.token_turns = list(s.log)
            job.finish(s.ex_index, ep)
            s.episode, s.feed = None, []
        else:
            ids = self._ids(ep.prompt())
            if self._over_context(s, ids):
                self._next_turn(s, job)
                return
            self._start_turn(s, ids, job.config.record_tokens)


def _adapter_names(rows: list[_Slot]) -> dict[str, Any]:
    """peft's per-row adapters when some row asks for one (rows idle in this step take any row's)."""
    names = [s.adapter[0] if s.adapter and s.feed else None for s in rows]
    if not any(names):
        return {}
    some = next(n for n in names if n)
    return {"adapter_names": [n or some for n in names]}


def _lookup_draft(context: list[int], k: int, ngram: tuple[int, ...] = (3, 2)) -> list[int]:
    """Up to k tokens that followed the latest earlier occurrence of the context's last n-gram."""
    for n in ngram:
        if len(context) <= n:
            continue
        tail = context[-n:]
        for i in range(len(context) - n - 1, -1, -1):
            if context[i : i + n] == tail:
                return context[i + n : i + n + k]
    return []


def run_continuous(lm: Any, job: RolloutJob) -> None:
    """`run_rollouts`' path for local HF models."""
    ContinuousBatcher(lm, job.config.batch_size).run(job)
