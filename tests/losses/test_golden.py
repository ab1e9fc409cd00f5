"""Every loss against an independent NumPy implementation written from the paper's formula."""

import numpy as np
import pytest
import torch

from kdistill import losses as L

RNG = np.random.default_rng(0)


def t(a):
    return torch.tensor(a, dtype=torch.float32)


def softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def kl(p, q):
    return float(np.sum(p * np.log(p / q)) / p.shape[0])


# ---------------------------------------------------------------------------------------- DKD

def np_dkd(zs, zt, y, alpha, beta, T):
    ps, pt = softmax(zs / T), softmax(zt / T)
    rows = np.arange(len(y))
    bs = np.stack([ps[rows, y], 1 - ps[rows, y]], 1)
    bt = np.stack([pt[rows, y], 1 - pt[rows, y]], 1)
    others = np.ones_like(ps, dtype=bool)
    others[rows, y] = False
    hs = ps[others].reshape(len(y), -1)
    ht = pt[others].reshape(len(y), -1)
    hs, ht = hs / hs.sum(1, keepdims=True), ht / ht.sum(1, keepdims=True)
    return T * T * (alpha * kl(bt, bs) + beta * kl(ht, hs))


def test_dkd_golden():
    zs, zt = RNG.normal(size=(6, 5)) * 2, RNG.normal(size=(6, 5)) * 2
    y = RNG.integers(0, 5, 6)
    got = L.dkd_loss(t(zs), t(zt), torch.tensor(y), alpha=0.7, beta=3.0, temperature=2.0)
    assert float(got) == pytest.approx(np_dkd(zs, zt, y, 0.7, 3.0, 2.0), rel=1e-4)


def test_dkd_identity_tckd_plus_weighted_nckd_is_kd():
    zs, zt = RNG.normal(size=(5, 7)) * 3, RNG.normal(size=(5, 7)) * 3
    y = RNG.integers(0, 7, 5)
    T = 3.0
    for i in range(5):  # the identity holds per sample
        s, te, yi = t(zs[i:i + 1]), t(zt[i:i + 1]), torch.tensor(y[i:i + 1])
        tckd = L.dkd_loss(s, te, yi, alpha=1.0, beta=0.0, temperature=T)
        nckd = L.dkd_loss(s, te, yi, alpha=0.0, beta=1.0, temperature=T)
        p_target = torch.softmax(te / T, dim=1)[0, y[i]]
        assert float(tckd + (1 - p_target) * nckd) == pytest.approx(float(L.kd_loss(s, te, T)), rel=1e-4)


