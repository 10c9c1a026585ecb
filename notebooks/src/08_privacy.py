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
# The MIA AUCs and privleak of every method at its tuned point (the runs of notebook 01, cached; mean ± sd
# over seeds), beside the original and retain models.

# %%
from paperlib import report
from paperlib.engine.config import get_profile
from paperlib.studies import claims
from paperlib.studies import palu as experiments

P = get_profile(profile)
forget = forget or P.benchmark.forget
tuned = experiments.tune(P, experiments.main_runs(P), forget)
table = experiments.privacy_table(P, tuned, forget)

# %% [markdown]
# ## Outputs
# `tables/08_privacy`.

# %%
caption = "MIA AUC (forget vs holdout) and privleak (mean ± sd over seeds)"
report.save_table(table, "08_privacy", tables_dir, caption=caption, profile=profile)
report.show(table, profile, caption=caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.privacy_claim`: PALU's MinK AUC must be closer to the retain
# model's than every other method's, beyond the seed spread; decided only when a method forgot (its
# forget_quality by the forgetting rule of `paperlib.studies.claims`), else "not testable here".
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.redraw(P, tuned, experiments.main_runs(P), forget)
claims.show(claims.robust(claims.privacy_claim(table),
                          second and claims.privacy_claim(experiments.privacy_table(*second, forget))))
