"""SCM against a direct per-equation implementation (float64), small grids."""

import itertools

import pytest
import torch

from scm_dist.models import (
    SCM_IMPLS,
    SpatialCalibration,
    grid_laplacian,
    minmax,
    newton_schulz_apply_transpose,
    newton_schulz_inverse,
)

# Hand-written Laplacians (L = D - Adj, 4-neighbour grid, row-major patches).
LAPLACIAN_2X2 = [
    [2, -1, -1, 0],
    [-1, 2, 0, -1],
    [-1, 0, 2, -1],
    [0, -1, -1, 2],
]
LAPLACIAN_3X3 = [
    [2, -1, 0, -1, 0, 0, 0, 0, 0],
    [-1, 3, -1, 0, -1, 0, 0, 0, 0],
    [0, -1, 2, 0, 0, -1, 0, 0, 0],
    [-1, 0, 0, 3, -1, 0, -1, 0, 0],
    [0, -1, 0, -1, 4, -1, 0, -1, 0],
    [0, 0, -1, 0, -1, 3, 0, 0, -1],
    [0, 0, 0, -1, 0, 0, 2, -1, 0],
    [0, 0, 0, 0, -1, 0, -1, 3, -1],
    [0, 0, 0, 0, 0, -1, 0, -1, 2],
]


@pytest.mark.parametrize("size,expected", [((2, 2), LAPLACIAN_2X2), ((3, 3), LAPLACIAN_3X3)])
def test_grid_laplacian_matches_hand_checked(size, expected):
    assert torch.equal(
        grid_laplacian(*size, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64)
    )


def test_grid_laplacian_rectangular_degrees():
    lap = grid_laplacian(2, 5, dtype=torch.float64)
    assert torch.equal(lap, lap.T)
    assert torch.equal(lap.sum(dim=1), torch.zeros(10, dtype=torch.float64))
    # corners 2, edges 3 (no interior on a 2-row grid)
    assert lap.diagonal().tolist() == [2, 3, 3, 3, 2, 2, 3, 3, 3, 2]


def _direct_scm(class_maps, attention, lams, ts, iterations):
    """Every equation of docs/MODEL.md (SCM) written with explicit loops, one sample at a time."""
    batch, k, h, w = class_maps.shape
    n = h * w
    lap = torch.zeros(n, n, dtype=torch.float64)
    for r, c in itertools.product(range(h), range(w)):
        i = r * w + c
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w:
                lap[i, rr * w + cc] = -1
    for j in range(n):
        lap[j, j] = -lap[:, j].sum()  # in-degree = column sums of Adj
    outputs = []
    for b in range(batch):
        s = class_maps[b].reshape(k, n).clone()
        a = attention[b]
        cam = (a - a.min()) / (a.max() - a.min())
        for layer, (lam, t) in enumerate(zip(lams, ts)):
            sim = torch.zeros(n, n, dtype=torch.float64)
            for i in range(n):
                for j in range(n):
                    sim[i, j] = s[:, i] @ s[:, j] / (s[:, i].norm() * s[:, j].norm())
            m = torch.zeros(n, n, dtype=torch.float64)
            for i in range(n):
                for j in range(n):
                    m[i, j] = lap[i, j] * (lam * sim[i, j] - 1)
            x = 0.002 * m.T
            for _ in range(iterations[layer]):
                x = x @ (2 * torch.eye(n, dtype=torch.float64) - m @ x)
            update = x.T @ cam
            update = update / (t * cam.max())
            update = update - torch.tanh(update)
            update = (update - update.min()) / (update.max() - update.min())
            s = s + s * update.unsqueeze(0)
            cam = cam + update
        outputs.append(s.reshape(k, h, w))
    return torch.stack(outputs)


@pytest.mark.parametrize("impl", SCM_IMPLS)
@pytest.mark.parametrize("grid", [(2, 2), (3, 3), (2, 3)])
@pytest.mark.parametrize(
    "lams,ts",
    [
        ((1.0, 1.0, 1.0, 1.0), (0.5, 0.5, 0.5, 0.5)),  # the initial values
        ((0.7, 1.3, 0.9, 1.1), (0.3, 0.8, 1.5, 0.6)),
        ((1.8, 0.2, 1.0, 2.5), (2.0, 0.1, 0.5, 1.0)),
    ],
)
def test_scm_matches_direct_equations(impl, grid, lams, ts):
    torch.manual_seed(0)
    h, w = grid
    class_maps = torch.randn(3, 5, h, w, dtype=torch.float64)
    attention = torch.rand(3, h * w, dtype=torch.float64)
    scm = SpatialCalibration(grid, impl=impl).double()
    with torch.no_grad():
        for layer, lam, t in zip(scm.layers, lams, ts):
            layer.lam.fill_(lam)
            layer.t.fill_(t)
    got = scm(class_maps, attention)
    want = _direct_scm(class_maps, attention, lams, ts, [16, 4, 4, 4])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("grid", [(1, 4), (4, 5), (14, 14)])
