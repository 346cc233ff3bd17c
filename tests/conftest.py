import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def fake_trainer():
    """A stand-in for the Trainer attributes a datamodule reads (rank, world size, method)."""
    from types import SimpleNamespace

    def make(rank=0, world_size=1, lightning_module=None):
        return SimpleNamespace(global_rank=rank, world_size=world_size, lightning_module=lightning_module)

    return make
