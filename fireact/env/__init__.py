"""Environments: an agent's examples, tools and reward as one object (built-in worlds and users' own)."""
