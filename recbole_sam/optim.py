"""Sharpness-Aware Minimization as a wrapper around any torch optimizer. Depends on torch only.

SAMRec (Lai et al., RecSys'23, Eq. 3-4) trains with the min-max objective

    min_Θ  max_{‖Δ‖₂ ≤ rho}  L(Θ + Δ),      Δ̂ = rho · g / ‖g‖₂,   g = ∇L(Θ),

in two passes over the same batch: ``first_step`` moves the weights to Θ + Δ̂, the caller
recomputes the gradient there, and ``second_step`` puts Θ back and lets the base optimizer
step with the gradient taken at Θ + Δ̂. Norms are taken over all parameters together.

Variants:
- ASAM (Kwon et al., ICML'21), ``adaptive=True``: the ball is scaled per weight by
  T_w = |w| + eta, so Δ̂ = rho · T_w² g / ‖T_w g‖₂.
- LookSAM (Liu et al., CVPR'22), class ``LookSAM``: ascend only every ``interval`` steps
  and reuse the SAM direction on the steps in between.
- Perturbing a subset (``sam_params``; SAM-ON, Mueller et al., NeurIPS'23): a parameter group
  with ``perturb=False`` is not moved by the ascent and its gradient is left out of ‖g‖; the
  descent still updates it with the gradient taken at Θ + Δ.
- Per-row radius (Helen, Zhu et al., WWW'24; ``set_row_scale``): the rows of an embedding table
  E get Δ_i = rho · s_i · g_i / ‖g_E‖₂, normalised by the table's own gradient and scaled by
  s_i (see ``recbole_sam.variants.helen_row_scale``); the other perturbed parameters keep
  Δ = rho · g / ‖g‖₂ with the norm over every perturbed parameter, as in Helen's code.
"""

import math
import warnings

import torch

__all__ = ["SAM", "LookSAM", "BASE_OPTIMIZERS", "build_sam_optimizer"]


