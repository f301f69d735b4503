import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def space():
    from attend_search import load_space
    return load_space("attendnext")
