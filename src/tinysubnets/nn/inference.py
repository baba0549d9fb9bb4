"""Task-identity inference: which finished task an input comes from, when no task id is given.

Every finished task keeps its subnetwork exactly (M_t, its values, its head), so each one can
be asked about any input; the subnetwork of the input's own task is the confident one (SupSup,
Wortsman et al. 2020). Each task's logits are scored by a confidence, higher meaning surer, and
the task with the highest score wins, per input, or for a whole batch known to come from one
task (scores summed over the batch).

The criteria (`CRITERIA`) compare heads of different class counts, so the two that depend on it
are normalised: ``entropy`` is minus the entropy divided by log k (0 = certain, -1 = uniform),
``max_prob`` is the top probability rescaled so that 1/k maps to 0 and 1 to 1; ``energy`` is
the logsumexp of the logits (Liu et al. 2020), which has no such baseline. ``oneshot``
(`nn.mixture`, SupSup's one-shot gradient) scores a whole batch from one forward and backward
through the mixture of all subnetworks, so it only names one task per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tinysubnets.errors import ConfigError, DataError
from tinysubnets.nn.mixture import oneshot_scores
from tinysubnets.nn.network import TSNNetwork, as_batch
from tinysubnets.tasks import Split, iterate_batches

CRITERIA = ("entropy", "max_prob", "energy", "activation")  # a score per input and task
BATCH_CRITERIA = ("oneshot",)  # one task per batch, not a score per input (`nn.mixture`)
DEFAULT_CRITERION = "entropy"  # a predictor whose run chose none (`choose_criterion`)
CALIBRATION_INPUTS = 256  # validation inputs of each task that `choose_criterion` scores


def check_criterion(criterion: str, per_batch: bool = False) -> str:
    """``criterion`` if it can infer tasks per input (or, with ``per_batch``, per batch)."""
    if criterion in BATCH_CRITERIA and not per_batch:
        raise ConfigError(f"the {criterion} criterion names one task for a whole batch (a "
                          f"gradient over the batch), not one per input: pass per_batch=True, "
                          f"or use one of {', '.join(CRITERIA)}")
    if criterion not in CRITERIA + BATCH_CRITERIA:
        raise ConfigError(f"unknown task-inference criterion {criterion!r}; known: "
                          f"{', '.join(CRITERIA + BATCH_CRITERIA)}")
    return criterion


def confidence(logits: Tensor, criterion: str, hidden: Tensor | None = None) -> Tensor:
    """One score per row of ``logits`` (N, k): how sure the head is, higher = surer; for
    ``activation``, the log mean square of ``hidden`` (the task's first hidden representation,
    (N, ...)), how strongly its first layer answers."""
    check_criterion(criterion)
    if criterion == "activation":
        if hidden is None:
            raise ValueError("the activation criterion needs the hidden representation")
        flat = hidden.float().reshape(len(hidden), -1)
        return torch.log(flat.square().mean(dim=1) + 1e-30)
    logits = logits.float()
    if criterion == "energy":
        return torch.logsumexp(logits, dim=1)
    k = logits.shape[1]
    log_p = torch.log_softmax(logits, dim=1)
    if criterion == "entropy":
        return (log_p.exp() * log_p).sum(dim=1) / math.log(k) if k > 1 else log_p[:, 0] * 0
    return (log_p.max(dim=1).values.exp() - 1.0 / k) / (1.0 - 1.0 / k)


def choose_tasks(scores: Tensor, per_batch: bool = False) -> Tensor:
    """The most confident task per input (column of ``scores``), or for the whole batch (the
    highest summed score, the same task for every input). Ties go to the earlier task."""
    if per_batch:
        return scores.sum(dim=1).argmax().expand(scores.shape[1]).clone()
    return scores.argmax(dim=0)


class TaskPredictor:
    """Prediction over the finished tasks, with or without a task id: what a trained learner
    and a loaded model file share. A subclass gives `num_tasks`, `logits(x, t)` (checked
    inputs, task t's logits), `labels(t)` (task t's labels, in class-index order),
    `task_weights(t)`, ``net`` and ``device``, and may set ``criterion``: the one its run
    measured best (`choose_criterion`), used when a call names none."""

    num_tasks: int
    net: TSNNetwork
    device: torch.device
    criterion: str | None = None

    @property
    def default_criterion(self) -> str:
        """The criterion a call without one uses: the run's choice, else entropy."""
        return self.criterion or DEFAULT_CRITERION

    def logits(self, x: object, task_id: int) -> Tensor:  # pragma: no cover (abstract)
        raise NotImplementedError

    def logits_and_hidden(self, x: object, task_id: int
                          ) -> tuple[Tensor, Tensor]:  # pragma: no cover (abstract)
        """`logits` and the first hidden representation, from one forward."""
        raise NotImplementedError

    def labels(self, task_id: int) -> list:  # pragma: no cover (abstract)
        raise NotImplementedError

    def task_weights(self, task_id: int) -> dict[str, Tensor]:  # pragma: no cover (abstract)
        raise NotImplementedError

    def _checked(self, x: object) -> Tensor:
        """``x`` as a batch on the model's device, refused if no task is finished or if it
        holds NaN or infinite values (every task would be as (un)confident on them)."""
        if not self.num_tasks:
            raise ConfigError("the model holds no finished task: no task to infer")
        x = as_batch(x)
        # The sum is a 30x cheaper test; only a non-finite sum (or an overflow of huge finite
        # values) needs the exact one.
        if x.is_floating_point() and not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
            raise DataError("inputs hold NaN or infinite values: every task would be as "
                            "(un)confident on them, no task can be inferred")
        return x

    def _oneshot_task(self, x: object) -> Tensor:
        """The batch's task by SupSup's one-shot gradient (`nn.mixture`), for every input."""
        x = self.net.fit_input(self._checked(x).to(self.device))
        if not len(x):
            return torch.zeros(0, dtype=torch.int64)
        weights = [self.task_weights(t) for t in range(self.num_tasks)]
        task = oneshot_scores(self.net, x, weights).argmax().cpu()
        return task.expand(len(x)).clone()

    def _scored(self, x: object, criterion: str | None) -> tuple[list[Tensor], Tensor]:
        """Every finished task's logits on ``x`` and the (T, N) scores, one forward a task."""
        logits, scores = self._all_scored(x, (criterion or self.default_criterion,))
        return logits, next(iter(scores.values()))

    def _all_scored(self, x: object, criteria: tuple[str, ...]
                    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """`_scored` for several criteria from the same forwards."""
        for criterion in criteria:
            check_criterion(criterion)
        x = self._checked(x)  # once, not once a task
        logits: list[Tensor] = []
        scores: dict[str, list[Tensor]] = {c: [] for c in criteria}
        for t in range(self.num_tasks):
            out, hidden = self.logits_and_hidden(x, t)
            logits.append(out)
            for criterion in criteria:
                scores[criterion].append(confidence(out, criterion, hidden))
        return logits, {c: torch.stack(s) for c, s in scores.items()}

    def task_scores(self, x: object, criterion: str | None = None) -> Tensor:
        """(T, N): how confident each finished task's subnetwork is on each input (None: the
        default criterion)."""
        return self._scored(x, criterion)[1]

    def infer_task(self, x: object, criterion: str | None = None, per_batch: bool = False
                   ) -> Tensor:
        """The task each input most likely comes from (LongTensor (N,)); ``per_batch``: one
        task for the whole batch, known to come from a single task (the only way ``oneshot``
        infers)."""
        if check_criterion(criterion or self.default_criterion, per_batch) in BATCH_CRITERIA:
            return self._oneshot_task(x)
        return choose_tasks(self.task_scores(x, criterion), per_batch).cpu()

    def predict(self, x: object, task_id: int | None = None, criterion: str | None = None,
                per_batch: bool = False) -> np.ndarray:
        """Predicted labels, as the user's own label values (int64 for integer labels, str for
        strings). Without ``task_id`` the task is inferred (`infer_task`, with ``criterion``
        or the default one) and each input gets its inferred task's label: class-incremental
        use."""
        if task_id is not None:
            index = self.logits(x, task_id).argmax(1).cpu().numpy()
            return np.asarray(self.labels(task_id))[index]
        if check_criterion(criterion or self.default_criterion, per_batch) in BATCH_CRITERIA:
            tasks = self._oneshot_task(x)
            if not len(tasks):
                return np.asarray(self.labels(0))[:0]
            return self.predict(x, int(tasks[0]))  # one forward of the task found
        logits, scores = self._scored(x, criterion)
        tasks = choose_tasks(scores, per_batch).cpu().numpy()
        used = np.unique(tasks).tolist()
        tables = {t: np.asarray(self.labels(t)) for t in used}
        kinds = {table.dtype.kind for table in tables.values()}  # ints and strs never mix
        out = np.empty(len(tasks), np.result_type(*tables.values()) if len(kinds) == 1
                       else object)
        for t in used:
            rows = np.flatnonzero(tasks == t)
            index = logits[t][torch.from_numpy(rows).to(logits[t].device)].argmax(1).cpu()
            out[rows] = tables[t][index.numpy()]
        return out


def choose_criterion(predictor: TaskPredictor, splits: list[Split],
                     per_task: int = CALIBRATION_INPUTS, chunk: int = 512
                     ) -> tuple[str, dict[str, float]]:
    """The criterion that finds the task of the most single inputs among the first
    ``per_task`` of each finished task's split (validation data: the test data stay unseen),
    and each criterion's rate (%). No criterion is best everywhere (docs/predict.md: on
    p-MNIST the first layer's activation, on split CIFAR-10 a head's confidence), so a run
    measures it on its own tasks; ties go to the earlier criterion of `CRITERIA`."""
    # All tasks' inputs in chunks of ``chunk``: T forwards a chunk, not T a task (a learner
    # recomputes a subnetwork's weights at every call).
    xs = [split.x[: min(per_task, len(split))] for split in splits]
    x = torch.cat([torch.as_tensor(v) for v in xs])
    truth = torch.cat([torch.full((len(v),), t) for t, v in enumerate(xs)])
    found = dict.fromkeys(CRITERIA, 0)
    for start in range(0, len(x), chunk):
        _, scores = predictor._all_scored(x[start : start + chunk], CRITERIA)
        for criterion, s in scores.items():
            found[criterion] += int((choose_tasks(s.cpu()) == truth[start : start + chunk]).sum())
    rates = {c: 100.0 * n / max(1, len(x)) for c, n in found.items()}
    return max(CRITERIA, key=lambda c: (rates[c], -CRITERIA.index(c))), rates


@dataclass(frozen=True)
class InferenceScores:
    """One task's test split through task inference (all in %): how often its task is found
    per input and per batch of ``batch`` inputs, and how often the answer is right with the
    inferred task (class-incremental: a wrong task is a wrong answer) and with the given one
    (task-incremental). ``inferred[s]``: inputs attributed to task s (a row of the heatmap)."""

    task_found: float
    batch_found: float
    class_incremental: float
    task_incremental: float
    inferred: list[int]


def measure_inference(
    predictor: TaskPredictor, splits: list[Split], criterion: str | None = None,
    batch: int = 64, chunk: int = 1024,
) -> list[InferenceScores]:
    """Task inference on each finished task's test split (``splits[t]``), ``chunk`` inputs at
    a time (every task's logits of a chunk are held at once; batches of ``batch`` are taken
    within a chunk, so ``chunk`` should be a multiple of it). None: the default criterion."""
    criterion = check_criterion(criterion or predictor.default_criterion)
    return measure_criteria(predictor, splits, (criterion,), batch, chunk)[criterion]


def measure_criteria(
    predictor: TaskPredictor, splits: list[Split], criteria: tuple[str, ...],
    batch: int = 64, chunk: int = 1024,
) -> dict[str, list[InferenceScores]]:
    """`measure_inference` for several criteria, from the same forwards (one per task and
    chunk, whatever the number of criteria)."""
    counts = {c: [] for c in criteria}
    for t, split in enumerate(splits):
        found = dict.fromkeys(criteria, 0)
        right_ci = dict.fromkeys(criteria, 0)
        batches_found = dict.fromkeys(criteria, 0)
        inferred = {c: torch.zeros(predictor.num_tasks, dtype=torch.int64) for c in criteria}
        right_ti = batches = 0
        for x, y in iterate_batches(split, chunk):
            y = y.cpu()
            logits, scores = predictor._all_scored(x, criteria)
            own = logits[t].argmax(1).cpu()
            right_ti += int((own == y).sum())
            starts = range(0, len(x) - batch + 1, batch)  # whole batches only
            batches += len(starts)
            for c in criteria:
                s = scores[c].cpu()
                tasks = choose_tasks(s)
                found[c] += int((tasks == t).sum())
                right_ci[c] += int(((tasks == t) & (own == y)).sum())
                inferred[c] += torch.bincount(tasks, minlength=predictor.num_tasks)
                batches_found[c] += sum(int(choose_tasks(s[:, b : b + batch], True)[0] == t)
                                        for b in starts)
        n = max(1, len(split))
        for c in criteria:
            counts[c].append(InferenceScores(
                100.0 * found[c] / n, 100.0 * batches_found[c] / max(1, batches),
                100.0 * right_ci[c] / n, 100.0 * right_ti / n, inferred[c].tolist()))
    return counts
