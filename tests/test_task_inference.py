"""Prediction without a task id: each finished task's subnetwork is asked, the most confident
one answers; the learner and its model file infer the same tasks, and the kept per-task
weights give the file's logits bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

from tinysubnets import load, run
from tinysubnets.cli import main
from tinysubnets.errors import ConfigError
from tinysubnets.nn.inference import CRITERIA, choose_tasks, confidence, measure_inference
from tinysubnets.scenarios import build_scenario


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config()
    torch.set_num_threads(2)
    _, learner = run(cfg, out, progress=False)
    splits = [task.split("test") for task in build_scenario(cfg).tasks]
    return learner, load(out / "model.tsn"), [s.x for s in splits], out, splits


@pytest.mark.parametrize("criterion", ["entropy", "max_prob", "energy"])
def test_each_task_is_found_from_its_own_inputs(trained, criterion: str) -> None:
    _, model, tests, _, _ = trained
    for t, x in enumerate(tests):
        per_input = (model.infer_task(x, criterion) == t).float().mean().item()
        assert per_input > 0.8, (criterion, t, per_input)  # chance is 1/3
        batches = [model.infer_task(x[i : i + 64], criterion, per_batch=True)
                   for i in range(0, len(x) - 63, 64)]
        assert all(b.unique().tolist() == [t] for b in batches), (criterion, t)


def test_the_first_layer_answers_most_to_its_own_task(trained) -> None:
    # After 2 epochs on the small subset this is weaker than the logit criteria (task 1 is
    # found for half its inputs); on full p-MNIST it is the best (docs/predict.md).
    _, model, tests, _, _ = trained
    found = [(model.infer_task(x, "activation") == t).float().mean().item()
             for t, x in enumerate(tests)]
    assert sum(found) / len(found) > 0.7 and min(found) > 1 / 3, found  # chance is 1/3


def test_the_learner_and_its_file_infer_the_same(trained) -> None:
    learner, model, tests, _, _ = trained
    x = torch.cat([x[:100] for x in tests])
    for criterion in CRITERIA:
        assert torch.equal(learner.task_scores(x, criterion), model.task_scores(x, criterion))
    assert np.array_equal(learner.predict(x), model.predict(x))


def test_predict_without_a_task_id_answers_with_the_inferred_task(trained) -> None:
    _, model, tests, _, _ = trained
    x = torch.cat([x[:50] for x in tests])
    tasks = model.infer_task(x)
    labels = model.predict(x)
    for t in range(model.num_tasks):
        rows = tasks == t
        assert np.array_equal(labels[rows.numpy()], model.predict(x[rows], t))
    assert labels.dtype == np.int64


def test_kept_weights_give_the_uncached_logits_bit_for_bit(trained) -> None:
    _, model, tests, _, _ = trained
    x = tests[0][:64]
    for t in range(model.num_tasks):
        direct = model.net.task_logits(x, t, model.masks)  # masked weights computed anew
        assert torch.equal(model.logits(x, t), direct)
    one_task = model.cache_bytes // model.num_tasks
    model.max_cache_bytes = one_task  # room for one task: the others are dropped
    for t in reversed(range(model.num_tasks)):
        assert torch.equal(model.logits(x, t), model.net.task_logits(x, t, model.masks))
        assert model.cache_bytes == one_task


def test_scores_and_choices() -> None:
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.0]])
    hidden = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # the first answers more strongly
    for criterion in CRITERIA:
        s = confidence(logits, criterion, hidden)
        assert s[0] > s[1]
    assert torch.equal(confidence(logits, "entropy", hidden), confidence(logits, "entropy"))
    assert confidence(torch.zeros(3, 4), "entropy").allclose(torch.full((3,), -1.0))
    assert confidence(torch.zeros(3, 4), "max_prob").allclose(torch.zeros(3))
    scores = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.8, 0.3]])
    assert choose_tasks(scores).tolist() == [0, 1, 1]
    assert choose_tasks(scores, per_batch=True).tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match="unknown task-inference criterion 'vote'"):
        confidence(logits, "vote")


def test_eval_without_task_ids(trained, capsys) -> None:
    _, model, tests, out, splits = trained
    assert main(["eval", str(out / "model.tsn"), "--infer-task", "--criterion", "energy"]) == 0
    printed = capsys.readouterr().out
    rows = measure_inference(model, splits, "energy")
    mean_ci = sum(r.class_incremental for r in rows) / len(rows)
    assert f"{mean_ci:.2f} with it inferred (class-incremental)" in printed
    for r in rows:  # a wrong task is a wrong answer; found per input, not more
        assert r.class_incremental <= min(r.task_found, r.task_incremental)
        assert sum(r.inferred) == len(tests[0])



def test_logits_with_the_hidden_representation_are_the_logits(trained) -> None:
    learner, model, tests, _, _ = trained
    x = tests[1][:64]
    for predictor in (learner, model):
        for t in range(predictor.num_tasks):
            logits, hidden = predictor.logits_and_hidden(x, t)
            assert torch.equal(logits, predictor.logits(x, t))
            assert hidden.shape == (64, 100)  # flatten, fc1, relu1 of the 784-100-100 MLP


def test_non_finite_inputs_infer_no_task(trained) -> None:
    from tinysubnets.errors import DataError

    learner, model, tests, _, _ = trained
    x = tests[0][:8].clone()
    x[3, 5] = float("nan")
    for predictor in (learner, model):
        with pytest.raises(DataError, match="NaN or infinite"):
            predictor.predict(x)
        with pytest.raises(DataError, match="NaN or infinite"):
            predictor.infer_task(x.numpy())


def test_the_run_chooses_its_criterion_on_validation_data(trained) -> None:
    from conftest import with_header

    from tinysubnets.artifact.reader import decode, parse
    from tinysubnets.errors import DataError
    from tinysubnets.nn.inference import choose_criterion

    learner, model, tests, out, _ = trained
    vals = [task.split("val") for task in build_scenario(tiny_config()).tasks]
    best, rates = choose_criterion(learner, vals)
    assert rates[best] == max(rates.values()) and learner.criterion == best
    assert model.criterion == best == model.header["inference"]["criterion"]
    x = torch.cat(tests)[::7]
    assert np.array_equal(model.predict(x), model.predict(x, criterion=best))
    data = (out / "model.tsn").read_bytes()
    plain = decode(parse(with_header(data, lambda h: h.pop("inference")), "old"))
    assert plain.criterion is None and plain.default_criterion == "entropy"
    for bad in ({"criterion": "loudest"}, ["entropy"], {"criterion": 3}):
        with pytest.raises(DataError, match="inference entry .* does not name a criterion"):
            parse(with_header(data, lambda h, b=bad: h.update(inference=b)), "forged")


def test_the_chosen_criterion_survives_the_checkpoint(trained) -> None:
    from tinysubnets.runs import setup

    learner = trained[0]
    fresh = setup(tiny_config(), None, None).new_learner(tiny_config())
    assert fresh.criterion is None
    fresh.load_state_dict(learner.state_dict())
    assert fresh.criterion == learner.criterion is not None


def test_a_one_hot_mixture_is_that_task_bit_for_bit(trained) -> None:
    from tinysubnets.nn.mixture import mixture_logits

    learner, model, tests, _, _ = trained
    x = tests[2][:32]
    for predictor in (learner, model):
        weights = [predictor.task_weights(t) for t in range(predictor.num_tasks)]
        for t in range(predictor.num_tasks):
            alpha = torch.nn.functional.one_hot(torch.tensor(t), predictor.num_tasks).float()
            mixed = mixture_logits(predictor.net, x, weights, alpha)
            assert torch.equal(mixed, predictor.logits(x, t)), t


def test_the_oneshot_score_is_minus_the_entropy_slope(trained) -> None:
    from tinysubnets.nn.mixture import mixture_logits, oneshot_scores

    _, model, tests, _, _ = trained
    x, tasks = tests[0][:64], model.num_tasks
    weights = [model.task_weights(t) for t in range(tasks)]

    def entropy(alpha: torch.Tensor) -> float:
        log_p = torch.log_softmax(mixture_logits(model.net, x, weights, alpha).double(), 1)
        return float(-(log_p.exp() * log_p).sum())

    scores, eps = oneshot_scores(model.net, x, weights), 1e-3
    for t in range(tasks):
        step = torch.nn.functional.one_hot(torch.tensor(t), tasks).float() * eps
        uniform = torch.full((tasks,), 1.0 / tasks)
        slope = (entropy(uniform + step) - entropy(uniform - step)) / (2 * eps)
        assert abs(-slope - float(scores[t])) <= 0.02 * abs(slope) + 1e-2, (t, slope, scores)


def test_oneshot_names_one_task_per_batch_only(trained) -> None:
    from copy import deepcopy

    from tinysubnets.nn.mixture import oneshot_scores

    learner, model, tests, _, _ = trained
    x = tests[1][:64]
    found = model.infer_task(x, "oneshot", per_batch=True)
    best = int(oneshot_scores(model.net, x, [model.task_weights(t) for t in range(3)]).argmax())
    assert found.tolist() == [best] * 64
    assert torch.equal(learner.infer_task(x, "oneshot", per_batch=True), found)
    assert np.array_equal(model.predict(x, criterion="oneshot", per_batch=True),
                          model.predict(x, best))
    assert model.infer_task(x[:0], "oneshot", per_batch=True).shape == (0,)
    with pytest.raises(ConfigError, match="one task for a whole batch.*per_batch=True"):
        model.infer_task(x, "oneshot")
    with pytest.raises(ConfigError, match="one task for a whole batch"):
        model.task_scores(x, "oneshot")
    net = deepcopy(model.net)
    net.heads[1] = torch.nn.Linear(net.out_features, 4)
    with pytest.raises(ConfigError, match="heads have 4, 10 classes"):
        oneshot_scores(net, x, [model.task_weights(t) for t in range(3)])


def test_criteria_measured_together_are_each_measured_alone(trained) -> None:
    from tinysubnets.nn.inference import measure_criteria

    _, model, _, _, splits = trained
    small = [type(s)(s.x[:300], s.y[:300]) for s in splits]
    together = measure_criteria(model, small, CRITERIA, chunk=256)
    for criterion in CRITERIA:
        assert together[criterion] == measure_inference(model, small, criterion, chunk=256)
