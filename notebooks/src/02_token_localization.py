# %% [markdown]
# # 02 · Token localization (RQ1)
#
# **Question.** Does it matter *which* tokens are unlearned: every answer token, every sensitive token, or
# only the first N tokens of each sensitive span?
#
# **Paper's claim.** Restricting the loss to sensitive tokens keeps utility and fluency that whole-answer
# unlearning destroys, and the prefix alone (N about 3) forgets as well as all sensitive tokens while touching
# fewer tokens.
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
# PALU's loss on three token sets of each forget answer (cached runs), each evaluated on TOFU.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
table = experiments.results_table(P, experiments.localization_runs(P), forget, with_references=True)
long = table.melt(id_vars="method", value_vars=["FQ", "MU", "Fluency", "F-TR"], var_name="metric")

# %% [markdown]
# ## Outputs
# `tables/02_token_localization` (CSV, Markdown, LaTeX) and `figures/02_token_localization` (PDF, PNG).

# %%
report.save_table(table, "02_token_localization", tables_dir, caption="Which tokens PALU unlearns", profile=profile)
fig = plots.bars(long, title="Which tokens to unlearn")
report.save_figure(fig, "02_token_localization", figures_dir)
report.show(table, profile, caption="Which tokens PALU unlearns")

# %% [markdown]
# ## What we see

# %%
t = table.set_index("method")
allans, sens, prefix = t.loc["all answer tokens"], t.loc["all sensitive tokens"], t.loc["sensitive prefix (N=3)"]
print(f"MU: all answer tokens {allans['MU']:.3f}, all sensitive {sens['MU']:.3f}, prefix {prefix['MU']:.3f}")
print(f"FQ: all answer tokens {allans['FQ']:.3g}, all sensitive {sens['FQ']:.3g}, prefix {prefix['FQ']:.3g}")
print("Sensitive-only keeps more utility than whole-answer unlearning:", prefix["MU"] >= allans["MU"])
print("Prefix forgets at least as well as all sensitive tokens (FQ):", prefix["FQ"] >= sens["FQ"])
