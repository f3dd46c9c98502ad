"""evaluation_mode: eval() inside the block, every submodule's own mode back afterwards, also after an error."""
import pytest
from torch import nn

from ctflows.core.modes import evaluation_mode


def mixed_model() -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.Linear(2, 2)))
    model.train()
    model[1][0].eval()  # a frozen dropout inside a training model
    return model


def test_modes_come_back_after_an_error_inside_the_block():
    model = mixed_model()
    before = {name: m.training for name, m in model.named_modules()}
    with pytest.raises(KeyError):
        with evaluation_mode(model):
            assert not any(m.training for m in model.modules())
            raise KeyError("interrupted evaluation")
    assert {name: m.training for name, m in model.named_modules()} == before
