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
# Tuning protocol (`paperlib.methods.tuning`, fixed before any result and the same for every method and variant):
# a learning-rate grid evaluated after every epoch, the reported point chosen by one rule (highest FQ with
# MU >= 95% of the original model's), then that point re-run with several seeds; tables show mean ± sd.
# PALU with each flattening target c.

# %%
from paperlib import report
from paperlib.engine.config import get_profile
from paperlib.methods import tuning
from paperlib.report import plots
from paperlib.studies import claims
from paperlib.studies import palu as experiments

P = get_profile(profile)
forget = forget or P.benchmark.forget
print(tuning.describe(P))
tuned = experiments.tune(P, experiments.target_runs(P), forget)
table = experiments.results_table(P, tuned, forget).rename(columns={"method": "target"})

# %% [markdown]
# ## Outputs
# `tables/06_flattening_target` and `figures/06_flattening_target` (bars: mean ± sd, dots: seeds).

# %%
caption = "PALU with flattening target c (mean ± sd over seeds)"
report.save_table(table, "06_flattening_target", tables_dir, caption=caption, profile=profile)
long = experiments.seeds_long(tuned, ["FQ", "MU", "F-TR"])
refs = experiments.reference_rows(P, forget)
_ = report.save_figure(plots.bars(long, title="Flattening target c", references=refs), "06_flattening_target",
                       figures_dir)
report.show(table, profile, caption=caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.target_claim`: among the targets whose reported point keeps MU95,
# the global mean must have the highest FQ beyond the seed spread and must have forgotten; decided only when
# a compared target forgot (the forgetting rule of `paperlib.studies.claims`), else "not testable here".
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.redraw(P, tuned, experiments.target_runs(P), forget)
claims.show(claims.robust(claims.target_claim(table), second and claims.target_claim(
    experiments.results_table(*second, forget).rename(columns={"method": "target"}))))
