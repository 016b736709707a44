"""The rollout viewer takes the plain dict of run()["comparison"] and builds its views."""
import numpy as np

from widgets.git_storm import error_curves, frames_figure, predictions_figure, rollout_viewer


def _comparison(n_seq=2, steps=5, side=10):
    rng = np.random.default_rng(0)

    def video():
        mse = rng.uniform(0, 0.05, (n_seq, steps))
        return {"mse_per_step": mse.mean(0).tolist(), "mse_copy_last_per_step": [0.02] * steps,
                "mse_autoencoder": 0.005, "psnr_per_step": [20.0] * steps,
                "examples": {"real": rng.integers(0, 256, (n_seq, steps, side, side, 3)).tolist(),
                             "pred": rng.integers(0, 256, (n_seq, steps, side, side, 3)).tolist(),
                             "mse": mse.tolist(), "reward_pred": rng.normal(size=(n_seq, steps - 1)).tolist(),
                             "reward_true": np.zeros((n_seq, steps - 1)).tolist(),
                             "termination_prob": rng.uniform(size=(n_seq, steps - 1)).tolist(),
                             "termination_true": np.zeros((n_seq, steps - 1)).tolist()}}

    return {"priors": {"mlp": {"video": video()}, "maskgit": {"video": video()}}}


def test_figures_hold_the_data():
    comp = _comparison()
    f = error_curves(comp)
    assert [t.name for t in f.data] == ["mlp prior", "maskgit prior", "repeat last context frame"]
    assert np.allclose(f.data[0].y, comp["priors"]["mlp"]["video"]["mse_per_step"])
    f = frames_figure(comp, seq=1, step=3)
    assert len(f.data) == 3
    assert np.array_equal(np.asarray(f.data[2].z), np.asarray(comp["priors"]["maskgit"]["video"]["examples"]["pred"][1][3]))
    f = predictions_figure(comp, seq=0, step=2)
    assert len(f.data) == 2 + 2 * 2


def test_viewer_builds():
    import ipywidgets as W

    v = rollout_viewer(_comparison())
    assert isinstance(v, W.VBox)
    seq, step = v.children[0].children
    assert (seq.max, step.max) == (1, 4)
