"""Structured pruning of a trained teacher (Torch-Pruning DepGraph), and a pruned model rebuilt
from its weights file with its layer sizes read as data, never as code."""

import copy
import json
import textwrap

import pytest
import torch
from torch import nn

from kdistill.models import build_model, cnn, count_params, freeze, importable
from kdistill.models.prune import FromTeacher, PruningError, _prune, prune
from kdistill.models.reconstruct import _layer_io, reconstruct
from kdistill.models.shapes import shapes_of
from kdistill.weights import read_safetensors, rebuild, save_weights

NET = '''
import torch
from torch import nn


class Net(nn.Module):
    """A residual block, a concatenation, batch norm and a depthwise convolution."""

    def __init__(self, num_classes=3, width=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.res = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.branch = nn.Conv2d(width, width, 1)
        self.mix = nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.res(x))
        x = self.mix(torch.cat([self.depthwise(x), self.branch(x)], 1))
        return self.head(x.mean((2, 3)))


def net(input_shape, num_classes, width=8):
    return Net(num_classes, width)
'''


@pytest.fixture
def user_net(tmp_path):
    (tmp_path / "usernets.py").write_text(textwrap.dedent(NET))
    with importable(tmp_path):
        yield lambda: build_model("usernets:net", {"width": 16}, (1, 8, 8), 3)


def _info(model, arch, shape, classes):
    return {"arch": {**arch, "shapes": shapes_of(model)}, "input_shape": list(shape), "classes": classes}


@pytest.mark.parametrize("importance, steps", [("magnitude", 1), ("taylor", 2)])
def test_the_zoo_cnn_pruned_keeps_its_outputs_and_rebuilds_from_its_file(tmp_path, importance, steps):
    torch.manual_seed(0)
    teacher = freeze(cnn((1, 8, 8), 4, channels=[16, 32], hidden=32))
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 4, (16,))
    student = prune(teacher, x[:2], ratio=0.8, importance=importance, iterative_steps=steps, batches=[(x, y)])
    assert count_params(student) <= 0.2 * count_params(teacher) and count_params(student) > 0.1 * count_params(teacher)
    assert student(x).shape == (16, 4)
    assert student.classifier[-1].out_features == 4  # the classifier's outputs are kept
    assert all(not p.requires_grad for p in teacher.parameters())  # the teacher is left as it was
    assert count_params(teacher) == count_params(cnn((1, 8, 8), 4, channels=[16, 32], hidden=32))
    path = save_weights(student, tmp_path / "s.safetensors", _info(student, {"model": "cnn", "options": {
        "channels": [16, 32], "hidden": 32}}, (1, 8, 8), list("abcd")))
    again, _ = rebuild(path)
    student.eval()
    assert torch.allclose(again(x), student(x), atol=1e-6)


def test_magnitude_and_taylor_choose_different_channels():
    torch.manual_seed(0)
    teacher = cnn((1, 8, 8), 4, channels=[16, 32], hidden=32)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 4, (32,))
    a = prune(teacher, x[:2], ratio=0.7, importance="magnitude")
    b = prune(teacher, x[:2], ratio=0.7, importance="taylor", batches=[(x, y)])
    assert count_params(a) == count_params(b)
    assert not torch.equal(a.features[0].weight, b.features[0].weight)


def test_a_user_model_with_residual_concat_batch_norm_and_depthwise_conv(user_net, tmp_path):
    torch.manual_seed(0)
    teacher = user_net()
    x = torch.randn(4, 1, 8, 8)
    student = prune(teacher, x[:2], ratio=0.6, target="macs")
    assert student(x).shape == (4, 3)
    assert student.depthwise.groups == student.depthwise.out_channels < 16
    info = _info(student, {"model": "usernets:net", "options": {"width": 16}}, (1, 8, 8), ["a", "b", "c"])
    path = save_weights(student, tmp_path / "u.safetensors", info)
    with pytest.raises(ValueError, match="never chooses code"):
        rebuild(path)
    with importable(tmp_path):
        again, _ = rebuild(path, factory="usernets:net")
    assert torch.allclose(again(x), student.eval()(x), atol=1e-5)


