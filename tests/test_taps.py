import pytest
import torch
from torch import nn

from kdistill.models import cnn
from kdistill.taps import FeatureTaps, module_names


def model():
    torch.manual_seed(0)
    return cnn((1, 8, 8), 3, channels=(4, 8), hidden=8)


def test_taps_capture_the_named_outputs_and_remove_their_hooks():
    m = model().eval()
    x = torch.rand(5, 1, 8, 8)
    taps = FeatureTaps(m, ["features.3", "classifier.2"])
    with taps:
        logits = m(x)
    feats = taps.collect()
    assert list(feats) == ["features.3", "classifier.2"]
    assert torch.equal(feats["features.3"], m.features[:4](x))
    assert torch.equal(logits, m(x))  # the model's own output is unchanged
    assert all(not mod._forward_hooks for mod in m.modules())


def test_hooks_are_removed_even_when_the_forward_pass_fails():
    m = model()
    with pytest.raises(RuntimeError), FeatureTaps(m, ["features.0"]):
        m(torch.rand(2, 3, 8, 8))  # wrong number of channels
    assert all(not mod._forward_hooks for mod in m.modules())


def test_wrong_name_lists_valid_names_and_suggests_one():
    with pytest.raises(ValueError, match=r"no submodule named 'feature\.3' \(did you mean 'features\.3'\?\); "
                                         r"valid names: features, features\.0, features\.1"):
        FeatureTaps(model(), ["feature.3"])


def test_module_names_are_the_dotted_submodule_names():
    assert module_names(nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.ReLU())) == ["0", "0.0", "1"]


def test_collect_names_modules_that_did_not_run():
    m = model()
    taps = FeatureTaps(m, ["features.3"])
    with pytest.raises(RuntimeError, match=r"\['features\.3'\] did not run"):
        taps.collect()


def test_clone_gives_normal_tensors_from_inference_mode():
    m = model().eval()
    taps = FeatureTaps(m, ["features.3"])
    with taps, torch.inference_mode():
        m(torch.rand(2, 1, 8, 8))
    assert taps.outputs["features.3"].is_inference()
    assert not taps.collect(clone=True)["features.3"].is_inference()


class TupleOut(nn.Module):
    def forward(self, x):
        return x, x


def test_a_module_returning_a_tuple_is_refused_clearly():
    m = nn.Sequential(TupleOut())
    with pytest.raises(TypeError, match="module '0' \\(TupleOut\\) returned tuple"), FeatureTaps(m, ["0"]):
        m(torch.zeros(1))


def test_taps_cannot_be_entered_twice():
    taps = FeatureTaps(model(), ["features.0"])
    with taps, pytest.raises(RuntimeError, match="already active"), taps:
        pass
