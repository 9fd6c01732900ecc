"""The SAM maths against hand computations on a tiny model (no RecBole involved)."""

import copy
import warnings

import pytest
import torch

from recbole_sam.optim import SAM, LookSAM


def make_params():
    return [torch.tensor([1.0, -2.0], requires_grad=True), torch.tensor([0.5, 1.5, -1.0], requires_grad=True)]


C1, C2 = torch.tensor([1.0, 3.0]), torch.tensor([2.0, -1.0, 0.5])


def loss_fn(params):
    p1, p2 = params
    return (C1 * p1**2).sum() + (C2 * p2**3).sum()


def grad_fn(params):
    """∇L written out by hand: d/dp1 = 2·c1·p1, d/dp2 = 3·c2·p2²."""
    p1, p2 = (p.detach() for p in params)
    return [2 * C1 * p1, 3 * C2 * p2**2]


def global_norm(tensors):
    return torch.sqrt(sum((t**2).sum() for t in tensors))


def backward(params):
    for p in params:
        p.grad = None
    loss_fn(params).backward()


def test_sam_step_matches_hand_computation():
    params, rho, lr = make_params(), 0.3, 0.1
    theta = [p.detach().clone() for p in params]
    opt = SAM(params, torch.optim.SGD, rho=rho, lr=lr)

    backward(params)
    opt.first_step(zero_grad=True)
    g = grad_fn(theta)
    ascent_point = [t + rho * gi / global_norm(g) for t, gi in zip(theta, g)]  # norm over all parameters
    for p, expected in zip(params, ascent_point):
        torch.testing.assert_close(p.detach(), expected)
    assert opt.last_ascent_norm == pytest.approx(rho)

    backward(params)
    opt.second_step()
    g_at_ascent = grad_fn(ascent_point)
    for p, t, gs in zip(params, theta, g_at_ascent):
        torch.testing.assert_close(p.detach(), t - lr * gs)


def test_second_step_restores_theta_exactly_before_the_base_step():
    params = make_params()
    theta = [p.detach().clone() for p in params]
    opt = SAM(params, torch.optim.SGD, rho=0.7, lr=0.0)  # lr 0: the base step changes nothing
    backward(params)
    opt.first_step(zero_grad=True)
    backward(params)
    opt.second_step()
    for p, t in zip(params, theta):
        assert torch.equal(p.detach(), t)


def test_asam_scales_the_ball_by_weight_magnitude():
    params, rho, eta, lr = make_params(), 0.2, 0.01, 0.05
    theta = [p.detach().clone() for p in params]
    opt = SAM(params, torch.optim.SGD, rho=rho, adaptive=True, eta=eta, lr=lr)
    backward(params)
    opt.first_step(zero_grad=True)
    g = grad_fn(theta)
    t_w = [t.abs() + eta for t in theta]
    norm = global_norm([tw * gi for tw, gi in zip(t_w, g)])
    ascent_point = [t + rho * tw**2 * gi / norm for t, tw, gi in zip(theta, t_w, g)]
    for p, expected in zip(params, ascent_point):
        torch.testing.assert_close(p.detach(), expected)
    backward(params)
    opt.second_step()
    for p, t, gs in zip(params, theta, grad_fn(ascent_point)):
        torch.testing.assert_close(p.detach(), t - lr * gs)


def test_looksam_reuses_the_orthogonal_direction_on_a_step_without_ascent():
    params, rho, lr, alpha = make_params(), 0.3, 0.1, 0.7
    opt = LookSAM(params, torch.optim.SGD, rho=rho, lr=lr, interval=2, alpha=alpha)

    # Step 0: an ascent step, which also records g_v.
    theta0 = [p.detach().clone() for p in params]
    assert opt.ascent_due()
    backward(params)
    opt.first_step(zero_grad=True)
    backward(params)
    opt.second_step(zero_grad=True)
    g = grad_fn(theta0)
    ascent_point = [t + rho * gi / global_norm(g) for t, gi in zip(theta0, g)]
    g_s = grad_fn(ascent_point)
    coef = sum((a * b).sum() for a, b in zip(g, g_s)) / sum((a * a).sum() for a in g)
    g_v = [b - coef * a for a, b in zip(g, g_s)]

    # Step 1: no ascent; the update uses g + alpha·‖g‖/‖g_v‖·g_v.
    assert not opt.ascent_due()
    theta1 = [p.detach().clone() for p in params]
    backward(params)
    opt.step()
    g1 = grad_fn(theta1)
    scale = alpha * global_norm(g1) / global_norm(g_v)
    for p, t, gi, gv in zip(params, theta1, g1, g_v):
        torch.testing.assert_close(p.detach(), t - lr * (gi + scale * gv))
    assert opt.ascent_due()  # step 2 ascends again