def test_a_layer_it_cannot_prune_is_named():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.ones(8, 1, 1))

        def forward(self, x):
            return x * self.gain

    model = nn.Sequential(nn.Conv2d(1, 8, 3), Scale(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(1, 1, 6, 6))
    with pytest.raises(PruningError, match=r"layer '1' \(Scale, parameters gain\) cannot be pruned"):
        prune(model, torch.randn(2, 1, 6, 6), ratio=0.5)


def test_a_file_whose_shapes_name_code_or_other_layers_is_refused(tmp_path):
    student = prune(cnn((1, 8, 8), 4, channels=[8], hidden=8), torch.randn(2, 1, 8, 8), ratio=0.5)
    arch = {"model": "cnn", "options": {"channels": [8], "hidden": 8}}
    for shapes, message in (({"features.0": {"type": "Conv2d", "padding_mode": 3}}, "metadata field 'arch'"),
                            ({"nowhere": {"type": "Conv2d", "out_channels": 4}}, "shapes name the layer 'nowhere'"),
                            ({"features.1": {"type": "Conv2d", "out_channels": 4}}, "factory builds a BatchNorm2d")):
        path = save_weights(student, tmp_path / "bad.safetensors",
                            {"arch": {**arch, "shapes": shapes}, "input_shape": [1, 8, 8], "classes": list("abcd")})
        with pytest.raises(ValueError, match=message):
            rebuild(path)
    assert json.loads(read_safetensors(path)[1]["kdistill"])["arch"]["shapes"] == shapes


@pytest.mark.parametrize("field, value, message", [
    ("prune", 1.0, "prune = 1.0: the share"), ("importance", "random", "importance = 'random': allowed values are "
                                                                       "magnitude, taylor"),
    ("iterative_steps", 0, "iterative_steps = 0"), ("weights", "copy", "weights = 'copy'"),
    ("allocation", "layerwise", "allocation = 'layerwise': allowed values are uniform, global"),
    ("reconstruct", "yes", "reconstruct = 'yes': must be true")])
def test_from_teacher_options_are_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        FromTeacher(**{field: value})


def test_global_allocation_ranks_every_layers_channels_together_and_rebuilds(tmp_path):
    """Uniform pruning keeps the same share of every layer; global pruning takes more from the
    layer most of whose channels matter little (here the dense layer: 112 of its 128 neurons
    nearly zero; each layer's importances are normalized by their mean, so a layer's overall
    scale alone would not) and still meets the share."""
    torch.manual_seed(0)
    teacher = cnn((1, 8, 8), 4, channels=[8, 16], hidden=128)
    with torch.no_grad():
        for t in (teacher.classifier[1].weight, teacher.classifier[1].bias):
            t[16:] *= 0.01
        teacher.classifier[-1].weight[:, 16:] *= 0.01
    x = torch.randn(8, 1, 8, 8)
    uniform = prune(teacher, x[:2], ratio=0.8)
    spread = prune(teacher, x[:2], ratio=0.8, allocation="global")
    for student in (uniform, spread):
        assert 0.1 * count_params(teacher) < count_params(student) <= 0.2 * count_params(teacher)
        assert student(x).shape == (8, 4)

    def kept(student):
        return [student.features[0].out_channels / 8, student.features[4].out_channels / 16,
                student.classifier[1].out_features / 128]

    assert max(kept(uniform)) - min(kept(uniform)) < 0.1, kept(uniform)  # one share everywhere
    assert kept(spread)[0] > kept(uniform)[0] and kept(spread)[2] < kept(uniform)[2], (kept(spread), kept(uniform))
    path = save_weights(spread, tmp_path / "g.safetensors", _info(spread, {"model": "cnn", "options": {
        "channels": [8, 16], "hidden": 128}}, (1, 8, 8), list("abcd")))
    again, _ = rebuild(path)
    assert torch.allclose(again(x), spread.eval()(x), atol=1e-6)


@pytest.mark.parametrize("steps", [1, 3])
def test_global_pruning_meets_its_share_in_any_number_of_steps(steps):
    """The ranking is measured anew after each step, so the share found in one step is not the
    share of three: the bisection prunes as the student will be (it missed by 1.8x before)."""
    torch.manual_seed(0)
    teacher = cnn((1, 8, 8), 4, channels=[8, 16], hidden=128)
    x = torch.randn(8, 1, 8, 8)
    student = prune(teacher, x[:2], ratio=0.8, allocation="global", iterative_steps=steps)
    assert 0.1 * count_params(teacher) < count_params(student) <= 0.2 * count_params(teacher)


@pytest.mark.parametrize("importance, steps", [("magnitude", 1), ("taylor", 3)])
def test_pruning_reports_which_of_the_teachers_channels_each_layer_kept(importance, steps):
    """The indices the refit relies on: every pruned layer is the teacher's layer restricted to
    the kept output channels (and to its producer's kept channels as inputs), over any number of
    steps (Taylor re-ranks after each, so the indices compose)."""
    torch.manual_seed(0)
    teacher = cnn((1, 8, 8), 4, channels=[16, 32], hidden=32).eval()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 4, (16,))
    student = copy.deepcopy(teacher)
    kept = _prune(student, x[:2], student.classifier[-1], 0.6, importance, steps, [(x, y)])
    conv1, conv2, hidden = (torch.tensor(kept[n]) for n in ("features.0", "features.4", "classifier.1"))
    assert 16 > len(conv1) and 32 > len(conv2) and 32 > len(hidden)
    assert "classifier.4" not in kept  # the classifier keeps its outputs
    t, s = teacher.features, student.features
    assert torch.equal(s[0].weight, t[0].weight[conv1])
    assert torch.equal(s[1].running_mean, t[1].running_mean[conv1])
    assert torch.equal(s[4].weight, t[4].weight[conv2][:, conv1])
    flat = (conv2[:, None] * 4 + torch.arange(4)).reshape(-1)  # the dense layer's inputs: 32 channels x 2 x 2
    assert torch.equal(student.classifier[1].weight, teacher.classifier[1].weight[hidden][:, flat])
    assert torch.equal(student.classifier[4].weight, teacher.classifier[4].weight[:, hidden])


