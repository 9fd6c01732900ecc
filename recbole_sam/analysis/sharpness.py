"""Sharpness of a minimum: the Hessian's top eigenvalue and trace, rho-sharpness, and the
scale-free measures built on them (each divided by L(Θ), and the relative loss rise along
filter-normalised random directions).

The Hessian measures take the loss as ``loss_terms``: a function returning scalar tensors whose sum is L
(one per batch, so that only one batch's graph is alive at a time), and ``params``, the
tensors L is differentiated in. Random vectors come from a seeded CPU generator: the same seed
gives the same numbers on any device, and the global generators are not touched.
"""

import math

import torch

from recbole_sam.analysis.landscape import filter_normalized_directions
from recbole_sam.analysis.objective import model_objective
from recbole_sam.errors import ConfigError


def _dot(xs, ys):
    return sum((x.double() * y.double()).sum() for x, y in zip(xs, ys)).item()


def _norm(xs):
    return math.sqrt(_dot(xs, xs))


def _check_count(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")


def _check_rho(rho):
    if not isinstance(rho, (int, float)) or isinstance(rho, bool) or not math.isfinite(rho) or rho <= 0:
        raise ConfigError(f"rho: must be a number > 0, got {rho!r}")


def check_sharpness_options(rho, iters, ascent_steps):
    """Raise ``ConfigError`` for a rho that is not > 0 or a count that is not >= 1."""
    _check_rho(rho)
    _check_count("iters", iters)
    _check_count("ascent_steps", ascent_steps)


def _random_like(params, generator, rademacher=False):
    draws = []
    for p in params:
        if rademacher:
            draw = torch.randint(0, 2, p.shape, generator=generator).mul(2).sub(1)
        else:
            draw = torch.randn(p.shape, generator=generator)
        draws.append(draw.to(p))
    return draws


def hessian_vector_product(loss_terms, params, vector):
    """H·v by double back-propagation: H v = ∇(∇L · v), accumulated term by term.

    Args:
        loss_terms (callable): returns scalar tensors whose sum is L.
        params (list of Tensor): the variables of L.
        vector (list of Tensor): v, shaped like ``params``.

    Returns:
        list of Tensor: H·v, shaped like ``params`` (zero where L does not depend on a parameter).
    """
    product = [torch.zeros_like(p) for p in params]
    for term in loss_terms():
        grads = torch.autograd.grad(term, params, create_graph=True, allow_unused=True)
        grad_dot_v = sum((g * v).sum() for g, v in zip(grads, vector) if g is not None)
        if not torch.is_tensor(grad_dot_v) or not grad_dot_v.requires_grad:
            continue  # L is at most linear here: this term adds nothing to H
        hv = torch.autograd.grad(grad_dot_v, params, allow_unused=True)
        for acc, part in zip(product, hv):
            if part is not None:
                acc.add_(part)
    return product


def top_hessian_eigenvalue(loss_terms, params, iters=20, seed=0, tol=1e-4, shift=0.0):
    """The Hessian's eigenvalue of largest magnitude, by power iteration on H·v.

    Args:
        loss_terms (callable): returns scalar tensors whose sum is L.
        params (list of Tensor): the variables of L.
        iters (int): at most this many Hessian-vector products.
        seed (int): the starting vector.
        tol (float): stop when the estimate changes by less than ``tol`` relative.
        shift (float): iterate on H − shift·I instead (its eigenvalues are H's minus ``shift``).

    Returns:
        float: the Rayleigh quotient vᵀ(H − shift·I)v of the last iterate (0.0 if the product
        vanishes).
    """
    _check_count("iters", iters)
    v = _random_like(params, torch.Generator().manual_seed(seed))
    norm = _norm(v)
    v = [x / norm for x in v]
    estimate = None
    for _ in range(iters):
        hv = [h - shift * x for h, x in zip(hessian_vector_product(loss_terms, params, v), v)]
        new, norm = _dot(v, hv), _norm(hv)
        if norm == 0:
            return 0.0
        v = [x / norm for x in hv]
        converged = estimate is not None and abs(new - estimate) <= tol * abs(estimate)
        estimate = new
        if converged:
            break
    return estimate


def max_hessian_eigenvalue(loss_terms, params, iters=20, seed=0, tol=1e-4, dominant=None):
    """The Hessian's largest (algebraic) eigenvalue: the paper's "largest principal curvature".

    The eigenvalue of largest magnitude is it when it is ≥ 0 (every other one lies in [−λ, λ]).
    When it is negative (a saddle, or a minimum found with dropout and measured without), power
    iteration on H − dominant·I, whose eigenvalues are all ≥ 0 and whose largest is
    λ_max − dominant, finds it: ``iters`` more Hessian-vector products.

    Args:
        loss_terms, params, iters, seed, tol: as :func:`top_hessian_eigenvalue`.
        dominant (float, optional): the eigenvalue of largest magnitude, if already known.

    Returns:
        float: the estimate of λ_max.
    """
    if dominant is None:
        dominant = top_hessian_eigenvalue(loss_terms, params, iters, seed, tol)
    if dominant >= 0:
        return dominant
    return top_hessian_eigenvalue(loss_terms, params, iters, seed, tol, shift=dominant) + dominant


def hessian_trace(loss_terms, params, samples=20, seed=0):
    """tr(H) by Hutchinson's estimator: the mean of zᵀHz over Rademacher vectors z (E[zzᵀ] = I).

    Args:
        loss_terms (callable): returns scalar tensors whose sum is L.
        params (list of Tensor): the variables of L.
        samples (int): how many vectors z.
        seed (int): the vectors.

    Returns:
        float: the estimate of tr(H).
    """
    _check_count("samples", samples)
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(samples):
        z = _random_like(params, generator, rademacher=True)
        total += _dot(z, hessian_vector_product(loss_terms, params, z))
    return total / samples


def _value_and_grad(loss_terms, params):
    value, grads = 0.0, [torch.zeros_like(p) for p in params]
    for term in loss_terms():
        value += term.double().item()
        for acc, g in zip(grads, torch.autograd.grad(term, params, allow_unused=True)):
            if g is not None:
                acc.add_(g)
    return value, grads


def rho_sharpness(loss_terms, params, rho=0.05, steps=10, seed=0):
    """max over ‖ε‖₂ ≤ rho of L(Θ + ε) − L(Θ), by projected normalised gradient ascent.

    The ascent starts at SAM's first-order solution rho·∇L/‖∇L‖ (or, where ∇L(Θ) = 0, at a
    seeded random point of the sphere), takes steps of length rho along the normalised gradient
    and projects back onto the ball. The result is the best point visited: a lower bound of the maximum.
    ``params`` are restored bit for bit afterwards.

    Args:
        loss_terms (callable): returns scalar tensors whose sum is L.
        params (list of Tensor): Θ, the tensors to perturb (leaf tensors with requires_grad).
        rho (float): the radius of the ball, > 0.
        steps (int): gradient evaluations in the ball.
        seed (int): the random start, used only where ∇L(Θ) = 0.

    Returns:
        float: the largest L(Θ + ε) − L(Θ) found.
    """
    _check_rho(rho)
    _check_count("steps", steps)
    theta = [p.detach().clone() for p in params]
    base, grad = _value_and_grad(loss_terms, params)
    if _norm(grad) == 0:
        grad = _random_like(params, torch.Generator().manual_seed(seed))
    eps = [g * (rho / _norm(grad)) for g in grad]
    best = -math.inf
    try:
        for _ in range(steps):
            with torch.no_grad():
                for p, t, e in zip(params, theta, eps):
                    p.copy_(t + e)
            value, grad = _value_and_grad(loss_terms, params)
            best = max(best, value - base)
            grad_norm = _norm(grad)
            if grad_norm == 0:
                break  # a stationary point inside the ball: no direction left to climb
            eps = [e + g * (rho / grad_norm) for e, g in zip(eps, grad)]
            eps_norm = _norm(eps)
            if eps_norm > rho:
                eps = [e * (rho / eps_norm) for e in eps]
    finally:
        with torch.no_grad():
            for p, t in zip(params, theta):
                p.copy_(t)
    return best


def check_rise_options(radius, directions):
    """Raise ``ConfigError`` for a radius that is not > 0 or a direction count that is not >= 1."""
    if not isinstance(radius, (int, float)) or isinstance(radius, bool) or not math.isfinite(radius) or radius <= 0:
        raise ConfigError(f"radius: must be a number > 0, got {radius!r}")
    _check_count("directions", directions)


def relative_loss_rise(model, loss_fn, radius=0.1, directions=4, seed=0):
    """How much L rises, relative to L(Θ), at a fixed relative distance from Θ.

    Along ``directions`` filter-normalised random directions d (each row of d has the norm of
    the same row of Θ, as in the landscapes), the curvature part of the rise,
    ½ (L(Θ + r·d) + L(Θ − r·d)) − L(Θ) (both signs, so that a non-zero gradient cancels), averaged
    over the directions, then divided by L(Θ). Multiplying L by a constant leaves it unchanged.
    Parameters are restored bit for bit afterwards.

    Args:
        model (torch.nn.Module): its trainable parameters are moved.
        loss_fn (callable): no arguments, returns L at the current parameters as a float.
        radius (float): r, the distance in units of the filter-normalised directions, > 0.
        directions (int): how many random directions, >= 1.
        seed (int): the directions (the same ones for every model of an architecture).

    Returns:
        tuple: ``(rise, relative_rise)``: the mean rise, and the mean rise divided by L(Θ)
        (``None`` where L(Θ) is not > 0).
    """
    check_rise_options(radius, directions)
    params = dict(model.named_parameters())
    theta = {name: p.detach().clone() for name, p in params.items()}
    base, rises = loss_fn(), []
    try:
        for direction in filter_normalized_directions(model, seed, count=directions):
            ends = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for name, step in direction.items():
                        params[name].copy_(theta[name] + (sign * radius) * step)
                ends.append(loss_fn())
            rises.append(0.5 * (ends[0] + ends[1]) - base)
    finally:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(theta[name])
    rise = sum(rises) / len(rises)
    return rise, (rise / base if base > 0 else None)


def sharpness_measures(model, objective, rho=0.05, iters=20, ascent_steps=10, seed=0, radius=0.1, directions=4):
    """Every sharpness measure of ``objective`` at the model's current parameters.

    Args:
        model (torch.nn.Module): whose parameters the filter-normalised directions follow.
        objective: L, with ``terms()``, ``value()`` and ``parameters()`` (``objective.BatchLoss``
            or ``objective.NextItemLoss``).
        rho (float): radius for rho-sharpness.
        iters (int): power iterations, and Hutchinson samples.
        ascent_steps (int): gradient steps for rho-sharpness.
        seed (int): the random vectors and directions.
        radius (float): the relative loss rise's distance, in filter-normalised units.
        directions (int): the relative loss rise's random directions.

    Returns:
        dict: ``loss`` (L(Θ)), ``top_eigenvalue`` (largest magnitude), ``max_eigenvalue``
        (largest), ``hessian_trace``, ``rho_sharpness``, the scale-free
        ``top_eigenvalue_over_loss``, ``max_eigenvalue_over_loss``, ``hessian_trace_over_loss``,
        ``rho_sharpness_over_loss``, ``relative_loss_rise``, and ``loss_rise`` (its numerator).
        A quotient is ``None`` where L(Θ) is not > 0.
    """
    check_sharpness_options(rho, iters, ascent_steps)
    check_rise_options(radius, directions)
    params = objective.parameters()
    loss = objective.value()
    top = top_hessian_eigenvalue(objective.terms, params, iters, seed)
    measures = {
        "loss": loss,
        "top_eigenvalue": top,
        "max_eigenvalue": max_hessian_eigenvalue(objective.terms, params, iters, seed, dominant=top),
        "hessian_trace": hessian_trace(objective.terms, params, iters, seed),
        "rho_sharpness": rho_sharpness(objective.terms, params, rho, ascent_steps, seed),
    }
    for key in ("top_eigenvalue", "max_eigenvalue", "hessian_trace", "rho_sharpness"):
        measures[f"{key}_over_loss"] = measures[key] / loss if loss > 0 else None
    measures["loss_rise"], measures["relative_loss_rise"] = relative_loss_rise(
        model, objective.value, radius, directions, seed
    )
    return measures


def model_sharpness(
    model, train_data, rho=0.05, iters=20, ascent_steps=10, batches=4, seed=0, objective="own", radius=0.1, directions=4
):
    """Sharpness measures of a RecBole model at its current parameters.

    Args:
        model: a RecBole model, evaluated in eval mode.
        train_data: its training dataloader.
        rho (float): radius for rho-sharpness.
        iters (int): power iterations, and Hutchinson samples.
        ascent_steps (int): gradient steps for rho-sharpness.
        batches (int): batches L is averaged over.
        seed (int): fixes the batches, the random draws in the loss, the vectors and directions.
        objective (str): ``own`` (the model's training loss), ``bce`` or ``ce`` (the common
            next-item loss, see ``objective.NextItemLoss``).
        radius (float): the relative loss rise's distance.
        directions (int): the relative loss rise's random directions.

    Returns:
        dict: see :func:`sharpness_measures`.
    """
    check_sharpness_options(rho, iters, ascent_steps)  # before the slow part
    check_rise_options(radius, directions)
    loss = model_objective(model, train_data, objective, batches, seed)
    return sharpness_measures(model, loss, rho, iters, ascent_steps, seed, radius, directions)
