"""The last step: every model of a run exports in one command, a scikit-learn student is saved
and exported as the estimator one deploys, and kdistill.load hands back the student to deploy."""

import json

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

import kdistill
from kdistill.cli import main

DEPLOYNETS = """from kdistill.models import mlp


def big(input_shape, num_classes, width=32):
    return mlp(input_shape, num_classes, hidden=(width,))


def small(input_shape, num_classes, width=8):
    return mlp(input_shape, num_classes, hidden=(width,))
"""


@pytest.fixture
def factory_run(tmp_path, tiny, write_experiment, monkeypatch):
    """A run whose teacher and students come from two factories of the user's own module."""
    (tmp_path / "deploynets.py").write_text(DEPLOYNETS)
    monkeypatch.chdir(tmp_path)
    tiny["teacher"] = {"model": "deploynets:big", "options": {"width": 16}}
    tiny["student"] = {"model": "deploynets:small", "options": {"width": 4}}
    tiny["train"]["epochs"] = 1
    path = write_experiment(tiny)
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    return path, tmp_path / "run"


def test_a_run_of_two_user_factories_exports_every_model_with_one_command(factory_run, tmp_path, capsys):
    path, run = factory_run
    capsys.readouterr()
    assert main(["export", str(run)]) == 2  # nothing chooses code on its own: the factories must be allowed
    err = capsys.readouterr().err
    assert "3 of the 3 model files" in err and "teacher-seed0.safetensors" in err
    assert "--allow deploynets:big" in err and "--allow deploynets:small" in err and "--skip-unexportable" in err
    out = tmp_path / "not" / "yet"  # --out makes the folder
    assert main(["export", str(run), "--experiment", str(path), "--out", str(out)]) == 0
    stems = sorted(p.stem for p in out.glob("*.onnx"))
    assert stems == ["alone-seed0", "kd-seed0", "teacher-seed0"]
    reports = json.loads((out / "export.json").read_text())
    assert len(reports) == 3 and all(r["parity_max_abs_diff"] < 1e-3 and "accuracy" in r for r in reports)
    both = ["--allow", "deploynets:big", "--allow", "deploynets:small"]
    assert main(["export", str(run), *both, "--out", str(out)]) == 0
    assert main(["export", str(run), "--allow", "deploynets:big", "--skip-unexportable", "--out",
                 str(tmp_path / "t")]) == 0
    assert sorted(p.stem for p in (tmp_path / "t").glob("*.onnx")) == ["teacher-seed0"]
    assert main(["export", str(run), "--allow", "os:system"]) == 2
    assert "--allow names 'os.system'" in capsys.readouterr().err


def test_a_distilled_tree_is_saved_and_exported_as_the_tree(blobs, tmp_path):
    results = kdistill.compare(RandomForestClassifier(n_estimators=5, random_state=0),
                               {"tree": (DecisionTreeClassifier(max_depth=3), {"mode": "hard"})}, blobs,
                               out=tmp_path / "run", quiet=True, teacher_folds=0, synthetic=None)
    run = tmp_path / "run"
    tree = kdistill.load_sklearn(run / "weights" / "tree-seed0.skops")
    assert type(tree) is DecisionTreeClassifier  # the estimator one deploys, not its wrapper
    meta = json.loads((run / "weights" / "tree-seed0.json").read_text())
    assert meta["estimator"] == "sklearn.tree._classes.DecisionTreeClassifier"
    assert meta["distilled"] is True and meta["settings"]["mode"] == "hard" and meta["classes"] == ["a", "b", "c"]
    x = np.concatenate([blobs.test.x.numpy(), blobs.train.x.numpy()]).astype(np.float32)
    sess = kdistill.export.session(run / "onnx" / "tree-seed0.onnx")
    assert (sess.run(["label"], {"input": x})[0] == tree.predict(x)).all()
    np.testing.assert_allclose(sess.run(["probabilities"], {"input": x})[0], tree.predict_proba(x), atol=1e-5)
    row = {m["name"]: m for m in results["models"]}
    assert row["teacher"]["speedup"] == pytest.approx(1.0) and row["tree"]["speedup"] is not None
    reports = kdistill.export.export_weights(run, tmp_path / "again")  # kdistill export of a skops-only run
    assert sorted(r["weights"].split("/")[-1] for r in reports) == ["teacher-seed0.skops", "tree-alone-seed0.skops",
                                                                    "tree-seed0.skops"]
    assert all(r["parity_max_abs_diff"] <= 1e-4 for r in reports)
    assert "accuracy" not in reports[0]  # compare's data lives in Python: no split to measure on


