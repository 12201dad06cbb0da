"""A seeded, invented world for proving that training teaches the agent, offline and in minutes.

Real HotpotQA needs a real LM and real search; a tiny random model on a 2-core CPU learns nothing
from it in a test's time budget. This world has invented people, cities and countries, a search
snapshot of one short document per entity, two-hop questions ("In which country was X born?")
and scripted expert ReAct trajectories as the teacher. Nothing in it can be known without
searching, and every answer is reachable from the question's words through the search tool.
Entities are named by 3-digit codes: BPE tokenizers split digits into the same tokens in every
context (after a space, inside `search[...]`), so a tiny model can learn to copy them.

Layout written by `write_world` (the same layout as the FireAct data dir, so every command works):
  synthetic/{train,dev}.json   [{"question", "answer"}]
  synthetic/expert_train.jsonl fireact trajectories of the scripted expert
  search_snapshot.jsonl        {"query", "snippet", "source"}: one document per entity
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

_JOBS = ["baker", "pilot", "painter", "farmer", "singer", "doctor", "sailor", "teacher"]


def _name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = str(rng.randint(100, 999))
        if name not in used:
            used.add(name)
            return name


@dataclass(frozen=True)
class Person:
    name: str
    city: str
    job: str


@dataclass
class World:
    people: list[Person]
    country_of: dict[str, str]  # city -> country

    def documents(self) -> dict[str, str]:
        docs = {p.name: f"{p.name} was born in {p.city}. {p.name} works as a {p.job}." for p in self.people}
        for city, country in self.country_of.items():
            docs[city] = f"{city} is a city in {country}."
        return docs

    def question(self, p: Person) -> dict[str, str]:
        return {"question": f"In which country was {p.name} born?", "answer": self.country_of[p.city]}

    def expert_turns(self, p: Person) -> list[dict[str, str | None]]:
        docs, country = self.documents(), self.country_of[p.city]
        return [
            {
                "thought": f"I need to find where {p.name} was born.",
                "action": f"search[{p.name}]",
                "observation": docs[p.name],
            },
            {
                "thought": f"{p.name} was born in {p.city}. I need the country of {p.city}.",
                "action": f"search[{p.city}]",
                "observation": docs[p.city],
            },
            {
                "thought": f"{p.city} is in {country}, so the answer is {country}.",
                "action": f"finish[{country}]",
                "observation": None,
            },
        ]


def make_world(n_people: int = 120, n_cities: int = 12, n_countries: int = 4, seed: int = 0) -> World:
    rng = random.Random(seed)
    used: set[str] = set()
    countries = [_name(rng, used) for _ in range(n_countries)]
    country_of = {_name(rng, used): rng.choice(countries) for _ in range(n_cities)}
    cities = list(country_of)
    people = [Person(_name(rng, used), rng.choice(cities), rng.choice(_JOBS)) for _ in range(n_people)]
    return World(people, country_of)


def write_world(root: Path, n_people: int = 120, n_dev: int = 20, seed: int = 0) -> Path:
    """Write the world under `root`: dev people are never in the expert training trajectories."""
    root = Path(root)
    world = make_world(n_people=n_people, seed=seed)
    train, dev = world.people[n_dev:], world.people[:n_dev]
    folder = root / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    for split, people in (("train", train), ("dev", dev)):
        (folder / f"{split}.json").write_text(json.dumps([world.question(p) for p in people], indent=0))
    with (folder / "expert_train.jsonl").open("w") as f:
        for i, p in enumerate(train):
            q = world.question(p)
            record = {
                "question": q["question"], "answer": q["answer"], "task": "synthetic", "method": "react",
                "turns": world.expert_turns(p), "prediction": q["answer"], "em": 1.0, "f1": 1.0,
                "end_reason": "finish", "id": str(i), "source": "synthetic-expert", "meta": {"seed": seed},
            }  # fmt: skip
            f.write(json.dumps(record) + "\n")
    with (root / "search_snapshot.jsonl").open("w") as f:
        for query, snippet in world.documents().items():
            f.write(json.dumps({"query": query, "snippet": snippet, "source": "synthetic"}) + "\n")
    return root
