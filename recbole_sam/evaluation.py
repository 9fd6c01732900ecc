"""Full-ranking evaluation without the user's history items, on RecBole's evaluation path.

RecBole ranks every item for sequential models, including the items the user already has in
their sequence (its full-sort loader passes no history for them). The S3Rec, CL4SRec and ICLRec
code, which the SAMRec paper's numbers come from, removes them first: at validation the items
before the valid target (items[:-2]), at test those before the test target (items[:-1]). This
mixin does the same in the one place RecBole builds the score matrix
(``Trainer._full_sort_batch_eval``), as one indexed fill; RecBole's collector, evaluator and
metrics do the rest. As in RecBole's own masking for general models, a target is never masked,
even when the user had it before.

``OneTargetCollector`` is RecBole's collector with a cheaper way to the same ``rec.topk``
numbers when each ranked row has one target, as in sequential full ranking: RecBole builds a
dense [users x items] 0/1 matrix of positives and sums it, which took longer than scoring.

Properties: ``eval_mask_history`` (mask or not), ``eval_mask_value`` (``exclude``: history items
at -inf, the target kept; ``zero``: the reference code's ``rating_pred[train_matrix > 0] = 0``,
which also zeroes a target that repeats a history item, and ranks history items above every
item the model scores below 0) and ``eval_report_both`` (also compute the other variant from the
same scores; its metrics get the prefix ``unmasked_`` or ``masked_``).
"""

import numpy as np
import torch
from recbole.evaluator import Collector

COLLECTED = ("rec.items", "rec.topk", "rec.meanrank", "rec.score", "data.label")


class OneTargetCollector(Collector):
    """RecBole's ``Collector``; when only ``rec.topk`` is needed (Hit, NDCG, Recall, MRR, ...)
    and row i's only target is ``positive_i[i]``, it compares the top-k ids with the target
    instead of gathering from a dense matrix of positives. Same tensor, same metrics."""

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        rows = len(scores_tensor)
        # Labeled evaluation (context-aware models: AUC, LogLoss) passes no positives.
        one_target = positive_u is not None and len(positive_u) == rows and torch.equal(positive_u.cpu(), torch.arange(rows))
        if not one_target or [key for key in COLLECTED if self.register.need(key)] != ["rec.topk"]:
            return super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        _, topk_idx = torch.topk(scores_tensor, max(self.topk), dim=-1)
        hits = (topk_idx == positive_i.to(topk_idx.device).unsqueeze(1)).int()
        targets_per_row = torch.ones(rows, 1, dtype=torch.long, device=hits.device)
        self.data_struct.update_tensor("rec.topk", torch.cat((hits, targets_per_row), dim=1))


class HistoryMaskedEvalMixin:
    """Mix in before a RecBole trainer class (needs splits from ``SAMSequentialDataset``)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.eval_collector = OneTargetCollector(config)
        self.mask_history = bool(config["eval_mask_history"])
        self.mask_value = config["eval_mask_value"] or "exclude"
        self.report_both = bool(config["eval_report_both"])
        self._other_collector = OneTargetCollector(config) if self.report_both else None
        self._eval_dataset = None

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        self._eval_dataset = getattr(eval_data, "_dataset", None)
        result = super().evaluate(eval_data, load_best_model, model_file, show_progress)
        if self.report_both and result is not None and self._history_known():
            self._other_collector.model_collect(self.model)
            other = self.evaluator.evaluate(self._other_collector.get_data_struct())
            prefix = "unmasked_" if self.mask_history else "masked_"
            result.update({prefix + key: value for key, value in other.items()})
        return result

    def _history_known(self):
        return getattr(self._eval_dataset, "user_sequences", None) is not None

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if not (self.mask_history or self.report_both) or not self._history_known():
            return interaction, scores, positive_u, positive_i
        if self.report_both and self.mask_history:
            self._other_collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        masked = self._mask_history(scores, interaction, positive_u, positive_i)
        if self.report_both and not self.mask_history:
            self._other_collector.eval_batch_collect(masked, interaction, positive_u, positive_i)
            masked = None
        return interaction, masked if self.mask_history else scores, positive_u, positive_i

    def _mask_history(self, scores, interaction, positive_u, positive_i):
        """``scores`` with each user's history items at -inf and the targets kept
        (``eval_mask_value: exclude``), or with all of them at 0 (``zero``); in place, unless
        the unmasked scores are still needed."""
        dataset = self._eval_dataset
        rows, items = dataset.user_sequences.history(interaction[dataset.uid_field], dataset.split_index)
        masked = scores.clone() if not self.mask_history else scores
        if self.mask_value == "zero":
            masked[rows.to(scores.device), items.to(scores.device)] = 0
            return masked
        target_scores = scores[positive_u, positive_i].clone()
        masked[rows.to(scores.device), items.to(scores.device)] = -np.inf
        masked[positive_u, positive_i] = target_scores
        return masked
