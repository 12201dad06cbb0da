"""Agent runtime: methods, tools, LM backends and rollouts. Uses fireact.data; never Lightning."""
