# %% [markdown]
# # 06 · Flattening target c (RQ4)
#
# **Question.** What should the top-K logits be pulled towards: the mean of all logits (global mean, the
# code's default), the mean of the top-K (local mean), the detached global mean, zero, or the top-K minimum?
#
# **Paper's claim.** The global mean is the most stable choice.
#
# The next cell holds the parameters (papermill: `-p profile smoke`). Empty folders mean the project's
# `figures/` and `tables/`, whatever folder the notebook runs in; the run cache is the project's `runs/`
# (or `$PAPERLIB_CACHE`), shared with `make reproduce`.

# %%
profile = "mini"  # smoke, mini or paper
forget = ""  # empty: the split of the profile (mini forget10, paper forget05)
figures_dir = ""  # empty: the project's figures/
tables_dir = ""  # empty: the project's tables/

# %% [markdown]
# ## Computation
# PALU with each flattening target c (cached runs), each evaluated on TOFU.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
table = experiments.results_table(P, experiments.target_runs(P), forget).rename(columns={"method": "target"})
long = table.melt(id_vars="target", value_vars=["FQ", "MU", "F-TR"], var_name="metric")

# %% [markdown]
# ## Outputs
# `tables/06_flattening_target` (CSV, Markdown, LaTeX) and `figures/06_flattening_target` (PDF, PNG).

# %%
report.save_table(table, "06_flattening_target", tables_dir, caption="PALU with flattening target c",
                  profile=profile)
report.save_figure(plots.bars(long.rename(columns={"target": "method"}), title="Flattening target c"),
                   "06_flattening_target", figures_dir)
report.show(table, profile, caption="PALU with flattening target c")

# %% [markdown]
# ## What we see

# %%
t = table.set_index("target")
score = t["FQ"].rank() + t["MU"].rank()
print("FQ:", t["FQ"].map("{:.3g}".format).to_dict())
print("MU:", t["MU"].round(3).to_dict())
print("Paper's finding (global mean best balance) reproduced:", score.idxmax() == "global_mean")
