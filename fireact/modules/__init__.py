"""Lightning side of fireact: the fine-tuning module, data module, strategies and callbacks."""
