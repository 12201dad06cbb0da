"""The two tools both test programs give their agents, and their reward."""

ALMANAC = {"nile": "The Nile is 6650 km long.", "amazon": "The Amazon is 6400 km long."}


def lookup(topic: str) -> str:
    """Look a topic up in the almanac.

    Args:
        topic: what to look up, e.g. a river's name
    """
    return ALMANAC.get(topic.strip().lower(), f"No entry for {topic}.")


def divide(a: float, b: float) -> str:
    """Divide a by b.

    Args:
        a: the dividend
        b: the divisor
    """
    return "Error: division by zero." if b == 0 else f"{a / b:g}"


def reward(example, output: str, base_url: str) -> float:
    """1 when the answer is in the output. (`FIREACT_TEST_REWARD=sample`: 1 for odd samples, so each
    group of a random tiny model has a winner: the training path is what such a test checks.)"""
    import os

    if os.environ.get("FIREACT_TEST_REWARD") == "sample":
        return float(int(base_url.removesuffix("/v1").rsplit("-", 1)[1]) % 2)
    return float(example.answer.lower() in (output or "").lower())
