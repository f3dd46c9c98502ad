"""History: per-name series stay aligned with the steps, and the JSON form round-trips."""
from __future__ import annotations

import json

from ctflows.training.history import History


def test_series_first_reported_late_are_padded_and_the_json_form_round_trips():
    history = History()
    history.record_step(loss=1.0, nll=0.9, lr=1e-3, grad_norm=2.0, terms={}, counts={"nfe_forward": 20})
    history.record_step(loss=0.8, nll=0.7, lr=2e-3, grad_norm=1.5, terms={"kinetic_energy": 0.3}, counts={})
    history.record_step(loss=0.6, nll=0.5, lr=3e-3, grad_norm=1.0, terms={"kinetic_energy": 0.2}, counts={"nfe_forward": 26})
    history.skipped.append(2)
    history.evals.append({"step": 2, "time": 0.25, "kl": 0.1})
    history.trained_seconds, history.wall_time = 0.25, 0.75
    assert history.steps == 3 and history.lr == [1e-3, 2e-3, 3e-3]
    assert history.regularization == {"kinetic_energy": [None, 0.3, 0.2]}  # later reports extend the series
    assert history.counts == {"nfe_forward": [20, None, 26]}
    record = json.loads(json.dumps(history.to_dict()))
    assert record["steps"] == 3
    assert History.from_dict(record) == history
    copied = history.to_dict()  # a copy: changing it leaves the history as it was
    copied["losses"].append(0.4)
    copied["regularization"]["kinetic_energy"][0] = 9.0
    assert History.from_dict(record) == history and "steps" not in vars(history)
