"""CLI subcommands: thin wiring of fireact.data / fireact.agent / fireact.modules."""