def test_dkd_finite_on_binary_task_and_confident_teacher():
    y = torch.tensor([0, 1, 0, 1])
    student = torch.tensor([[3.0, -3.0], [0.0, 0.0], [-80.0, 80.0], [1.0, 2.0]], requires_grad=True)
    teacher = torch.tensor([[500.0, -500.0], [-300.0, 300.0], [400.0, -400.0], [0.0, 1e4]])
    for T in (1.0, 4.0):
        loss = L.dkd_loss(student, teacher, y, temperature=T)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
        student.grad = None
    # 10 classes, a teacher with all its mass on the label: NCKD's teacher side underflows.
    zt = torch.full((3, 10), -1e3)
    zt[torch.arange(3), torch.tensor([1, 2, 3])] = 1e3
    zs = torch.randn(3, 10, requires_grad=True)
    loss = L.dkd_loss(zs, zt, torch.tensor([1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zs.grad).all()


# ---------------------------------------------------------------------------------------- DIST

def np_pearson_rows(a, b):
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_dist_golden():
    zs, zt = RNG.normal(size=(8, 5)), RNG.normal(size=(8, 5))
    T, beta, gamma = 2.0, 1.5, 0.5
    ys, yt = softmax(zs / T), softmax(zt / T)
    inter = 1 - np_pearson_rows(ys, yt).mean()
    intra = 1 - np_pearson_rows(ys.T, yt.T).mean()
    expected = T * T * (beta * inter + gamma * intra)
    assert float(L.dist_loss(t(zs), t(zt), beta, gamma, T)) == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------------------------- FitNet, AT

def test_fitnet_golden():
    fs, ft = RNG.normal(size=(3, 4, 5, 5)), RNG.normal(size=(3, 4, 5, 5))
    assert float(L.fitnet_loss(t(fs), t(ft))) == pytest.approx(float(np.mean((fs - ft) ** 2)), rel=1e-5)


def np_attention(f, p):
    q = (np.abs(f) ** p).sum(1).reshape(len(f), -1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_at_golden_and_scale_invariant():
    fs, ft = RNG.normal(size=(4, 3, 6, 6)), RNG.normal(size=(4, 7, 6, 6))
    for p in (2, 3):
        expected = np.linalg.norm(np_attention(fs, p) - np_attention(ft, p), axis=1).mean()
        assert float(L.at_loss(t(fs), t(ft), p=p)) == pytest.approx(expected, rel=1e-4)
    scaled = L.at_loss(t(fs) * 7.0, t(ft) * 0.01)
    assert float(scaled) == pytest.approx(float(L.at_loss(t(fs), t(ft))), rel=1e-4)


def avg_pool2(f):
    b, c, h, w = f.shape
    return f.reshape(b, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def test_at_pools_the_larger_attention_map():
    fs, ft = RNG.normal(size=(2, 3, 8, 8)), RNG.normal(size=(2, 5, 4, 4))
    q_s = (fs ** 2).sum(1, keepdims=True)
    q_s = avg_pool2(q_s).reshape(2, -1)
    q_s /= np.linalg.norm(q_s, axis=1, keepdims=True)
    expected = np.linalg.norm(q_s - np_attention(ft, 2), axis=1).mean()
    assert float(L.at_loss(t(fs), t(ft))) == pytest.approx(expected, rel=1e-4)


# ----------------------------------------------------------------------------------------- FSP

def np_fsp(a, b):
    if a.shape[-1] > b.shape[-1]:
        a = avg_pool2(a)
    h, w = a.shape[-2:]
    out = np.zeros((a.shape[0], a.shape[1], b.shape[1]))
    for n in range(a.shape[0]):
        for i in range(a.shape[1]):
            for j in range(b.shape[1]):
                out[n, i, j] = (a[n, i] * b[n, j]).sum() / (h * w)
    return out


def test_fsp_golden():
    a_s, b_s = RNG.normal(size=(2, 3, 8, 8)), RNG.normal(size=(2, 4, 4, 4))
    a_t, b_t = RNG.normal(size=(2, 3, 8, 8)), RNG.normal(size=(2, 4, 4, 4))
    assert L.fsp_matrix(t(a_s), t(b_s)).numpy() == pytest.approx(np_fsp(a_s, b_s), rel=1e-4, abs=1e-5)
    pairs = [(a_s, b_s, a_t, b_t), (b_s, b_s, b_t, b_t)]
    expected = sum(((np_fsp(a, b) - np_fsp(c, d)) ** 2).sum(axis=(1, 2)).mean() for a, b, c, d in pairs)
    got = L.fsp_loss([(t(a), t(b)) for a, b, _, _ in pairs], [(t(c), t(d)) for _, _, c, d in pairs])
    assert float(got) == pytest.approx(expected, rel=1e-4)


# ----------------------------------------------------------------------------------------- RKD

def huber(a, b):
    d = np.abs(a - b)
    return np.where(d < 1, 0.5 * d * d, d - 0.5)


def np_rkd(es, et, wd, wa):
    n = len(es)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    triplets = [(i, j, k) for i in range(n) for j in range(n) for k in range(n) if len({i, j, k}) == 3]

    def dist(e):
        d = np.array([np.linalg.norm(e[i] - e[j]) for i, j in pairs])
        return d / d.mean()

    def angle(e):
        out = []
        for i, j, k in triplets:
            u, v = e[i] - e[j], e[k] - e[j]
            out.append(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
        return np.array(out)

    return wd * huber(dist(es), dist(et)).mean() + wa * huber(angle(es), angle(et)).mean()


def test_rkd_golden():
    es, et = RNG.normal(size=(6, 4)) * 3, RNG.normal(size=(6, 9))
    for wd, wa in ((25.0, 50.0), (1.0, 0.0), (0.0, 1.0)):
        got = L.rkd_loss(t(es), t(et), distance_weight=wd, angle_weight=wa)
        assert float(got) == pytest.approx(np_rkd(es, et, wd, wa), rel=1e-4)


def test_rkd_distance_term_is_scale_invariant():
    es, et = t(RNG.normal(size=(8, 5))), t(RNG.normal(size=(8, 3)))
    base = L.rkd_loss(es, et, distance_weight=1.0, angle_weight=0.0)
    assert float(base) > 0
    for a, b in ((10.0, 1.0), (1.0, 0.05), (3.0, 300.0)):
        assert float(L.rkd_loss(es * a, et * b, 1.0, 0.0)) == pytest.approx(float(base), rel=1e-4)


# ------------------------------------------------------------------------------------- SP, PKT

def test_sp_golden():
    fs, ft = RNG.normal(size=(5, 2, 3, 3)), RNG.normal(size=(5, 6))
    qs, qt = fs.reshape(5, -1), ft
    gs, gt = qs @ qs.T, qt @ qt.T
    gs /= np.linalg.norm(gs, axis=1, keepdims=True)
    gt /= np.linalg.norm(gt, axis=1, keepdims=True)
    assert float(L.sp_loss(t(fs), t(ft))) == pytest.approx(((gt - gs) ** 2).sum() / 25, rel=1e-4)


def np_pkt_conditional(e):
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    k = (e @ e.T + 1) / 2
    np.fill_diagonal(k, 0.0)
    return k / k.sum(1, keepdims=True)


def test_pkt_golden():
    es, et = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 8))
    ps, pt = np_pkt_conditional(es), np_pkt_conditional(et)
    off = ~np.eye(6, dtype=bool)
    expected = (pt[off] * np.log(pt[off] / ps[off])).sum() / 6
    assert float(L.pkt_loss(t(es), t(et))) == pytest.approx(expected, rel=1e-4)


# -------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("call, message", [
    (lambda: L.dkd_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long)), "same shape"),
    (lambda: L.dkd_loss(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)), "at least 2 classes"),
    (lambda: L.dist_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0), "temperature must be"),
    (lambda: L.fitnet_loss(torch.zeros(2, 3), torch.zeros(2, 4)), "pass the student's through a connector"),
    (lambda: L.at_loss(torch.zeros(2, 3), torch.zeros(2, 3)), r"\(batch, channels, height, width\)"),
    (lambda: L.rkd_loss(torch.zeros(2, 3), torch.zeros(2, 3)), "at least 3 samples"),
    (lambda: L.sp_loss(torch.zeros(2, 3), torch.zeros(3, 3)), "same batch size"),
    (lambda: L.fsp_loss([], []), "non-zero number"),
])
def test_bad_inputs_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------- logit standardization

