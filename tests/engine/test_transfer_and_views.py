"""The engine with unlabelled transfer data and fixed views: who sees which samples, and that a
cached teacher serves each (sample, view) the output of exactly that view, computed once."""

import numpy as np
import pytest
import torch

from kdistill import CachedTeacher, distill, fit, models
from kdistill.data import Augment, split_parts
from kdistill.data.views import ViewDataset
from kdistill.methods import Method
from kdistill.teachers import TorchTeacher

K = 3


def _data(unlabeled=40, views=None, mixup=None):
    rng = np.random.default_rng(0)
    x = rng.random((90, 1, 8, 8)).astype(np.float32)
    y = np.arange(90) % K
    x[np.arange(90), 0, y, y] += 2  # learnable: a bright pixel per class
    extra = rng.random((unlabeled, 1, 8, 8)).astype(np.float32) if unlabeled else None
    data = split_parts({"all": (x, y)}, ["a", "b", "c"], seed=0, unlabeled=extra)
    if views:
        data.views = lambda base, labeled: ViewDataset(base, views, Augment(rotation=15, translate=0.1), mixup=mixup,
                                                       seed=4, labeled=labeled)
    return data


def _net(seed, channels=(4,)):
    torch.manual_seed(seed)
    return models.cnn((1, 8, 8), K, channels=list(channels), hidden=8, dropout=0.0)


class Probe(Method):
    """Records what the training steps see; adds nothing to the loss."""

    name = "probe"
    needs_teacher = False

    def __init__(self, check=None):
        super().__init__()
        self.seen, self.check = [], check

    def forward(self, step):
        if step.logits_s.requires_grad:
            self.seen.append((step.y.clone(), step.index.clone()))
            if self.check is not None:
                self.check(step)
        return step.logits_s.sum() * 0.0


def test_a_distilled_student_trains_on_the_unlabeled_inputs_and_the_student_alone_does_not():
    data = _data()
    probe = Probe()
    distill(_net(0, (8,)), _net(1), data, objective=[("ce", 0.5), ("kd", 0.5), probe], epochs=1, batch_size=16,
            quiet=True)
    labels = torch.cat([y for y, _ in probe.seen])
    assert len(labels) == len(data.train) + 40 and int((labels == -1).sum()) == 40
    alone = Probe()  # a plain student: no teacher, so no unlabelled inputs
    fit(_net(1), data, objective=[("ce", 1.0), alone], epochs=1, batch_size=16, quiet=True)
    assert sum(len(y) for y, _ in alone.seen) == len(data.train)


def test_labeled_share_fixes_the_labelled_samples_per_batch():
    data = _data(unlabeled=100)
    probe = Probe()
    distill(_net(0, (8,)), _net(1), data, objective=[("kd", 1.0), probe], epochs=1, batch_size=20,
            labeled_share=0.25, quiet=True)
    assert all(int((y >= 0).sum()) == 5 for y, _ in probe.seen)
    assert sum(int((y < 0).sum()) for y, _ in probe.seen) == 100  # one pass over the unlabelled inputs


@pytest.mark.parametrize("mixup", [None, 0.4])
def test_the_cached_teacher_serves_each_view_its_own_output_computed_once(tmp_path, mixup, counting_teacher):
    data = _data(views=4, mixup=mixup)
    teacher = _net(0, (8,))
    reference = TorchTeacher(teacher)

    def same_view(step):  # the output served is the teacher's on the very input the student sees
        torch.testing.assert_close(step.logits_t, reference.logits(step.x), rtol=0, atol=1e-5)

    counting = counting_teacher(teacher)
    cached = CachedTeacher(counting, cache_dir=tmp_path, dtype="float32")
    probes = [Probe(same_view), Probe(same_view)]
    for probe in probes:  # two students share the cache
        distill(cached, _net(1), data, objective=[("fm", 1.0), probe], epochs=3, batch_size=16, quiet=True)
    train = data.training(distilled=True)
    assert len(train) == 4 * (len(data.train) + 40)
    assert counting.samples == len(train) + len(data.val)  # every (sample, view) once, val once
    for probe in probes:
        served = torch.cat([idx for _, idx in probe.seen])
        assert len(served) == 3 * train.n  # each epoch serves every sample one of its views
        assert len(set(served.tolist())) > train.n  # and the views change between epochs


def test_views_with_mixup_give_label_terms_the_mixed_labels(tmp_path):
    data = _data(views=2, mixup=0.4)
    seen = []

    def record(step):
        seen.append(step.targets)

    fit(_net(1), data, objective=[("ce", 1.0), Probe(record)], epochs=1, batch_size=16, quiet=True)
    assert all(t is not None and t.shape[1] == K for t in seen)
    assert any(bool(((t > 0) & (t < 1)).any()) for t in seen)


def test_a_student_can_opt_out_of_the_unlabeled_inputs_and_of_the_views():
    data = _data(views=2)
    labelled_only = Probe()
    distill(_net(0, (8,)), _net(1), data, objective=[("kd", 1.0), labelled_only], epochs=1, batch_size=16,
            unlabeled=False, views=False, quiet=True)
    served = torch.cat([idx for _, idx in labelled_only.seen])
    assert sorted(served.tolist()) == list(range(len(data.train)))  # plain samples, no views, no pool
    viewed = Probe()
    distill(_net(0, (8,)), _net(1), data, objective=[("kd", 1.0), viewed], epochs=1, batch_size=16,
            unlabeled=False, quiet=True)
    assert len(torch.cat([idx for _, idx in viewed.seen])) == len(data.train)
    assert int(torch.cat([idx for _, idx in viewed.seen]).max()) >= len(data.train)  # flat indices of 2 views
