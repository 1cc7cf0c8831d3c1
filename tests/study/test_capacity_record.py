"""capacity.json holds the converged, restricted networks' own figures (quality, synapses, MACs), each recomputed
here from a network captured at the step it measures."""

from __future__ import annotations

import shutil

import torch

import evosynth.study.capacity as capacity
import evosynth.task.training as training
from conftest import (
    IMAGE_SIZE,
    as_tuple,
    clone_state,
    counted_macs,
    fingerprint,
    fingerprinted,
    model_with,
    quality_of,
    read,
)
from evosynth.core.precision import rounded
from evosynth.storage.runs import RunFolder
from evosynth.study.capacity import CAPACITY_FILE, KINDS, RECORDED, measure_capacity
from evosynth.task.metrics import Quality

# ------------------------------------------------------------------------------------------ capacity.json


def test_capacity_entries_are_the_converged_restricted_networks(smoke_run, data, data_dir, tmp_path, monkeypatch):
    config, out = smoke_run
    run = shutil.copytree(out, tmp_path / "run")
    rule = config.resolved_preset.ancestor
    # scripted validation AP50 per epoch: the best epoch is the 2nd for one network, the 3rd for the other
    scripted = {"trained on": [0.1, 0.5, 0.3], "from scratch": [0.2, 0.2, 0.6]}
    trainings, measured = [], []
    real_train, real_measure = capacity.train, capacity.restrict_and_measure

    def spy_train(model, masks, *args, **kwargs):
        values, states = iter(scripted[kwargs["description"].split(" ", 2)[2]]), []

        def validation(model, split):
            states.append(clone_state(model))
            return Quality(0.0, 0.0, next(values))

        monkeypatch.setattr(training, "evaluate", validation)
        curve = real_train(model, masks, *args, **kwargs)
        trainings.append((kwargs["description"], curve, states))
        return curve

    def spy_measure(config, data, number, parent, model, masks, curve):
        fp32 = clone_state(model)
        result = real_measure(config, data, number, parent, model, masks, curve)
        measured.append((fp32, clone_state(model), masks))
        return result

    monkeypatch.setattr(capacity, "train", spy_train)
    monkeypatch.setattr(capacity, "restrict_and_measure", spy_measure)
    fingerprinted(monkeypatch)
    record = measure_capacity(run, [2], data_dir)
    stored = read(run / CAPACITY_FILE)["generations"]["2"]
    assert record["generations"]["2"] == stored
    folder = RunFolder(run)
    evolved, ancestor = folder.load(2), folder.load(1)
    architecture = evolved.model.architecture
    assert len(trainings) == len(measured) == 2
    for kind, (description, curve, states), (fp32, restricted, masks) in zip(KINDS, trainings, measured,
                                                                              strict=True):
        entry = stored[kind]
        assert kind.replace("_", " ") in description
        assert entry["best_epoch"] == {"trained_on": 2, "from_scratch": 3}[kind]
        kept = states[entry["best_epoch"] - 1]  # the network measured is the best epoch's
        assert all(torch.equal(fp32[n], t) for n, t in kept.items())
        restricted_model = model_with(restricted, architecture)
        assert all(torch.equal(restricted[n], t) for n, t in rounded(fp32, config.precision).items())
        assert quality_of(entry) == as_tuple(fingerprint(restricted_model, data.test))
        assert quality_of(entry) != as_tuple(fingerprint(model_with(fp32, architecture), data.test))  # not FP32
        assert quality_of(entry) != as_tuple(fingerprint(evolved.model, data.test))  # not before training
        assert entry["epochs"] == len(curve.epochs) and entry["best_epoch"] == curve.best_epoch
        assert entry["train_seconds"] == curve.seconds != evolved.metrics["train_seconds"]
        assert entry["stopped_by"] == ("patience" if len(curve.epochs) < rule.max_epochs else "epoch cap")
        assert entry["rule"] == rule.to_json()
        assert entry["widths"] == list(architecture.widths)
        assert entry["synapses"] == sum(int(m.sum()) for m in masks.values())
        assert entry["macs"] == counted_macs(restricted_model, IMAGE_SIZE)
    assert stored["trained_on"]["synapses"] == evolved.metrics["synapses"]
    dense = sum(layer.weight.numel() for _, layer in evolved.model.prunable_layers())
    assert stored["from_scratch"]["synapses"] == dense
    assert stored["trained_on"]["train_seconds"] != stored["from_scratch"]["train_seconds"]
    assert quality_of(stored["trained_on"]) != quality_of(stored["from_scratch"])
    assert record["evolved"] == {"2": {key: evolved.metrics[key] for key in RECORDED}}
    assert record["ancestor"] == {key: ancestor.metrics[key] for key in RECORDED}
