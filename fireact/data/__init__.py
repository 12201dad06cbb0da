"""Tasks, scoring, trajectory records and training encodings. Imports nothing else of fireact."""