def np_zscore(z):
    """Sun et al. (CVPR 2024), Algorithm 1: (z - mean) / sigma, sigma over the C classes (1/C)."""
    centered = z - z.mean(1, keepdims=True)
    return centered / np.sqrt((centered ** 2).mean(1, keepdims=True))


def np_kd(zs, zt, T):
    return T * T * kl(softmax(zt / T), softmax(zs / T))


def step_of(zs, zt, y):
    from kdistill.methods import Step

    return Step(x=torch.zeros(len(y), 1), y=torch.tensor(y), index=torch.arange(len(y)), logits_s=t(zs), logits_t=t(zt))


def test_standardized_logits_golden():
    z = RNG.normal(size=(5, 7)) * 4 + 3
    got = L.standardize_logits(t(z)).numpy()
    assert got == pytest.approx(np_zscore(z), rel=1e-4, abs=1e-5)
    assert got.mean(1) == pytest.approx(np.zeros(5), abs=1e-5) and got.std(1) == pytest.approx(np.ones(5), rel=1e-4)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_standardized_kd_golden(T):
    """The paper's loss: KD at temperature T (T² scaled) on each side's z-scored logits."""
    from kdistill import methods

    zs, zt = RNG.normal(size=(6, 5)) * 3, RNG.normal(size=(6, 5)) * 9 + 2  # the teacher's range far wider
    expected = np_kd(np_zscore(zs), np_zscore(zt), T)
    got = methods.build("kd", temperature=T, standardize=True)(step_of(zs, zt, [0] * 6))
    assert float(got) == pytest.approx(expected, rel=1e-4)
    plain = methods.build("kd", temperature=T)(step_of(zs, zt, [0] * 6))
    assert float(plain) == pytest.approx(np_kd(zs, zt, T), rel=1e-4)  # off by default
    assert abs(float(plain) - expected) > 1e-3


def test_standardization_ignores_each_side_s_scale_and_shift():
    """Only the logits' relations count: a student whose logits are the teacher's, scaled and shifted, has 0 loss."""
    from kdistill import methods

    zt = RNG.normal(size=(4, 6))
    for name, options in (("kd", {}), ("dist", {}), ("dkd", {})):
        method = methods.build(name, standardize=True, **options)
        loss = method(step_of(zt * 0.2 - 5, zt, [0, 1, 2, 3]))
        assert float(loss) == pytest.approx(0.0, abs=1e-5), name
        assert float(methods.build(name, **options)(step_of(zt * 0.2 - 5, zt, [0, 1, 2, 3]))) > 1e-3, name


def test_standardized_dkd_and_dist_golden():
    from kdistill import methods

    zs, zt = RNG.normal(size=(6, 5)) * 2, RNG.normal(size=(6, 5)) * 5
    y = RNG.integers(0, 5, 6)
    got = methods.build("dkd", alpha=0.7, beta=3.0, temperature=2.0, standardize=True)(step_of(zs, zt, y))
    assert float(got) == pytest.approx(np_dkd(np_zscore(zs), np_zscore(zt), y, 0.7, 3.0, 2.0), rel=1e-4)
    ys, yt = softmax(np_zscore(zs) / 2.0), softmax(np_zscore(zt) / 2.0)
    inter, intra = 1 - np_pearson_rows(ys, yt).mean(), 1 - np_pearson_rows(ys.T, yt.T).mean()
    got = methods.build("dist", beta=1.5, gamma=0.5, temperature=2.0, standardize=True)(step_of(zs, zt, y))
    assert float(got) == pytest.approx(4.0 * (1.5 * inter + 0.5 * intra), rel=1e-4)


def test_standardization_of_equal_logits_stays_finite():
    z = torch.tensor([[2.0, 2.0, 2.0], [1.0, -1.0, 0.0]], requires_grad=True)
    out = L.standardize_logits(z)
    assert torch.isfinite(out).all() and out[0].abs().max() == 0
    L.kd_loss(out, L.standardize_logits(torch.randn(2, 3)), 2.0).backward()
    assert torch.isfinite(z.grad).all()


def test_standardize_must_be_a_flag():
    from kdistill import methods

    with pytest.raises(ValueError, match="standardize must be true or false, got 'yes'"):
        methods.build("kd", standardize="yes")
