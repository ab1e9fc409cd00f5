import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from kdistill.data import ArrayDataset
from kdistill.metrics import classification_metrics, evaluate, fidelity, latency_ms, predict_logits
from kdistill.models import mlp


def test_classification_metrics_match_sklearn():
    torch.manual_seed(0)
    logits, y = torch.randn(50, 4), torch.randint(0, 4, (50,))
    m = classification_metrics(logits, y, list("abcd"))
    pred = logits.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert sum(c["support"] for c in m["per_class"].values()) == 50
    assert sum(map(sum, m["confusion"])) == 50


def test_fidelity():
    t = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    assert fidelity(t, t) == {"agreement": 1.0, "kl_to_teacher": pytest.approx(0.0, abs=1e-7)}
    s = torch.tensor([[0.0, 2.0], [0.0, 2.0], [1.0, 0.0]])
    f = fidelity(s, t)
    assert f["agreement"] == pytest.approx(2 / 3) and f["kl_to_teacher"] > 0


def test_evaluate_with_teacher_and_order():
    ds = ArrayDataset(torch.randn(20, 3), torch.arange(20) % 2)
    m = mlp(3, 2)
    logits, labels = predict_logits(m, ds, batch_size=7)
    assert torch.equal(labels, ds.y) and torch.allclose(logits, m(ds.x), atol=1e-6)
    r = evaluate(m, ds, ["a", "b"], teacher=m)
    assert r["agreement"] == 1.0


def test_latency_is_positive():
    assert latency_ms(mlp(3, 2), (3,), repeats=3, warmup=1) > 0


def test_calibration_error_matches_numpy():
    from kdistill.metrics import calibration

    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(0, 2, (500, 4)), dtype=torch.float32)
    labels = torch.tensor(rng.integers(0, 4, 500))
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    conf, pred = p.max(1), p.argmax(1)
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum((bins == b).mean() * abs((pred == labels.numpy())[bins == b].mean() - conf[bins == b].mean())
              for b in range(15) if (bins == b).any())
    out = calibration(logits, labels)
    assert out["ece"] == pytest.approx(ece, rel=1e-5) and sum(b["count"] for b in out["bins"]) == 500
    perfect = calibration(torch.tensor([[10.0, -10.0]] * 4), torch.tensor([0, 0, 0, 0]))
    assert perfect["ece"] == pytest.approx(0.0, abs=1e-6)