def test_periodic_sam_without_looksam_takes_plain_steps_between_ascents():
    params, lr = make_params(), 0.1
    opt = SAM(params, torch.optim.SGD, rho=0.3, lr=lr, interval=3)
    backward(params)
    opt.first_step(zero_grad=True)
    backward(params)
    opt.step()
    assert not opt.ascent_due()
    theta = [p.detach().clone() for p in params]
    backward(params)
    opt.step()  # not perturbed: a plain SGD step
    for p, t, gi in zip(params, theta, grad_fn(theta)):
        torch.testing.assert_close(p.detach(), t - lr * gi)


def test_zero_gradient_gives_no_perturbation_no_nan_and_one_warning():
    params = [torch.zeros(3, requires_grad=True)]  # L = sum(p²) has zero gradient at 0
    opt = SAM(params, torch.optim.Adam, rho=0.5, lr=0.1)
    with pytest.warns(RuntimeWarning, match="gradient norm"):
        (params[0] ** 2).sum().backward()
        opt.first_step()
    assert torch.equal(params[0].detach(), torch.zeros(3))
    opt.second_step(zero_grad=True)
    assert torch.isfinite(params[0]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second degenerate step must not warn again
        (params[0] ** 2).sum().backward()
        opt.first_step()
        opt.second_step()


def test_non_finite_gradient_norm_skips_the_ascent():
    params = [torch.ones(2, requires_grad=True)]
    opt = SAM(params, torch.optim.SGD, rho=0.5, lr=0.1)
    params[0].grad = torch.tensor([float("inf"), 1.0])
    with pytest.warns(RuntimeWarning):
        opt.first_step()
    assert torch.equal(params[0].detach(), torch.ones(2))


def test_step_with_closure_equals_explicit_first_and_second_step():
    a, b = make_params(), make_params()
    opt_a = SAM(a, torch.optim.Adam, rho=0.1, lr=0.01)
    opt_b = SAM(b, torch.optim.Adam, rho=0.1, lr=0.01)
    for _ in range(3):
        backward(a)
        opt_a.first_step(zero_grad=True)
        backward(a)
        opt_a.second_step(zero_grad=True)

        backward(b)
        opt_b.step(closure=lambda: loss_fn(b).backward())
        opt_b.zero_grad()
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb)


@pytest.mark.parametrize("optimizer_class", [SAM, LookSAM])
def test_state_dict_keeps_adam_moments_and_resumes_the_same_trajectory(optimizer_class):
    def sam_step(params, opt):
        backward(params)
        if opt.ascent_due():
            opt.first_step(zero_grad=True)
            backward(params)
        opt.step()

    params = make_params()
    opt = optimizer_class(params, torch.optim.Adam, rho=0.1, lr=0.01, interval=2)
    for _ in range(3):
        sam_step(params, opt)
    state = copy.deepcopy(opt.state_dict())
    saved_params = [p.detach().clone() for p in params]
    assert "exp_avg" in state["base_optimizer"]["state"][0]

    resumed = [p.clone().detach().requires_grad_(True) for p in saved_params]
    opt_resumed = optimizer_class(resumed, torch.optim.Adam, rho=0.1, lr=0.01, interval=2)
    opt_resumed.load_state_dict(state)
    fresh = [p.clone().detach().requires_grad_(True) for p in saved_params]
    opt_fresh = optimizer_class(fresh, torch.optim.Adam, rho=0.1, lr=0.01, interval=2)
    for _ in range(3):
        sam_step(params, opt)
        sam_step(resumed, opt_resumed)
        sam_step(fresh, opt_fresh)
    for p, r, f in zip(params, resumed, fresh):
        torch.testing.assert_close(r, p)
        assert not torch.allclose(f, p)  # without the moments the trajectory differs


def test_learning_rate_changes_reach_the_base_optimizer():
    params = make_params()
    opt = SAM(params, torch.optim.SGD, rho=0.1, lr=0.1)
    opt.param_groups[0]["lr"] = 0.0
    theta = [p.detach().clone() for p in params]
    backward(params)
    opt.plain_step()
    for p, t in zip(params, theta):
        assert torch.equal(p.detach(), t)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rho": 0.0}, "rho"),
        ({"rho": -1}, "rho"),
        ({"rho": float("nan")}, "rho"),
        ({"rho": "0.1"}, "rho"),
        ({"interval": 0}, "interval"),
        ({"interval": 1.5}, "interval"),
        ({"eta": -0.1}, "eta"),
    ],
)
def test_bad_arguments_raise_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAM(make_params(), torch.optim.SGD, **{"lr": 0.1, **kwargs})


def test_second_step_without_first_step_is_an_error():
    params = make_params()
    opt = SAM(params, torch.optim.SGD, rho=0.1, lr=0.1)
    backward(params)
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_step()
