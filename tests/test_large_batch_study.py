"""The large-batch study: train_runs against a hand-written loop, tuning, epochs to target, the driver end to end."""

import json
import math
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import never_silent

import flatter
from flatter.drivers import large_batch as driver
from flatter.large_batch import epochs_to_target, train_runs, tune_and_train


def softmax_problem(n=32, d=5, k=3, loss="cross_entropy", seed=0):
    """A linear classifier on Gaussian blobs: training, test and validation data."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 2

    def draw(m):
        labels = rng.integers(0, k, m)
        return centers[labels] + rng.normal(size=(m, d)), np.eye(k)[labels]

    (x, y), (xt, yt), (xv, yv) = draw(n), draw(20), draw(12)
    problem = flatter.Problem(
        lambda p, inputs: inputs @ p["w"] + p["b"], x, y, test_inputs=xt, test_targets=yt, loss=loss
    )
    params = {"w": jnp.asarray(rng.normal(size=(d, k)) * 0.1), "b": jnp.zeros(k)}
    return problem, params, (jnp.asarray(xv), jnp.asarray(yv))


def hand_msgd(problem, params, *, peak, seed, batch, epochs, momentum, weight_decay):
    """MSGD with L2 and warm-up (1 epoch) + cosine, written out: v = beta v + g + lambda w, w -= eta_k v."""
    x, y = np.asarray(problem.inputs), np.asarray(problem.targets)
    n = len(x)
    per_epoch, total = n // batch, epochs * n // batch
    w = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    v = {k: np.zeros_like(a) for k, a in w.items()}
    _, k_data = jax.random.split(jax.random.key(seed))
    losses, test_acc, k = [], [], 0
    for key in jax.random.split(k_data, epochs):
        order = np.asarray(jax.random.permutation(key, n))
        epoch_losses = []
        for s in range(per_epoch):
            idx = order[s * batch : (s + 1) * batch]
            logits = x[idx] @ w["w"] + w["b"]
            z = logits - logits.max(1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            epoch_losses.append(-np.mean(np.sum(y[idx] * np.log(p), 1)))
            dlogits = (p - y[idx]) / batch
            grads = {"w": x[idx].T @ dlogits, "b": dlogits.sum(0)}
            eta = (
                peak * k / per_epoch
                if k < per_epoch
                else peak * 0.5 * (1 + math.cos(math.pi * (k - per_epoch) / (total - per_epoch)))
            )
            for name in w:
                v[name] = momentum * v[name] + grads[name] + weight_decay * w[name]
                w[name] = w[name] - eta * v[name]
            k += 1
        losses.append(np.mean(epoch_losses))
        pred = np.argmax(np.asarray(problem.test_inputs) @ w["w"] + w["b"], 1)
        test_acc.append(np.mean(pred == np.argmax(np.asarray(problem.test_targets), 1)))
    return np.array(losses), np.array(test_acc)


def test_train_runs_msgd_matches_a_hand_written_loop_with_the_schedule_and_shuffling():
    problem, params, val = softmax_problem()
    peaks, seeds = np.array([0.05, 0.3, 0.1]), np.array([0, 1, 7])
    curves = train_runs(
        problem, params, optimizer="msgd", batch_size=8, epochs=3, learning_rates=peaks, seeds=seeds,
        validation=val, momentum=0.8, weight_decay=0.01,
    )  # fmt: skip
    assert curves.train_loss.shape == (3, 3) and not curves.diverged.any()
    for r in range(3):
        loss, acc = hand_msgd(
            problem, params, peak=peaks[r], seed=seeds[r], batch=8, epochs=3, momentum=0.8, weight_decay=0.01
        )
        np.testing.assert_allclose(curves.train_loss[r], loss, rtol=1e-7)  # optax rounds its schedule in float32
        np.testing.assert_allclose(curves.test_accuracy[r], acc)
    # The learning rate matters (the check can fail): the three runs differ.
    assert not np.allclose(curves.train_loss[0], curves.train_loss[1])


def test_the_host_loop_for_convolutions_gives_the_vmapped_numbers(monkeypatch):
    problem, params, val = softmax_problem(seed=3)

    def init(key):  # different weights per seed
        return {"w": 0.1 * jax.random.normal(key, (5, 3)), "b": jnp.zeros(3)}

    kwargs = dict(optimizer="sngm", batch_size=16, epochs=2, learning_rates=[0.02, 0.2], seeds=[3, 4], validation=val)
    vmapped = train_runs(problem, init, **kwargs)
    monkeypatch.setattr("flatter.large_batch._train.loops_are_slow", lambda *a: True)
    host = train_runs(problem, init, **kwargs)
    for a, b in zip(vmapped, host, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_runs_sharded_over_two_devices_and_padded_give_the_one_device_numbers(tmp_path):
    """Three runs on two devices (one padding run, dropped): each run's numbers are those of one device."""
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, jax
        jax.config.update("jax_enable_x64", True)
        sys.path.insert(0, {str(tmp_path.parent)!r}); sys.path.insert(0, "tests")
        from test_large_batch_study import softmax_problem
        from flatter.large_batch import train_runs
        assert jax.device_count() == 2
        problem, params, val = softmax_problem()
        c = train_runs(problem, params, optimizer="adam", batch_size=8, epochs=2, learning_rates=[1e-3, 1e-2, 3e-2],
                       seeds=[0, 1, 2], validation=val)
        np.save({str(tmp_path / "loss.npy")!r}, c.train_loss)
        """
    )
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    problem, params, val = softmax_problem()
    one = train_runs(
        problem, params, optimizer="adam", batch_size=8, epochs=2, learning_rates=[1e-3, 1e-2, 3e-2],
        seeds=[0, 1, 2], validation=val,
    )  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "loss.npy"), one.train_loss, rtol=1e-9)


def test_tuning_skips_a_diverging_learning_rate_and_reports_fresh_seeds():
    problem, params, val = softmax_problem(loss="squared", seed=1)
    cell = tune_and_train(
        problem, params, optimizer="msgd", batch_size=8, epochs=3, grid=(1e20, 0.01, 0.1), validation=val,
        target=0.5, seeds=2, tuning_seeds=2,
    )  # fmt: skip
    np.testing.assert_array_equal(cell.grid, [0.01, 0.1, 1e20])  # sorted; 1e20 overflows float64 in a dozen steps
    assert cell.grid_diverged.tolist() == [0, 0, 2] and np.isnan(cell.grid_validation[2])
    assert cell.learning_rate in (0.01, 0.1) and cell.at_edge == (cell.learning_rate == 0.01)
    best = np.nanargmax(cell.grid_validation)
    assert cell.learning_rate == cell.grid[best]
    # The reported runs are seeds 0 and 1 at the chosen value, not the tuning runs.
    again = train_runs(
        problem, params, optimizer="msgd", batch_size=8, epochs=3, learning_rates=[cell.learning_rate] * 2,
        seeds=[0, 1], validation=val,
    )  # fmt: skip
    np.testing.assert_array_equal(cell.curves.test_accuracy, again.test_accuracy)
    np.testing.assert_array_equal(cell.epochs_to_target, epochs_to_target(again.test_accuracy, 0.5))


def test_a_diverged_run_is_flagged_with_nan_accuracies():
    problem, params, val = softmax_problem(loss="squared", seed=1)
    c = train_runs(problem, params, optimizer="msgd", batch_size=8, epochs=3, learning_rates=[1e20, 0.01],
                   seeds=[0, 0], validation=val)  # fmt: skip
    assert c.diverged.tolist() == [True, False]
    assert np.isnan(c.test_accuracy[0]).all() and np.isfinite(c.test_accuracy[1]).all()


def test_epochs_to_target_closed_form_and_censoring():
    acc = np.array([[0.1, 0.5, 0.49, 0.7], [0.1, 0.2, 0.3, 0.4], [np.nan] * 4, [0.9, 0.1, 0.1, 0.1]])
    np.testing.assert_array_equal(epochs_to_target(acc, 0.5), [2.0, np.nan, np.nan, 1.0])
    with pytest.raises(ValueError, match="target must be in"):
        epochs_to_target(acc, 1.5)


def test_bad_input_names_the_parameter():
    problem, params, val = softmax_problem()
    common = dict(optimizer="msgd", epochs=2, validation=val)
    with pytest.raises(ValueError, match="batch_size must divide"):
        train_runs(problem, params, batch_size=5, learning_rates=[0.1], seeds=[0], **common)
    with pytest.raises(ValueError, match="learning_rates must be > 0"):
        train_runs(problem, params, batch_size=8, learning_rates=[0.0], seeds=[0], **common)
    with pytest.raises(ValueError, match="one length"):
        train_runs(problem, params, batch_size=8, learning_rates=[0.1, 0.2], seeds=[0], **common)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_runs(problem, params, batch_size=8, learning_rates=[0.1], seeds=[0], **{**common, "optimizer": "sgd"})
    with pytest.raises(ValueError, match="validation data must match"):
        train_runs(
            problem,
            params,
            batch_size=8,
            learning_rates=[0.1],
            seeds=[0],
            **{**common, "validation": (val[0][:, :2], val[1])},
        )
    with pytest.raises(ValueError, match="batch_sizes must divide"):
        driver.preset("fashion-mnist", "quick", batch_sizes=(16, 48))
    with pytest.raises(ValueError, match="preset must be one of"):
        driver.preset("fashion-mnist", "smoke")
    with pytest.raises(ValueError, match="grids must have one length"):
        driver.preset("fashion-mnist", "quick", grids=(("msgd", (0.1,)), ("sngm", (0.1, 0.2))))


SMALL = dict(
    width=16, train_per_class=32, validation_per_class=8, test_per_class=10, batch_sizes=(16, 64), epochs=2,
    grids=(("msgd", (0.01, 0.1)), ("sngm", (0.03, 0.3))), seeds=2, tuning_seeds=1, target_accuracy=0.3,
)  # fmt: skip


@pytest.mark.heavy
def test_the_study_end_to_end_on_real_images_resumes_and_writes_its_figure(tmp_path, fashion_idx_folder, capsys):
    with never_silent():  # each cell's epochs tick a bar
        summary = driver.run_large_batch("fashion-mnist", "quick", tmp_path, data_dir=fashion_idx_folder, **SMALL)
    out = tmp_path / "large-batch" / "fashion-mnist" / "quick"
    printed = capsys.readouterr().out
    assert "tuned lr" in printed and "holds to B=" in printed and "resumed" not in printed
    assert (out / "large_batch.png").stat().st_size > 20_000
    assert len(summary["rows"]) == 4 and summary["train_examples"] == 320
    with np.load(out / "curves.npz") as f:
        assert f["test_accuracy"].shape == (2, 2, 2, 2) and f["grid"].shape == (2, 2)
        assert str(f["description"]).startswith("per optimizer")
    stored = json.loads((out / "summary.json").read_text())
    assert stored["rows"][0]["grid"] == [0.01, 0.1] and "environment" in stored
    # Every row's mean is the mean of its seeds (what the table prints is what was measured).
    for row in summary["rows"]:
        assert row["test_accuracy_mean"] == pytest.approx(np.mean(row["test_accuracy_per_seed"]))
    # Learning happened: better than chance (0.1) at the smallest batch.
    assert summary["per_optimizer"]["msgd"]["smallest_batch_accuracy"] > 0.3
    again = driver.run_large_batch("fashion-mnist", "quick", tmp_path, data_dir=fashion_idx_folder, **SMALL)
    assert capsys.readouterr().out.count("resumed") == 4
    assert [r["test_accuracy_per_seed"].tolist() for r in again["rows"]] == [
        r["test_accuracy_per_seed"].tolist() for r in summary["rows"]
    ]
    # Other settings never reuse a stored cell.
    other = {**SMALL, "epochs": 3, "batch_sizes": (16,)}
    driver.run_large_batch("fashion-mnist", "quick", tmp_path, data_dir=fashion_idx_folder, **other)
    assert "resumed" not in capsys.readouterr().out


def test_the_command_line_rejects_a_bad_preset_in_one_line(tmp_path):
    command = [sys.executable, "-m", "flatter._cli", "large-batch", "--preset", "smoke", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "flatter: error: preset must be one of ['quick', 'paper'] for fashion-mnist, got 'smoke'"
    )


def test_a_cell_compiles_one_training_program_for_its_tuning_and_reported_runs():
    """tune_and_train: 6 tuning runs and 2 reported ones, one compiled program (calls of one size); a second cell
    of the same optimizer and batch size compiles nothing more."""
    from flatter.large_batch import _train

    problem, params, validation = softmax_problem()
    before = _train._vmapped_program.cache_info().currsize
    kwargs = dict(optimizer="msgd", batch_size=8, epochs=2, validation=validation, target=0.5, seeds=2)
    cell = tune_and_train(problem, params, grid=(0.01, 0.1, 0.3), tuning_seeds=2, **kwargs)
    assert _train._vmapped_program.cache_info().currsize == before + 1
    config = _train._Config("msgd", 8, problem.num_examples, 2, 1.0, 0.9, 5e-4, 1e-3, None)
    assert _train._vmapped_program(config)._cache_size() == 1  # one shape for the 6 + 2 runs
    again = tune_and_train(problem, params, grid=(0.03, 0.2), tuning_seeds=1, **kwargs)
    assert _train._vmapped_program(config)._cache_size() == 1 and again.curves.test_accuracy.shape == (2, 2)
    assert cell.curves.test_accuracy.shape == (2, 2)
