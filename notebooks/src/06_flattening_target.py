# %%
profile = "mini"
forget = ""  # empty: the split of the profile (mini forget10, paper forget05)
figures_dir = "figures"
tables_dir = "tables"

# %% [markdown]
# # 06 · Flattening target c (RQ4)
#
# **Question.** What should the top-K logits be pulled towards: the mean of all logits (global mean, the
# code's default), the mean of the top-K (local mean), the detached global mean, zero, or the top-K minimum?
#
# **Paper's claim.** The global mean is the most stable choice.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
table = experiments.results_table(P, experiments.target_runs(P), forget).rename(columns={"method": "target"})
report.save_table(table, "06_flattening_target", tables_dir, caption="PALU with flattening target c",
                  profile=profile)
long = table.melt(id_vars="target", value_vars=["FQ", "MU", "F-TR"], var_name="metric")
report.save_figure(plots.bars(long.rename(columns={"target": "method"}), title="Flattening target c"),
                   "06_flattening_target", figures_dir)
table

# %% [markdown]
# ## What we see

# %%
t = table.set_index("target")
score = t["FQ"].rank() + t["MU"].rank()
print("FQ:", t["FQ"].map("{:.3g}".format).to_dict())
print("MU:", t["MU"].round(3).to_dict())
print("Paper's finding (global mean best balance) reproduced:", score.idxmax() == "global_mean")
