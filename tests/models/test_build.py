import sys

import pytest
import torch
from safetensors.torch import save_file

from kdistill.models import build_model, cnn, freeze_layers, layer_names, mlp
from kdistill.weights import load_weights, read_state_dict


def test_load_weights_from_safetensors_and_state_dict(tmp_path):
    torch.manual_seed(0)
    source = mlp(6, 3, hidden=[5])
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "w.safetensors")
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        target = mlp(6, 3, hidden=[5])
        assert load_weights(target, tmp_path / name) == []
        assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), source.state_dict().values()))


def test_mismatched_weights_need_partial(tmp_path):
    torch.save(mlp(6, 3, hidden=[5]).state_dict(), tmp_path / "w.pt")
    new_head = mlp(6, 4, hidden=[5])
    with pytest.raises(ValueError, match="weights_partial"):
        load_weights(new_head, tmp_path / "w.pt")
    assert load_weights(new_head, tmp_path / "w.pt", partial=True) == ["classifier.bias", "classifier.weight"]


def test_pickled_objects_are_never_loaded(tmp_path):
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "obj.pt")  # a whole module, pickled
    with pytest.raises(ValueError, match="weights_only=True"):
        read_state_dict(tmp_path / "obj.pt")


def test_freeze_first_layers_and_named_modules():
    model = cnn((1, 8, 8), 3, channels=[4, 8])
    assert layer_names(model)[:3] == ["features.0", "features.1", "features.4"]
    frozen = freeze_layers(model, modules=["classifier.1"], first=2)
    assert frozen == ["classifier.1", "features.0", "features.1"]
    model.train()
    assert not model.features[1].training and model.features[4].training  # frozen batch norm stays in eval
    assert not model.features[0].weight.requires_grad and model.features[4].weight.requires_grad
    with pytest.raises(ValueError, match="no such module; modules are features"):
        freeze_layers(model, modules=["feature.0"])
    with pytest.raises(ValueError, match="the model has 6"):
        freeze_layers(model, first=99)
    with pytest.raises(ValueError, match="no trainable parameter"):
        freeze_layers(mlp(4, 2, hidden=[3]), first=2)


def test_user_factory_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "usernets.py").write_text(
        "import torch\n"
        "def make(num_classes, width=3):\n"
        "    layers = [torch.nn.Flatten(), torch.nn.Linear(4, width), torch.nn.Linear(width, num_classes)]\n"
        "    return torch.nn.Sequential(*layers)\n"
        "def not_a_model():\n    return 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model("usernets:make", {"width": 5}, (4,), 7)
    assert model(torch.zeros(2, 4)).shape == (2, 7)
    with pytest.raises(ValueError, match="not a torch.nn.Module"):
        build_model("usernets:not_a_model", {}, (4,), 2)
    with pytest.raises(ValueError, match="has no callable 'nope'"):
        build_model("usernets:nope", {}, (4,), 2)
    sys.modules.pop("usernets", None)


def test_tied_weights_saved_by_save_weights_load_strictly(tmp_path):
    """safetensors stores one tensor for weights tied together; loading it fills both names."""
    from torch import nn

    from kdistill.weights import save_weights

    def tied_model():
        model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
        model[2].weight = model[0].weight
        return model

    torch.manual_seed(0)
    source = tied_model()
    save_weights(source, tmp_path / "tied.safetensors")
    target = tied_model()
    assert load_weights(target, tmp_path / "tied.safetensors") == []
    assert torch.equal(target[2].weight, source[0].weight) and target[2].weight is target[0].weight
    assert torch.equal(target[2].bias, source[2].bias)
