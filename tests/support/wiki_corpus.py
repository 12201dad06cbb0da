"""A four-passage corpus for the wiki tool and retrieval server tests, in either format."""

from __future__ import annotations

import json
from pathlib import Path

PASSAGES = [
    (
        "Scott Derrickson",
        ["Scott Derrickson (born July 16, 1966) is an American director.", " He lives in Los Angeles."],
    ),
    ("Ed Wood", ["Edward Davis Wood Jr. was an American filmmaker.", " He made cult films in Hollywood."]),
    ("Ed Wood (film)", ["Ed Wood is a 1994 biopic directed by Tim Burton about the filmmaker Ed Wood."]),
    ("Doctor Strange (2016 film)", ["Doctor Strange is a 2016 superhero film directed by Scott Derrickson."]),
]


def write_corpus(path: Path, style: str = "hotpotqa") -> Path:
    with path.open("w") as f:
        for i, (title, sentences) in enumerate(PASSAGES):
            if style == "hotpotqa":
                row = {"title": title, "sentences": sentences}
            else:  # Search-R1 / FlashRAG
                row = {"id": str(i), "contents": f'"{title}"\n' + "".join(sentences).strip()}
            f.write(json.dumps(row) + "\n")
            if i == 1:
                f.write("\n")  # blank lines are skipped
    return path