def _gap(a, b, x):
    with torch.no_grad():
        return float(((a.eval()(x) - b.eval()(x)) ** 2).mean())


def test_reconstruct_refits_the_pruned_layers_to_the_teachers_outputs():
    torch.manual_seed(0)
    teacher = cnn((1, 8, 8), 4, channels=[16, 32], hidden=32).eval()
    calibration, unseen = [torch.randn(64, 1, 8, 8) for _ in range(8)], torch.randn(256, 1, 8, 8)
    pruned = prune(teacher, unseen[:2], ratio=0.7)
    refit = prune(teacher, unseen[:2], ratio=0.7, calibration=calibration)
    assert count_params(refit) == count_params(pruned)
    assert torch.equal(refit.features[0].weight, pruned.features[0].weight)  # its inputs lost nothing
    assert not torch.equal(refit.features[4].weight, pruned.features[4].weight)
    assert _gap(refit, teacher, unseen) < 0.5 * _gap(pruned, teacher, unseen)
    assert refit.training is pruned.training


def test_each_refit_layer_matches_the_teachers_same_layer_on_its_kept_channels():
    torch.manual_seed(0)
    teacher = cnn((1, 8, 8), 4, channels=[16, 32], hidden=32).eval()
    calibration, unseen = [torch.randn(64, 1, 8, 8) for _ in range(8)], torch.randn(256, 1, 8, 8)
    student = copy.deepcopy(teacher)
    kept = _prune(student, unseen[:2], student.classifier[-1], 0.7, "magnitude", 1, None)
    pruned = copy.deepcopy(student)
    assert reconstruct(teacher, student, kept, calibration) == ["features.4", "classifier.1", "classifier.4"]

    def error(model, name, channels, dim):
        wanted = _layer_io(teacher, name, unseen)[1]
        wanted = wanted if channels is None else wanted.index_select(dim, torch.tensor(channels))
        return float(((_layer_io(model, name, unseen)[1] - wanted) ** 2).mean())

    for name, dim in (("features.4", 1), ("classifier.1", 1), ("classifier.4", 1)):
        assert error(student, name, kept.get(name), dim) < 0.7 * error(pruned, name, kept.get(name), dim), name


def test_reconstruct_takes_a_residual_concat_depthwise_model_and_leaves_grouped_layers(user_net):
    torch.manual_seed(0)
    teacher = user_net().eval()
    calibration, unseen = [torch.randn(32, 1, 8, 8) for _ in range(8)], torch.randn(128, 1, 8, 8)
    pruned = prune(teacher, unseen[:2], ratio=0.6)
    refit = prune(teacher, unseen[:2], ratio=0.6, calibration=calibration)
    assert torch.equal(refit.depthwise.weight, pruned.depthwise.weight)  # grouped: left as pruned
    assert _gap(refit, teacher, unseen) < _gap(pruned, teacher, unseen)


def test_from_teacher_refits_only_inherited_weights_and_only_when_asked():
    from kdistill.data import ArrayDataset, Splits

    torch.manual_seed(0)
    teacher = cnn((1, 8, 8), 4, channels=[16, 32], hidden=32).eval()
    x = torch.randn(256, 1, 8, 8)
    sorted_labels = torch.arange(4).repeat_interleave(64)  # a split sorted by class
    data = Splits(ArrayDataset(x, sorted_labels, "t"), ArrayDataset(x[:32], sorted_labels[:32], "v"),
                  ArrayDataset(x[:32], sorted_labels[:32], "s"), list("abcd"))
    as_pruned = FromTeacher(prune=0.7).start(teacher, data)
    refit = FromTeacher(prune=0.7, reconstruct=True).start(teacher, data)
    assert _gap(refit, teacher, x) < 0.5 * _gap(as_pruned, teacher, x)
    torch.manual_seed(1)
    fresh = FromTeacher(prune=0.7, weights="fresh", reconstruct=True).start(teacher, data)
    torch.manual_seed(1)
    assert torch.equal(fresh.features[4].weight, FromTeacher(prune=0.7, weights="fresh").start(teacher, data)
                       .features[4].weight)