def test_fast_scm_gradients_equal_the_literal_ones(grid):
    torch.manual_seed(4)
    class_maps = torch.randn(2, 6, *grid, dtype=torch.float64, requires_grad=True)
    class_maps.data[0, :, 0, 0] = 0  # a zero feature: Sim_ii = 0 on both paths
    attention = torch.rand(2, grid[0] * grid[1], dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 6, *grid, dtype=torch.float64)
    results = []
    for impl in SCM_IMPLS:
        scm = SpatialCalibration(grid, impl=impl).double()
        with torch.no_grad():
            for layer, lam in zip(scm.layers, (0.8, 1.2, 1.0, 0.6)):
                layer.lam.fill_(lam)
        out = scm(class_maps, attention)
        grads = torch.autograd.grad((out * weights).sum(), (class_maps, attention, *scm.parameters()))
        results.append((out, grads))
    (fast, fast_grads), (literal, literal_grads) = results
    torch.testing.assert_close(fast, literal, rtol=1e-9, atol=1e-9)
    for got, want in zip(fast_grads, literal_grads):
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9)


def test_newton_schulz_apply_transpose_is_the_literal_iterate_applied():
    torch.manual_seed(5)
    a = torch.randn(3, 7, 7, dtype=torch.float64)
    m = (a @ a.transpose(1, 2) / 7 + torch.eye(7, dtype=torch.float64)).requires_grad_(True)
    v = torch.rand(3, 7, dtype=torch.float64, requires_grad=True)
    for iterations in (1, 2, 5):
        want = (newton_schulz_inverse(m, iterations).transpose(1, 2) @ v.unsqueeze(-1))[..., 0]
        torch.testing.assert_close(newton_schulz_apply_transpose(m, v, iterations), want)
    x0 = (0.002 * m.detach().transpose(1, 2)).clone()
    assert torch.autograd.gradcheck(
        lambda mat, vec: newton_schulz_apply_transpose(mat, vec, 3, initial=x0), (m, v)
    )


def test_scm_changes_the_maps_and_learns_its_scalars():
    torch.manual_seed(1)
    class_maps = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    attention = torch.rand(2, 9, dtype=torch.float64)
    scm = SpatialCalibration((3, 3)).double()
    out = scm(class_maps, attention)
    assert not torch.allclose(out, class_maps)
    out.mean(dim=(2, 3)).sum().backward()
    for layer in scm.layers:
        assert layer.lam.grad is not None and layer.lam.grad.abs() > 0
        assert layer.t.grad is not None and layer.t.grad.abs() > 0


def test_newton_schulz_converges_to_inverse_and_initial_is_detached():
    torch.manual_seed(2)
    a = torch.randn(4, 6, 6, dtype=torch.float64)
    m = a @ a.transpose(1, 2) + 6 * torch.eye(6, dtype=torch.float64)
    m.requires_grad_(True)
    x = newton_schulz_inverse(m / 10, iterations=40)
    torch.testing.assert_close(x, torch.linalg.inv(m / 10), rtol=1e-8, atol=1e-8)
    # gradient of the T-step map with X_0 held fixed, checked numerically
    x0 = (0.002 * (m / 10).detach().transpose(1, 2)).clone()
    assert torch.autograd.gradcheck(
        lambda mat: newton_schulz_inverse(mat, iterations=3, initial=x0), (m / 10,)
    )


def test_scm_layer_gradcheck_through_cam_and_t():
    """Gradients wrt c and t (X_0 depends only on S, held fixed here) match numerics."""
    torch.manual_seed(3)
    layer = SpatialCalibration((2, 3)).double().layers[0]
    class_maps = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    laplacian = grid_laplacian(2, 3, dtype=torch.float64)
    cam = (0.1 + minmax(torch.rand(2, 6, dtype=torch.float64))).requires_grad_(True)
    t = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)

    def calibrated(cam_in, t_in):
        params = {"lam": layer.lam, "t": t_in}
        return torch.func.functional_call(layer, params, (class_maps, cam_in, laplacian))

    assert torch.autograd.gradcheck(calibrated, (cam, t))


def test_constant_attention_gives_no_nan():
    scm = SpatialCalibration((3, 3))
    out = scm(torch.randn(2, 4, 3, 3), torch.ones(2, 9))
    assert torch.isfinite(out).all()
    assert torch.equal(minmax(torch.full((2, 5), 3.0)), torch.zeros(2, 5))