def test_a_student_given_as_an_importable_function_is_recorded_by_name(tmp_path, blobs, monkeypatch):
    (tmp_path / "deploynets.py").write_text(DEPLOYNETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import deploynets

    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Linear(5, 3))  # a module of the user's own: no spec to record
    kdistill.compare(teacher, {"s": deploynets.small, "zoo": kdistill.models.mlp(5, 3, hidden=(6,))}, blobs,
                     out=tmp_path / "run", quiet=True, epochs=1)
    info = kdistill.weights.read_info(tmp_path / "run" / "weights" / "s-seed0.safetensors")
    assert info["arch"] == {"model": "deploynets:small", "options": {}} and info["distilled"] is True
    zoo = kdistill.weights.read_info(tmp_path / "run" / "weights" / "zoo-seed0.safetensors")
    assert zoo["arch"] == {"model": "mlp", "options": {"hidden": [6], "dropout": 0.0}}
    with pytest.raises(ValueError, match=r"teacher-seed0.safetensors: .*no kdistill architecture metadata"):
        kdistill.export.export_weights(tmp_path / "run", allow=["deploynets:small"])
    reports = kdistill.export.export_weights(tmp_path / "run", allow=["deploynets:small"], skip=True)
    exported = sorted(r["weights"].split("/")[-1] for r in reports)
    assert exported == ["s-alone-seed0.safetensors", "s-seed0.safetensors", "zoo-alone-seed0.safetensors",
                        "zoo-seed0.safetensors"]


@pytest.fixture
def small_run(blobs, tmp_path):
    torch.manual_seed(0)
    results = kdistill.compare(kdistill.models.mlp(5, 3, hidden=(16,)), {"s": kdistill.models.mlp(5, 3, hidden=(4,))},
                               blobs, out=tmp_path / "run", quiet=True, train_teacher=True, epochs=2)
    return results, tmp_path / "run"


def test_load_returns_the_recommended_student_ready_to_predict(small_run, blobs):
    results, run = small_run
    chosen = results["recommendation"]["model"]
    assert chosen in ("s", "s alone")
    net = kdistill.load(run)
    assert isinstance(net, torch.nn.Module) and not net.training
    x = blobs.test.x[:16].float()
    with torch.no_grad():
        logits = net(x).numpy()
    own = kdistill.load(run, chosen)
    with torch.no_grad():
        np.testing.assert_allclose(own(x).numpy(), logits)
    (onnx_logits,) = kdistill.load_onnx(run).run(None, {"input": x.numpy()})
    np.testing.assert_allclose(onnx_logits, logits, atol=1e-4)
    teacher = kdistill.load(run, "teacher")  # any model of the run, by name
    assert sum(p.numel() for p in teacher.parameters()) > sum(p.numel() for p in net.parameters())
    with pytest.raises(ValueError, match=r"model 'nope' is not in the run .*its models are \['teacher'"):
        kdistill.load(run, "nope")
    with pytest.raises(ValueError, match="no run folder at"):
        kdistill.load(run.parent / "missing")
    with pytest.raises(ValueError, match="seed 5: the run .* trained seeds \\[0\\]"):
        kdistill.load_onnx(run, seed=5)


def test_the_run_says_what_to_deploy(small_run):
    results, run = small_run
    card = (run / "model_card.md").read_text()
    rec = results["recommendation"]
    assert rec["sentence"].startswith(f"deploy {rec['model']}: ") and "onnx/" in rec["sentence"]
    assert "× fewer parameters" in rec["sentence"] and "points vs the teacher" in rec["sentence"]
    for needle in ("kdistill 0.1.0", "torch ", "scikit-learn ", "onnxruntime ", "python ", "blobs: 156 train, 36 val, "
                   "48 test", "| command |", "| date |", "| wall time |", rec["sentence"]):
        assert needle in card, needle
    assert json.loads((run / "results.json").read_text())["run"]["wall_seconds"] > 0
    report = (run / "report.md").read_text()
    assert report.index("## What to deploy") < report.index("## Comparison on the test split")


def _results(significant: bool, delta: float = 0.02, seeds: int = 3) -> dict:
    models = [{"name": "teacher", "kind": "torch", "params": 10_700, "size_mb": 0.04, "accuracy": 0.95,
               "speedup": 1.0, "latency_ms": 0.1},
              {"name": "alone", "kind": "torch", "params": 100, "size_mb": 0.0004, "accuracy": 0.92, "speedup": 12.0},
              {"name": "kd T6", "kind": "torch", "params": 100, "size_mb": 0.0004, "accuracy": 0.92 + delta,
               "speedup": 12.0}]
    return {"title": "t", "dataset": "d", "seeds": list(range(seeds)), "split_sizes": [10, 5, 5], "models": models,
            "comparisons": [{"model": "kd T6", "baseline": "alone", "accuracy_delta": delta, "seeds": seeds,
                             "significant": significant if seeds > 1 else None}]}


def test_the_recommendation_is_honest():
    from kdistill.report.card import recommend

    won = recommend(_results(True))
    assert won["model"] == "kd T6" and won["distilled"]
    assert won["sentence"] == ("deploy kd T6: 107× fewer parameters, 12× faster (ONNX, batch 64), −1.0 points vs "
                               "the teacher; +2.0 points vs alone, beyond the seed noise over 3 seeds (ONNX: "
                               "onnx/kd-t6-seed0.onnx).")
    noise = recommend(_results(False))
    assert noise["model"] == "alone" and not noise["distilled"]
    assert "no distilled student beat its student alone beyond the seed noise (best: kd T6, +2.0 points over 3" \
           in noise["sentence"]
    one = recommend(_results(None, seeds=1))
    assert one["model"] == "alone" and "on one seed: run 3 seeds or more" in one["sentence"]