def _check_number(name, value, low, low_inclusive=False):
    """Raise one clear ValueError unless ``value`` is a finite real number above ``low``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= low if low_inclusive else value > low)
    if not ok:
        bound = f">= {low}" if low_inclusive else f"> {low}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_interval(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"interval (sam_interval) must be an integer >= 1, got {value!r}")


def _global_norm(tensors):
    """‖(t_1, ..., t_n)‖₂ of all tensors taken together, as a Python float."""
    tensors = list(tensors)
    if not tensors:
        return 0.0
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors])).item()


class SAM(torch.optim.Optimizer):
    """Sharpness-Aware Minimization around a base optimizer.

    Args:
        params: the parameters to optimise (an iterable of tensors or of parameter groups).
        base_optimizer: a ``torch.optim.Optimizer`` class, e.g. ``torch.optim.Adam``.
        rho (float): radius of the ascent ball, > 0.
        adaptive (bool): ASAM's scale-invariant ball instead of the Euclidean one.
        eta (float): ASAM's T_w = |w| + eta offset, >= 0.
        interval (int): ascend every ``interval`` steps (``ascent_due``); 1 is plain SAM.
        perturb (bool): default of the per-group flag: whether the ascent moves the group's
            parameters (groups may set ``perturb`` themselves).
        **kwargs: passed to ``base_optimizer`` (lr, weight_decay, ...).

    Use, with the same batch (and the same random draws) in both passes::

        loss_fn(model, batch).backward()
        optimizer.first_step(zero_grad=True)    # Θ -> Θ + Δ
        loss_fn(model, batch).backward()
        optimizer.second_step(zero_grad=True)   # back to Θ, base step with ∇L(Θ + Δ)
    """

    def __init__(self, params, base_optimizer, rho=0.05, adaptive=False, eta=0.01, interval=1, perturb=True, **kwargs):
        _check_number("rho", rho, 0.0)
        _check_number("eta", eta, 0.0, low_inclusive=True)
        _check_interval(interval)
        super().__init__(params, dict(rho=rho, adaptive=bool(adaptive), eta=eta, perturb=bool(perturb), **kwargs))
        if not any(group["perturb"] and group["params"] for group in self.param_groups):
            raise ValueError("perturb: no parameter group is perturbed; the ascent would move nothing")
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        # One list of groups for both, so a learning-rate change reaches the base optimizer.
        self.param_groups = self.base_optimizer.param_groups
        self.interval = interval
        self.steps_done = 0
        self.perturbed = False
        self.last_ascent_norm = 0.0  # ‖Δ‖₂ of the latest ascent, for logging
        self._warned_degenerate = False
        self.row_scales = {}  # parameter -> per-row radius scale (set_row_scale)
        # Objects (state_dict/load_state_dict) whose state is saved and restored with this
        # optimizer's, e.g. the trajectory loss's past weights (recbole_sam/trajectory.py).
        self.attached = {}

    def _params_with_grad(self, perturbed_only=False):
        for group in self.param_groups:
            if perturbed_only and not group["perturb"]:
                continue
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p

    def set_row_scale(self, param, scale):
        """Scale the ascent of each row of ``param`` (an embedding table) by ``scale`` [rows],
        normalising the table's ascent by its own gradient norm (Helen; see the module doc).

        Args:
            param (torch.nn.Parameter): a 2-D parameter of a perturbed group.
            scale (torch.Tensor): one non-negative factor per row of ``param``.
        """
        if param.dim() != 2 or scale.shape != (param.shape[0],):
            raise ValueError(f"row scale of shape {tuple(scale.shape)} does not fit a table of shape {tuple(param.shape)}")
        if not any(param is p for group in self.param_groups if group["perturb"] for p in group["params"]):
            raise ValueError("set_row_scale: the parameter is not in a perturbed group of this optimizer")
        self.row_scales[param] = scale.detach().to(param.device, param.dtype)

    def ascent_due(self):
        """Whether the next step should compute the ascent (every ``interval`` steps)."""
        return self.steps_done % self.interval == 0

    @torch.no_grad()
    def first_step(self, zero_grad=False):
        """Move every perturbed parameter from Θ to Θ + Δ with Δ = rho · T² g / ‖T g‖₂ (T = 1
        unless adaptive; the norm over the perturbed parameters), rows with a row scale as in
        ``set_row_scale``."""
        perturbed = list(self._params_with_grad(perturbed_only=True))
        scales = {p: (p.abs() + group["eta"]) if group["adaptive"] else None for group, p in perturbed}
        grad_norm = _global_norm(p.grad if s is None else s * p.grad for p, s in scales.items())
        degenerate = grad_norm == 0.0 or not math.isfinite(grad_norm)
        if degenerate and not self._warned_degenerate:
            warnings.warn(f"SAM: gradient norm is {grad_norm}; skipping the ascent (no perturbation)", RuntimeWarning)
            self._warned_degenerate = True

        ascent = []
        for group, p in perturbed:
            self.state[p]["theta"] = p.detach().clone()  # restored exactly, not by subtracting Δ
            if degenerate:
                continue
            if p in self.row_scales:
                table_norm = _global_norm([p.grad])
                if table_norm == 0.0:
                    continue
                e_w = p.grad * (group["rho"] / table_norm) * self.row_scales[p].unsqueeze(1)
            else:
                e_w = p.grad * (group["rho"] / grad_norm)
            if scales[p] is not None:
                e_w = e_w * scales[p] ** 2
            p.add_(e_w)
            ascent.append(e_w)
        self.last_ascent_norm = _global_norm(ascent)
        self.perturbed = True
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad=False):
        """Put Θ back and take the base optimizer's step with the gradient computed at Θ + Δ."""
        if not self.perturbed:
            raise RuntimeError("SAM.second_step() called without a first_step() before it")
        for group in self.param_groups:
            for p in group["params"]:
                if "theta" in self.state[p]:
                    p.copy_(self.state[p].pop("theta"))
        self.perturbed = False
        self._base_step(zero_grad)

    @torch.no_grad()
    def plain_step(self, zero_grad=False):
        """A step without ascent (the steps between two ascents when ``interval`` > 1)."""
        self._base_step(zero_grad)

    def _base_step(self, zero_grad):
        self.base_optimizer.step()
        self.steps_done += 1
        if zero_grad:
            self.zero_grad()

    def step(self, closure=None):
        """Finish the current step.

        With ``closure`` (which must recompute the loss and call ``backward``), this is the
        classic one-call form: ascend, re-evaluate, descend. Without it, ``second_step`` if
        the weights are perturbed, else ``plain_step``: that is how a training loop that only
        knows ``optimizer.step()`` (RecBole's) finishes a step the trainer started.
        """
        if closure is not None:
            self.first_step(zero_grad=True)
            with torch.enable_grad():
                closure()
            self.second_step()
        elif self.perturbed:
            self.second_step()
        else:
            self.plain_step()

    def state_dict(self):
        # Unlike the wrapper people copy, keep the base optimizer's state (Adam moments): a
        # resumed run then continues the same trajectory.
        state = {"base_optimizer": self.base_optimizer.state_dict(), "steps_done": self.steps_done}
        if self.attached:
            state["attached"] = {name: obj.state_dict() for name, obj in self.attached.items()}
        return state

    def load_state_dict(self, state_dict):
        if "base_optimizer" not in state_dict:
            raise ValueError("not a SAM optimizer state (no 'base_optimizer' key): was it saved by another optimizer?")
        self.base_optimizer.load_state_dict(state_dict["base_optimizer"])
        self.param_groups = self.base_optimizer.param_groups
        self.steps_done = state_dict["steps_done"]
        for name, state in state_dict.get("attached", {}).items():
            if name in self.attached:
                self.attached[name].load_state_dict(state)


