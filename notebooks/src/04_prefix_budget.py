# %%
profile = "mini"
forget = ""  # empty: the split of the profile (mini forget10, paper forget05)
figures_dir = "figures"
tables_dir = "tables"

# %% [markdown]
# # 04 · Prefix budget N (RQ3)
#
# **Question.** How many tokens at the start of each sensitive span must be unlearned?
#
# **Paper's claim.** A short prefix suffices: N about 3 gives the best forget quality / utility balance;
# larger N (up to all sensitive tokens) adds cost without better forgetting.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
table = experiments.results_table(P, experiments.prefix_runs(P), forget).rename(columns={"method": "N"})
report.save_table(table, "04_prefix_budget", tables_dir, caption="PALU with prefix budget N", profile=profile)
report.save_figure(plots.metric_lines(table, "N", ["FQ", "MU", "F-TR"], title="Prefix budget N"),
                   "04_prefix_budget", figures_dir)
table

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
