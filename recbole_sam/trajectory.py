"""The trajectory loss (``sam_variant: saf``): flatness without SAM's second backward pass.

SAF (Du et al., NeurIPS'22) and SharpCF (Chen et al., RecSys'23) replace SAM's second forward
and backward pass by a regulariser that keeps the model's outputs close to those of the model
a few epochs back, along the training trajectory:

    L_saf(Θ_t) = L(Θ_t) + λ · R,    R = (1/K) Σ_k mean( (o_k(Θ_t) − o_k(Θ_{e−E}))² )

where o_1..o_K are the outputs of the model's top-level encoding calls in this batch's loss
(``forward``, or ``encode``/``encode_packed`` where our SASRec's loss calls them: the sequence
representations of a sequential model, the user and item embeddings of BPR or LightGCN, the
logits of a context-aware model), Θ_{e−E} the weights at the end of epoch e − E (E =
``saf_lag``), and λ = ``saf_weight``. It is SharpCF's squared difference, on representations
rather than on scores, and it is off during the first E epochs.

What is stored, and its cost: SAF keeps each training sample's past outputs, which needs a
sample identity that RecBole's shuffled batches do not carry; here the past weights are kept
instead, E snapshots of the model's ``state_dict`` plus one model copy that evaluates them:
(E + 1) × the model's parameters and buffers (SASRec on Beauty, ~0.9M floats: ~3.5 MB each).
Per batch the past model repeats the recorded calls without gradients, with the same arguments
and random draws (dropout masks), so R is exactly 0 when the weights are the same; the loss
itself, negative sampling included, is not repeated, and there is no second backward pass
(SASRec on ml-100k: ~1.6x plain per epoch against SAM's ~2x; docs/benchmarks.md). The
snapshots travel with the optimizer's state, so a resumed run goes on with the same past model.
"""

import copy
from collections import deque
from contextlib import contextmanager

import torch

from recbole_sam.rng import RandomDraws

# Methods whose outermost call's output is compared (those the model has).
OUTPUT_METHODS = ("forward", "encode", "encode_packed")


def _tensors(output):
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item)]
    return []


class Call:
    """One outermost call of an output method: its name, arguments, the random generators'
    state when it started, and the float tensors it returned."""

    def __init__(self, name, args, kwargs, draws):
        self.name, self.args, self.kwargs, self.draws, self.outputs = name, args, kwargs, draws, []


@contextmanager
def captured_calls(model):
    """Record the outermost calls of ``model``'s ``forward``, ``encode`` and ``encode_packed``
    inside the block (calls nested in them are not recorded).

    Yields:
        list: filled with one ``Call`` per recorded call, in call order.
    """
    recorded, depth = [], [0]

    def wrap(name, method):
        def recording(*args, **kwargs):
            call = Call(name, args, kwargs, RandomDraws()) if depth[0] == 0 else None
            depth[0] += 1
            try:
                output = method(*args, **kwargs)
            finally:
                depth[0] -= 1
            if call is not None:
                call.outputs = _tensors(output)
                recorded.append(call)
            return output

        return recording

    names = [name for name in OUTPUT_METHODS if callable(getattr(model, name, None))]
    for name in names:
        setattr(model, name, wrap(name, getattr(model, name)))  # an instance attribute shadows the method
    try:
        yield recorded
    finally:
        for name in names:
            delattr(model, name)


def mean_squared_difference(current, past):
    """R = (1/K) Σ_k mean((current_k − past_k)²) over K pairs of tensors of the same shapes.

    Raises:
        ValueError: the two lists do not pair up.
    """
    if len(current) != len(past) or any(a.shape != b.shape for a, b in zip(current, past)):
        raise ValueError("trajectory loss: the current and the past model's outputs do not pair up")
    if not current:
        raise ValueError("trajectory loss: the model's loss called none of forward, encode, encode_packed")
    return sum(((a - b.detach()) ** 2).mean() for a, b in zip(current, past)) / len(current)


class TrajectoryLoss:
    """λ · R against the model ``lag`` epochs back (see the module doc).

    Args:
        model (torch.nn.Module): the model being trained.
        weight (float): λ (``saf_weight``), >= 0.
        lag (int): E (``saf_lag``), >= 1.

    Use: ``start_epoch()`` before an epoch's batches, ``wrap(loss_func)`` as the batch loss,
    ``end_epoch()`` after the last batch.
    """

    def __init__(self, model, weight, lag):
        self.model, self.weight, self.lag = model, weight, lag
        self.snapshots = deque(maxlen=lag)  # the weights at the end of each of the last E epochs
        self.past = None  # the model at the end of epoch e - E, while the regulariser is on
        self.values = []  # R of each batch of the current epoch

    def start_epoch(self):
        self.values = []
        if len(self.snapshots) < self.lag or self.weight == 0:
            self.past = None
            return
        if self.past is None:
            self.past = copy.deepcopy(self.model)
            self.past.requires_grad_(False)
            self.past.data_draws = None
        self.past.load_state_dict(self.snapshots[0])

    def end_epoch(self):
        self.snapshots.append({key: value.detach().clone() for key, value in self.model.state_dict().items()})

    def regulariser(self, interaction, current_loss):
        """R for the batch ``interaction``, given a function that runs the current model's loss.

        The past model repeats only the recorded output calls, with the same arguments and the
        random generators as each call found them (the same dropout masks), not the whole loss.

        Returns:
            tuple: (the current loss, R), R with a gradient towards the current model only.
        """
        with captured_calls(self.model) as calls:
            loss = current_loss(interaction)
        after = RandomDraws()
        self.past.train(self.model.training)
        current, past = [], []
        with torch.no_grad():
            for call in calls:
                call.draws.restore()
                current += call.outputs
                past += _tensors(getattr(self.past, call.name)(*call.args, **call.kwargs))
        after.restore()  # the generators go on as after one pass
        return loss, mean_squared_difference(current, past)

    def wrap(self, loss_func):
        """``loss_func`` plus λ · R (``loss_func`` unchanged while the regulariser is off).
        A tuple loss (RecBole's parts) gets λ · R added to its first part."""
        if self.past is None:
            return loss_func

        def loss_with_trajectory(interaction):
            loss, r = self.regulariser(interaction, loss_func)
            self.values.append(r.item())
            if isinstance(loss, tuple):
                return (loss[0] + self.weight * r,) + tuple(loss[1:])
            return loss + self.weight * r

        return loss_with_trajectory

    def state_dict(self):
        return {"snapshots": list(self.snapshots)}

    def load_state_dict(self, state):
        device = next(self.model.parameters()).device
        snapshots = [{key: value.to(device) for key, value in snapshot.items()} for snapshot in state["snapshots"]]
        self.snapshots = deque(snapshots, maxlen=self.lag)
