"""Lightning parts: the fine-tuning module, the trajectory DataModule, callbacks."""
