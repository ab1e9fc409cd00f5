"""Unlabelled transfer data and fixed views: what the training set of each kind of model holds,
how batches mix labelled and unlabelled samples, and that views are fixed, seeded and mixed
with their labels."""

import numpy as np
import pytest
import torch

from kdistill.data import ArrayDataset, Augment, Splits, ViewDataset, epoch_plan, split_parts
from kdistill.data.batching import mixed_batches
from kdistill.methods import Step, build


def _parts(n=60, k=3, shape=(1, 6, 6), seed=0):
    rng = np.random.default_rng(seed)
    return {"all": (rng.random((n, *shape)).astype(np.float32), np.arange(n) % k)}


def test_unlabeled_rest_keeps_the_dropped_training_inputs_without_their_labels():
    parts = _parts(100)
    kept = split_parts(parts, ["a", "b", "c"], seed=0, val_size=0.2, test_size=0.2, train_fraction=0.25,
                       unlabeled_rest=True)
    whole = split_parts(parts, ["a", "b", "c"], seed=0, val_size=0.2, test_size=0.2)
    assert len(kept.train) + len(kept.unlabeled) == len(whole.train)
    assert bool((kept.unlabeled.y == -1).all())
    rows = {tuple(r) for r in torch.cat([kept.train.x, kept.unlabeled.x]).flatten(1).tolist()}
    assert rows == {tuple(r) for r in whole.train.x.flatten(1).tolist()}  # the same inputs, none from val/test
    assert kept.info["unlabeled"] == len(kept.unlabeled)
    plain = split_parts(parts, ["a", "b", "c"], seed=0, val_size=0.2, test_size=0.2, train_fraction=0.25)
    assert plain.unlabeled is None and torch.equal(plain.train.x, kept.train.x)


def test_only_a_distilled_model_trains_on_the_unlabeled_inputs():
    extra = np.random.default_rng(1).random((30, 1, 6, 6)).astype(np.float32)
    data = split_parts(_parts(), ["a", "b", "c"], seed=0, unlabeled=extra)
    alone, distilled = data.training(distilled=False), data.training(distilled=True)
    assert alone is data.train
    assert len(distilled) == len(data.train) + 30 and distilled.labeled == len(data.train)
    n = len(data.train)
    assert torch.equal(distilled.y[:n], data.train.y) and bool((distilled.y[n:] == -1).all())
    assert data.training(distilled=True) is distilled  # built once: every student reads the same cache entry


def test_unlabeled_inputs_must_be_read_like_the_labelled_ones():
    with pytest.raises(ValueError, match=r"unlabeled inputs of 'data' have shape \(1, 5, 5\) but the labelled ones"):
        split_parts(_parts(), ["a", "b", "c"], unlabeled=np.zeros((4, 1, 5, 5), np.float32))


def test_mixed_batches_hold_the_labelled_share_and_cover_the_unlabeled_once():
    plan = mixed_batches(labeled=10, n=110, batch_size=20, share=0.25, seed=3)
    assert all(int((b < 10).sum()) == 5 for b in plan)
    unlabeled = torch.cat([b[b >= 10] for b in plan])
    assert sorted(unlabeled.tolist()) == list(range(10, 110))
    assert len(plan) == 7  # ceil(100 / 15) batches of 15 unlabelled samples
    labelled = torch.cat([b[b < 10] for b in plan])
    assert sorted(labelled[:10].tolist()) == list(range(10))  # each labelled sample once before any repeats


def test_without_a_share_labelled_and_unlabelled_are_shuffled_together():
    extra = np.zeros((30, 1, 6, 6), np.float32)
    data = split_parts(_parts(), ["a", "b", "c"], seed=0, unlabeled=extra)
    ds = data.training(distilled=True)
    plan = epoch_plan(ds, 16, True, seed=0)
    assert sorted(torch.cat(plan).tolist()) == list(range(len(ds)))


def _views(n=8, k=4, **options):
    g = torch.Generator().manual_seed(0)
    base = ArrayDataset(torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 2)
    return ViewDataset(base, k, Augment(rotation=20, translate=0.1, horizontal_flip=True), seed=5, **options)


