import pytest
import torch

import kdistill
from kdistill.metrics import evaluate
from kdistill.models import cnn, mlp

OPTS = {"epochs": 8, "batch_size": 64, "lr": 1e-2, "quiet": True}


@pytest.fixture(scope="module")
def digits():
    return kdistill.load_dataset("digits", seed=0, train_fraction=0.4)


def small():
    return mlp((1, 8, 8), 10, hidden=(32, 32))


def test_mutual_trains_every_peer_from_scratch(digits):
    torch.manual_seed(0)
    peers = [small(), cnn((1, 8, 8), 10, channels=(4,), hidden=16)]  # architectures may differ
    start = [peers[0].classifier.weight.detach().clone(), peers[1].features[0].weight.detach().clone()]
    result = kdistill.mutual(peers, digits, **OPTS)
    assert result.models == peers and len(result.histories) == 1
    assert {"train_dml", "val_dml"} <= set(result.histories[0].epochs[-1])
    assert not torch.equal(start[0], peers[0].classifier.weight)
    assert not torch.equal(start[1], peers[1].features[0].weight)
    for peer in peers:
        assert evaluate(peer, digits.test, digits.classes)["accuracy"] > 0.5


def test_mutual_needs_two_peers(digits):
    with pytest.raises(ValueError, match="at least 2 torch.nn.Module"):
        kdistill.mutual([small()], digits)


def test_born_again_chains_generations(digits):
    torch.manual_seed(0)
    teacher = small()
    kdistill.fit(teacher, digits, **OPTS)
    result = kdistill.born_again(small, teacher, digits, generations=2, **OPTS)
    first, second = result.models
    assert len(result.histories) == 2 and first is not second and first is not teacher
    assert all("train_kd" in h.epochs[-1] for h in result.histories)
    # generation 1 taught generation 2 and was handed back trainable; the given teacher stays frozen
    assert all(p.requires_grad for p in first.parameters()) and all(p.requires_grad for p in second.parameters())
    assert not any(p.requires_grad for p in teacher.parameters())
    assert evaluate(second, digits.test, digits.classes)["accuracy"] > 0.5


def test_born_again_checks_generations(digits):
    with pytest.raises(ValueError, match="generations must be an integer >= 1, got 0"):
        kdistill.born_again(small, small(), digits, generations=0)


def test_self_distillation_drops_the_heads(digits):
    torch.manual_seed(0)
    student = small()
    keys = set(student.state_dict())
    result = kdistill.self_distill(student, digits, ["features.2", "features.4"], **OPTS)
    assert result.models == [student]
    assert set(student.state_dict()) == keys  # no head parameters in the returned student
    assert all(not m._forward_hooks for m in student.modules())
    assert {"train_byot", "val_byot"} <= set(result.histories[0].epochs[-1])
    assert evaluate(student, digits.test, digits.classes)["accuracy"] > 0.5


def test_self_distillation_needs_a_layer(digits):
    with pytest.raises(ValueError, match="at least one layer"):
        kdistill.self_distill(small(), digits, [])
