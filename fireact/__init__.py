"""fireact: language-agent fine-tuning (FireAct, Chen et al. 2023) on PyTorch Lightning."""

__version__ = "0.1.0"