class LookSAM(SAM):
    """LookSAM (Liu et al., 2022): ascend every ``interval`` steps, reuse the direction in between.

    At an ascent step, with g = ∇L(Θ) and g_s = ∇L(Θ + Δ), keep the part of g_s that is
    orthogonal to g:  g_v = g_s − (⟨g, g_s⟩ / ‖g‖²) · g.  On the steps in between only g is
    computed, and the base optimizer gets  g + alpha · (‖g‖ / ‖g_v‖) · g_v.
    Norms and inner products are over all parameters together.
    """

    def __init__(self, params, base_optimizer, rho=0.05, adaptive=False, eta=0.01, interval=5, alpha=0.7, **kwargs):
        _check_number("alpha", alpha, 0.0, low_inclusive=True)
        super().__init__(params, base_optimizer, rho=rho, adaptive=adaptive, eta=eta, interval=interval, **kwargs)
        self.alpha = alpha

    @torch.no_grad()
    def first_step(self, zero_grad=False):
        for _, p in self._params_with_grad():
            self.state[p]["grad_at_theta"] = p.grad.detach().clone()
        super().first_step(zero_grad=zero_grad)

    @torch.no_grad()
    def second_step(self, zero_grad=False):
        params = [p for _, p in self._params_with_grad() if "grad_at_theta" in self.state[p]]
        g = [self.state[p].pop("grad_at_theta") for p in params]
        g_s = [p.grad for p in params]
        g_sq = sum((a * a).sum() for a in g) if g else 0.0
        coef = sum((a * b).sum() for a, b in zip(g, g_s)) / g_sq if g and g_sq > 0 else 0.0
        for p, a, b in zip(params, g, g_s):
            self.state[p]["g_v"] = b - coef * a
        super().second_step(zero_grad=zero_grad)

    @torch.no_grad()
    def plain_step(self, zero_grad=False):
        pairs = [(p, self.state[p]["g_v"]) for _, p in self._params_with_grad() if "g_v" in self.state[p]]
        g_norm = _global_norm(p.grad for p, _ in pairs)
        g_v_norm = _global_norm(g_v for _, g_v in pairs)
        if g_v_norm > 0.0 and math.isfinite(g_norm):
            for p, g_v in pairs:
                p.grad.add_(g_v, alpha=self.alpha * g_norm / g_v_norm)
        super().plain_step(zero_grad=zero_grad)

    def state_dict(self):
        state = super().state_dict()
        params = [p for group in self.param_groups for p in group["params"]]
        state["g_v"] = [self.state[p].get("g_v") for p in params]
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        for p, g_v in zip(params, state_dict.get("g_v", [])):
            if g_v is not None:
                self.state[p]["g_v"] = g_v.to(p.device)


# RecBole's ``learner`` names that SAM can wrap; sparse_adam is left out on purpose, its
# sparse gradients have no norm over all parameters to ascend along.
BASE_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}


def build_sam_optimizer(params, config, learner, learning_rate, weight_decay):
    """The SAM optimizer that ``sam_variant`` names, around RecBole's ``learner``.

    Args:
        params: the parameters to optimise.
        config (Mapping): supplies rho, sam_variant, sam_interval, looksam_alpha and asam_eta.
        learner (str): RecBole's optimizer name (adam, adamw, sgd, adagrad, rmsprop).
        learning_rate (float): the base optimizer's learning rate.
        weight_decay (float): the base optimizer's weight decay.

    Returns:
        SAM: a ``SAM`` or ``LookSAM`` instance.

    Raises:
        ValueError: a learner SAM cannot wrap (the config's checks refuse it earlier).
    """
    base = BASE_OPTIMIZERS.get(str(learner).lower())
    if base is None:
        raise ValueError(f"learner: {learner!r} cannot be wrapped by SAM; allowed: {', '.join(BASE_OPTIMIZERS)}")
    common = dict(
        rho=config["rho"], eta=config["asam_eta"], interval=config["sam_interval"], lr=learning_rate, weight_decay=weight_decay
    )
    if config["sam_variant"] == "looksam":
        return LookSAM(params, base, alpha=config["looksam_alpha"], **common)
    return SAM(params, base, adaptive=config["sam_variant"] == "asam", **common)
