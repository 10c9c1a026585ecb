# %% [markdown]
# # 08 · Privacy: membership inference after unlearning
#
# **Question.** After unlearning, can a membership-inference attack still tell forget-set answers from
# never-seen (holdout) answers? AUC near 1 = still memorised; privleak near 0 = as private as the retain model.
#
# **Paper's claim.** PALU brings MinK / MinK++ AUCs close to the retain model's without over-unlearning
# (privleak near 0, not strongly positive).
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
# MinK, MinK++, LOSS and ZLib attacks (forget vs holdout AUC) on every model of the main table, and privleak
# relative to the retain model.

# %%
from paperlib import experiments, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
table = experiments.privacy_table(P, experiments.main_runs(P), forget)

# %% [markdown]
# ## Outputs
# `tables/08_privacy` (CSV, Markdown, LaTeX).

# %%
report.save_table(table, "08_privacy", tables_dir, caption="MIA AUC (forget vs holdout) and privleak",
                  profile=profile)
report.show(table, profile, caption="MIA AUC (forget vs holdout) and privleak")

# %% [markdown]
# ## What we see

# %%
t = table.set_index("method")
gap = (t["mia_min_k"] - t.loc["Retain", "mia_min_k"]).abs().drop(index=["Original", "Retain"])
print("MinK AUC: original {:.3f}, retain {:.3f}, PALU {:.3f}".format(*t.loc[["Original", "Retain", "PALU"],
                                                                         "mia_min_k"]))
print(f"|privleak| PALU {abs(t.loc['PALU', 'privleak']):.1f}; closest to the retain model's MinK AUC: {gap.idxmin()}")
print("Paper's finding (PALU near the retain model, privleak near 0) reproduced:",
      abs(t.loc["PALU", "privleak"]) < 25)
