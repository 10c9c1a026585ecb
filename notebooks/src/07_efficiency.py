# %%
profile = "mini"
forget = ""  # empty: the split of the profile (mini forget10, paper forget05)
figures_dir = "figures"
tables_dir = "tables"

# %% [markdown]
# # 07 · Efficiency: O(TK) vs O(TV)
#
# **Question.** How much does restricting the loss to the top-K logits of a few prefix tokens save?
#
# **Paper's claim.** PALU's loss touches T_prefix x K logits instead of T x V, so it is cheaper per step than
# full-vocabulary objectives, and it converges in fewer epochs.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
ks = [1, 64, 320, 640, 1000, 5000, 10000]
vocab_sizes = [2048, 8192, 32000] if profile != "smoke" else [512, 2048]
timing = experiments.loss_timing(ks, vocab_sizes, tokens=256 if profile != "smoke" else 64)
report.save_table(timing, "07_loss_timing", tables_dir, caption="Loss forward+backward time (ms, CPU)",
                  profile=profile)
report.save_figure(plots.timing(timing), "07_loss_timing", figures_dir)
timing

# %%
steps = experiments.step_times(P, experiments.main_runs(P), forget)
report.save_table(steps, "07_step_times", tables_dir, caption="Seconds per unlearning step", profile=profile)
curves = experiments.epoch_curves(P, experiments.nce_runs(P), forget)
report.save_figure(plots.metric_lines(curves, "train s", ["FQ", "MU"], hue="method", title="Metric vs wall time"),
                   "07_convergence", figures_dir)
steps

# %% [markdown]
# ## What we see

# %%
big = timing[timing["V"] == timing["V"].max()]
full = big[big["loss"] == "full-vocabulary"]["ms"].iloc[0]
k5 = big[(big["loss"] != "full-vocabulary")].set_index("K")["ms"]
print(f"V = {timing['V'].max()}: full-vocabulary loss {full:.1f} ms; top-K: " +
      ", ".join(f"K={k}: {v:.1f} ms" for k, v in k5.items()))
print("Top-K loss cheaper than full-vocabulary at every K < V/4:", bool((k5[k5.index < big['V'].iloc[0] / 4] < full).all()))
