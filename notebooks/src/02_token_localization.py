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
# Tuning protocol (`paperlib.methods.tuning`, fixed before any result and the same for every method and variant):
# a learning-rate grid evaluated after every epoch, the reported point chosen by one rule (highest FQ with
# MU >= 95% of the original model's), then that point re-run with several seeds; tables show mean ± sd.
# PALU's loss on every answer token, on every sensitive token, and on the first N = 3 tokens of each span.

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
tuned = experiments.tune(P, experiments.localization_runs(P), forget)
table = experiments.results_table(P, tuned, forget)

# %% [markdown]
# ## Outputs
# `tables/02_token_localization` and `figures/02_token_localization` (bars: mean ± sd, dots: seeds).

# %%
caption = "Which tokens PALU unlearns (mean ± sd over seeds)"
report.save_table(table, "02_token_localization", tables_dir, caption=caption, profile=profile)
long = experiments.seeds_long(tuned, ["FQ", "MU", "Fluency", "F-TR"])
refs = experiments.reference_rows(P, forget)
_ = report.save_figure(plots.bars(long, title="Which tokens to unlearn", references=refs), "02_token_localization",
                       figures_dir)
report.show(table, profile, caption=caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.localization_claim`: at the same utility floor, the prefix must
# forget more than whole-answer unlearning beyond the seed spread; decided only when one of the two forgot
# (the forgetting rule of `paperlib.studies.claims`), else "not testable here".
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.redraw(P, tuned, experiments.localization_runs(P), forget)
claims.show(claims.robust(claims.localization_claim(table),
                          second and claims.localization_claim(experiments.results_table(*second, forget))))
