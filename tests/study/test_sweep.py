from evosynth.study.config import RunConfig
from evosynth.study.sweep import run_sweep, sweep_configs, sweep_results


def test_sweep_always_contains_the_base_run_in_alpha_order():
    base = RunConfig(preset="smoke", alpha_cluster=0.9)
    alphas = [c.alpha_cluster for c in sweep_configs(base, (0.95, 0.6))]
    assert alphas == [0.6, 0.9, 0.95]


def test_sweep_points_share_one_ancestor_and_fill_the_table(tmp_path, data_dir):
    configs = sweep_configs(RunConfig(preset="smoke", generations=2, alpha_cluster=0.9, channel_multiple=1), (0.5,))
    folders = run_sweep(configs, tmp_path, data_dir)
    assert len(list((tmp_path / "ancestors").iterdir())) == 2  # the trained (FP32) ancestor and it restricted
    first = [(folder / "gen_01" / "weights.safetensors").read_bytes() for folder in folders]
    assert first[0] == first[1]
    table = sweep_results(folders)
    assert len(table) == 4
    assert sorted(table["alpha_cluster"].unique()) == [0.5, 0.9]
    final = table[table["generation"] == 2].set_index("alpha_cluster")
    assert final.loc[0.5, "clusters"] < final.loc[0.9, "clusters"]
