"""The bias explorer only indexes precomputed results: controls change what the figures show."""
import pytest

from workbench.kl import Config, run


@pytest.fixture(scope="module")
def results():
    cfg = Config(V=2, L=2, sweep_distances=(0.1, 0.8), explorer_V=(2, 3), explorer_L=(1, 2), mc_ns=(10, 100),
                 rl_V=3, rl_L=2, n_prompts=3, n_heldout=1, rl_steps=4, group=4, eval_every=2,
                 rl_configs=("none", "k1 in reward"), rl_offpolicy_configs=("k3 in loss",), lag=1)
    return run(cfg, progress=False)


def test_explorer_follows_controls(results):
    from widgets.kl_estimators import BiasExplorer

    ex = BiasExplorer(results)
    ex.V.value, ex.L.value, ex.d.value = 3, 2, 0.8
    p = results["explorer"]["points"]["V=3,L=2,d=0.8"]
    assert list(ex.fig.data[0].y) == [r["rel_error"] for r in p["rows"]]
    ex.cfgs.value = ("k3 in loss", "k1 in reward")
    assert set(ex.fig.data[1].x) == {"k3 in loss", "k1 in reward"}
    assert "TRUE grad KL" in ex.fig.data[3].text
    ex.mode.value = "off-policy (lag 1)"
    ex.metric.value = "heldout_accuracy"
    assert len(ex.rl_fig.data) == 1 and list(ex.rl_fig.data[0].y) == results["rl"]["runs"][-1]["curves"]["heldout_accuracy"]


def test_static_views(results):
    from widgets.kl_estimators import exact_table, mc_figure, rl_figure, sweep_figure

    df = exact_table(results)
    assert df.loc["k1 in reward", "rel_error"] < 1e-8
    assert len(sweep_figure(results).data) == len(df)
    assert len(mc_figure(results).data) == 2 * len(df)
    assert len(rl_figure(results, "train_kl").data) == 3
    with pytest.raises(ValueError):
        rl_figure(results, "nope")
    with pytest.raises(ValueError):
        BiasExplorer_missing = __import__("widgets.kl_estimators", fromlist=["BiasExplorer"]).BiasExplorer
        BiasExplorer_missing({"exact": {}})
