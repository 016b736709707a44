"""Rollout viewer for the GIT-STORM notebook: real vs imagined frames side by side with a time slider,
the per-step error curves of each prior, and the reward / termination predictions.

Fed the plain dict that ``workbench.git_storm.run`` returns (``results["comparison"]``); no model inside,
callbacks only index into the data.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _examples(comparison: dict) -> dict:
    return {p: r["video"]["examples"] for p, r in comparison["priors"].items()}


def error_curves(comparison: dict) -> go.Figure:
    """Per-step open-loop MSE of each prior, with the copy-last-frame baseline."""
    fig = go.Figure()
    priors = comparison["priors"]
    for p, r in priors.items():
        v = r["video"]
        fig.add_scatter(y=v["mse_per_step"], x=list(range(1, len(v["mse_per_step"]) + 1)), name=f"{p} prior",
                        mode="lines+markers")
    v = next(iter(priors.values()))["video"]
    fig.add_scatter(y=v["mse_copy_last_per_step"], x=list(range(1, len(v["mse_copy_last_per_step"]) + 1)),
                    name="repeat last context frame", line=dict(dash="dash", color="gray"))
    fig.add_hline(y=v["mse_autoencoder"], line=dict(dash="dot", color="black"),
                  annotation_text="autoencoder (mlp model)" if "mlp" in priors else "autoencoder")
    fig.update_layout(title="Open-loop video prediction error", xaxis_title="steps after the context",
                      yaxis_title="MSE per pixel (frames in [0, 1])", height=350)
    return fig


def frames_figure(comparison: dict, seq: int = 0, step: int = 0) -> go.Figure:
    """One row: real frame, then each prior's imagined frame at ``step`` of example ``seq``."""
    ex = _examples(comparison)
    priors = list(ex)
    real = np.asarray(next(iter(ex.values()))["real"][seq])
    fig = make_subplots(rows=1, cols=1 + len(priors),
                        subplot_titles=["real"] + [f"{p} (MSE {ex[p]['mse'][seq][step]:.4f})" for p in priors])
    fig.add_trace(go.Image(z=real[step]), 1, 1)
    for i, p in enumerate(priors):
        fig.add_trace(go.Image(z=np.asarray(ex[p]["pred"][seq])[step]), 1, i + 2)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(height=260, margin=dict(t=40, b=10, l=10, r=10))
    return fig


def predictions_figure(comparison: dict, seq: int = 0, step: int | None = None) -> go.Figure:
    """Predicted reward and termination probability of each prior's rollout against the real ones."""
    ex = _examples(comparison)
    first = next(iter(ex.values()))
    fig = make_subplots(rows=1, cols=2, subplot_titles=["reward", "termination probability"])
    x = list(range(1, len(first["reward_true"][seq]) + 1))
    fig.add_scatter(x=x, y=first["reward_true"][seq], name="real reward", mode="markers",
                    marker=dict(color="black", size=9), row=1, col=1)
    fig.add_scatter(x=x, y=first["termination_true"][seq], name="real termination", mode="markers",
                    marker=dict(color="black", symbol="x", size=9), row=1, col=2)
    for p, e in ex.items():
        fig.add_scatter(x=x, y=e["reward_pred"][seq], name=f"{p} reward", mode="lines", row=1, col=1)
        fig.add_scatter(x=x, y=e["termination_prob"][seq], name=f"{p} termination", mode="lines", row=1, col=2)
    if step is not None:
        for c in (1, 2):
            fig.add_vline(x=step, line=dict(color="gray", dash="dot"), row=1, col=c)
    fig.update_layout(height=280, margin=dict(t=40, b=10))
    return fig


def rollout_viewer(comparison: dict):
    """ipywidgets view: sequence and time sliders, frames of real vs each prior, error and prediction
    curves. ``comparison`` is ``results["comparison"]``."""
    import ipywidgets as W
    from IPython.display import display

    ex = _examples(comparison)
    first = next(iter(ex.values()))
    n_seq, n_step = len(first["real"]), len(first["real"][0])
    seq = W.IntSlider(0, 0, n_seq - 1, description="sequence")
    step = W.IntSlider(0, 0, n_step - 1, description="step")

    def show(seq, step):
        frames_figure(comparison, seq, step).show()
        predictions_figure(comparison, seq, step + 1).show()

    out = W.interactive_output(show, {"seq": seq, "step": step})
    curves = W.Output()
    with curves:
        display(error_curves(comparison))
    return W.VBox([W.HBox([seq, step]), out, curves])