def test_views_are_fixed_by_the_seed_and_one_is_served_per_sample_and_epoch():
    views = _views()
    flat = torch.arange(len(views))
    x1, y1, _ = views.fetch(flat)
    x2, _, _ = _views().fetch(flat.flip(0))
    assert torch.equal(x1, x2.flip(0))  # the same view, whatever the batch it is read in
    assert not torch.equal(x1[0], x1[1])  # views of one sample differ
    assert torch.equal(y1, views.base.y.repeat_interleave(4))
    plan = epoch_plan(views, 3, True, seed=11)
    served = torch.cat(plan)
    assert sorted((served // 4).tolist()) == list(range(8))  # every sample once per epoch
    assert not torch.equal(served, torch.cat(epoch_plan(views, 3, True, seed=12)))  # another epoch, other views
    assert _views().fingerprint() == views.fingerprint() != ViewDataset(views.base, 4, seed=6).fingerprint()


def test_mixup_views_mix_labels_in_the_same_proportion_and_labelled_with_labelled():
    g = torch.Generator().manual_seed(0)
    base = ArrayDataset(torch.rand(12, 1, 4, 4, generator=g), torch.cat([torch.arange(8) % 3, -torch.ones(4)]))
    views = ViewDataset(base, 3, mixup=0.4, seed=1, labeled=8)
    flat = torch.arange(len(views))
    x, y, _ = views.fetch(flat)
    lam, partner = views.lam, views.partner
    sample = flat // 3
    assert bool((partner[sample < 8] < 8).all())  # a labelled sample mixes with a labelled partner
    expected = lam[:, None, None, None] * base.x[sample] + (1 - lam[:, None, None, None]) * base.x[partner]
    torch.testing.assert_close(x, expected)
    targets = views.targets(flat, 3)
    torch.testing.assert_close(targets[sample < 8].sum(1), torch.ones(int((sample < 8).sum())))
    assert bool((targets[sample >= 8] == 0).all()) and bool((y[sample >= 8] == -1).all())
    i = 0
    want = torch.zeros(3)
    want[base.y[sample[i]]] += lam[i]
    want[base.y[partner[i]]] += 1 - lam[i]
    torch.testing.assert_close(targets[i], want)


def test_cutmix_pastes_a_box_whose_area_is_the_partner_weight():
    dark, bright = torch.zeros(4, 1, 10, 10), torch.ones(4, 1, 10, 10)
    base = ArrayDataset(torch.cat([dark, bright]), torch.tensor([0] * 4 + [1] * 4))
    views = ViewDataset(base, 2, cutmix=1.0, seed=2)
    flat = torch.arange(len(views))
    x, _, _ = views.fetch(flat)
    targets = views.targets(flat, 2)
    partner_share = (x == base.x[views.partner[flat]]).float().flatten(1).mean(1)
    different = base.y[flat // 2] != base.y[views.partner[flat]]
    torch.testing.assert_close(targets[different, base.y[views.partner[flat]][different]], partner_share[different])


def test_bad_view_options_are_named():
    base = ArrayDataset(torch.zeros(4, 1, 4, 4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="views must be an integer >= 1, got 0"):
        ViewDataset(base, 0)
    with pytest.raises(ValueError, match="give mixup or cutmix, not both"):
        ViewDataset(base, 2, mixup=0.2, cutmix=0.2)


def test_label_terms_see_only_labelled_samples_and_mixed_labels():
    logits = torch.randn(6, 3, requires_grad=True)
    y = torch.tensor([0, 2, -1, 1, -1, 0])
    step = Step(x=torch.zeros(6), y=y, index=torch.arange(6), logits_s=logits)
    ce = build("ce")(step)
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits[y >= 0], y[y >= 0]))
    none = Step(x=torch.zeros(2), y=torch.tensor([-1, -1]), index=torch.arange(2), logits_s=logits[:2])
    value = build("ce")(none)
    assert value.item() == 0 and value.requires_grad
    targets = torch.tensor([[0.7, 0.3, 0.0]] * 6) * (y >= 0)[:, None]
    mixed = build("ce")(Step(x=torch.zeros(6), y=y, index=torch.arange(6), logits_s=logits, targets=targets))
    log_p = torch.log_softmax(logits[y >= 0], 1)
    torch.testing.assert_close(mixed, -(0.7 * log_p[:, 0] + 0.3 * log_p[:, 1]).mean())


def test_dkd_splits_an_unlabelled_sample_at_the_teachers_class():
    from kdistill.losses import dkd_loss

    logits_s, logits_t = torch.randn(4, 5), torch.randn(4, 5)
    y = torch.tensor([1, -1, 3, -1])
    step = Step(x=torch.zeros(4), y=y, index=torch.arange(4), logits_s=logits_s, logits_t=logits_t)
    target = torch.where(y >= 0, y, logits_t.argmax(1))
    torch.testing.assert_close(build("dkd")(step), dkd_loss(logits_s, logits_t, target))


def test_splits_refuse_an_empty_unlabeled_set():
    train = ArrayDataset(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="the unlabeled data of 'data' is empty"):
        Splits(train, None, None, ["a", "b"], unlabeled=ArrayDataset(torch.zeros(0, 2), torch.zeros(0)))
