# %% [markdown]
# # 04 · Prefix budget N (RQ3)
#
# **Question.** How many tokens at the start of each sensitive span must be unlearned?
#
# **Paper's claim.** A short prefix suffices: N about 3 gives the best forget quality / utility balance;
# larger N (up to all sensitive tokens) adds cost without better forgetting.
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
# PALU with prefix budgets N in {1, 2, 3, 4, 5, 10, all} (cached runs), each evaluated on TOFU.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
table = experiments.results_table(P, experiments.prefix_runs(P), forget).rename(columns={"method": "N"})

# %% [markdown]
# ## Outputs
# `tables/04_prefix_budget` (CSV, Markdown, LaTeX) and `figures/04_prefix_budget` (PDF, PNG).

# %%
report.save_table(table, "04_prefix_budget", tables_dir, caption="PALU with prefix budget N", profile=profile)
report.save_figure(plots.metric_lines(table, "N", ["FQ", "MU", "F-TR"], title="Prefix budget N"),
                   "04_prefix_budget", figures_dir)
report.show(table, profile, caption="PALU with prefix budget N")

# %% [markdown]
# ## What we see

# %%
runs = experiments.sensitive_run_lengths(P, forget)
print("sensitive spans by length in tokens:", runs.to_dict(), "-> N >=", runs.index.max(), "all unlearn the same tokens")
t = table.set_index("N")
best = t["FQ"].idxmax()
print(f"Best FQ at N = {best} ({t['FQ'].max():.3g}); N=3: FQ {t.loc['3', 'FQ']:.3g}, MU {t.loc['3', 'MU']:.3f}; "
      f"all: FQ {t.loc['all', 'FQ']:.3g}, MU {t.loc['all', 'MU']:.3f}")
print("Paper's finding (a short prefix, N <= 5, is enough) reproduced:", best in {"1", "2", "3", "4", "5"})
