"""Training the answer stage's small models: the ranker's conditional logit, the decision and its probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag_eval.train import (Example, fit_conditional_logit, load_examples, rates, recall_at, save_examples,
                            train_decision)


def planted_groups(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Groups of 12 candidates whose positive has the highest 2*x0 - x1 plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.normal(size=(12, 3))
        utility = 2 * x[:, 0] - x[:, 1] + rng.normal(scale=0.3, size=12)
        gold = np.zeros(12, dtype=bool)
        gold[int(np.argmax(utility))] = True
        out.append((x, gold))
    return out


def test_the_conditional_logit_finds_the_planted_ranking() -> None:
    w = fit_conditional_logit(planted_groups(300))
    assert w[0] > 0 > w[1] and abs(w[2]) < 0.3 * abs(w[0]), w
    held_out = planted_groups(100, seed=1)
    assert recall_at(held_out, w, (1,))["recall@1"] > 0.6 > recall_at(held_out, -w, (1,))["recall@1"]


def examples(n: int, seed: int, hidden: bool = True) -> list[Example]:
    """Answerable examples score higher on 'evidence' and carry a planted direction in their hidden state."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        answerable = i % 2 == 0
        state = rng.normal(size=8) + (1.5 if answerable else -1.5) * np.eye(8)[3]
        out.append(Example(f"q{i // 2}", "answerable" if answerable else "unanswerable",
                           {"evidence": float(rng.normal(1.0 if answerable else 0.0)), "noise": float(rng.normal())},
                           state.astype(np.float32) if hidden else None, answerable, 300))
    return out


def test_the_decision_keeps_the_asked_share_of_answerable_dev_questions() -> None:
    model, probe = train_decision(examples(400, 0), examples(200, 1), ["evidence", "noise"], "decision-test", keep=0.9)
    assert probe is None and model.threshold is not None
    dev = model.meta["dev"]
    assert dev["declined_answerable"] <= 0.1 and dev["declined_unanswerable"] > 0.3 and dev["auc"] > 0.7
    assert model.coef[0] > abs(model.coef[1]), "the informative feature carries the weight"


def test_the_probe_is_fitted_first_and_the_decision_reads_its_out_of_fold_score() -> None:
    model, probe = train_decision(examples(400, 0), examples(200, 1), ["evidence", "probe"], "decision-test",
                                  keep=0.9, probe_c=0.1)
    assert probe is not None and probe.name == "probe-test" and len(probe.features) == 8
    assert int(np.argmax(np.abs(probe.weights))) == 3, "the planted direction"
    assert model.meta["dev"]["auc"] > model.meta["single_feature_dev_auc"]["evidence"]
    with pytest.raises(ValueError, match="probe_c"):
        train_decision(examples(40, 0), examples(20, 1), ["probe"], "decision-test")


def test_collected_examples_round_trip(tmp_path: Path) -> None:
    ex = examples(6, 0)
    save_examples(ex, tmp_path, "train")
    back = load_examples(tmp_path, "train")
    assert [(e.qid, e.setting, dict(e.features), e.answerable) for e in back] == \
        [(e.qid, e.setting, dict(e.features), e.answerable) for e in ex]
    assert np.allclose(np.asarray([e.hidden for e in back]), np.asarray([e.hidden for e in ex]), atol=1e-2)


def test_rates_at_a_threshold() -> None:
    r = rates([0.9, 0.8, 0.2, 0.1], [True, True, False, False], 0.5)
    assert r == {"declined_answerable": 0.0, "declined_unanswerable": 1.0, "auc": 1.0}
