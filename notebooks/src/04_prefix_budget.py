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
# Tuning protocol (`paperlib.methods.tuning`, fixed before any result and the same for every method and variant):
# a learning-rate grid evaluated after every epoch, the reported point chosen by one rule (highest FQ with
# MU >= 95% of the original model's), then that point re-run with several seeds; tables show mean ± sd.
# PALU with the prefix budget N in {1, 2, 3, 4, 5, 10, all}.

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
print("share of sensitive tokens each N selects:",
      experiments.prefix_coverage(P, forget).set_index("N")["share of sensitive tokens"].round(3).to_dict())
tuned = experiments.tune(P, experiments.prefix_runs(P), forget)
table = experiments.results_table(P, tuned, forget).rename(columns={"method": "N"})

# %% [markdown]
# ## Outputs
# `tables/04_prefix_budget` and `figures/04_prefix_budget` (bars: ± sd over seeds).

# %%
caption = "PALU with prefix budget N (mean ± sd over seeds)"
report.save_table(table, "04_prefix_budget", tables_dir, caption=caption, profile=profile)
seeds = tuned.seeds[tuned.seeds["status"] == "completed"].rename(columns={"label": "N"})
refs = experiments.reference_rows(P, forget)
_ = report.save_figure(plots.metric_lines(seeds, "N", ["FQ", "MU", "F-TR"], title="Prefix budget N", references=refs),
                       "04_prefix_budget", figures_dir)
report.show(table, profile, caption=caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.prefix_claim`: N = 3 must forget (the forgetting rule of
# `paperlib.studies.claims`) and not forget less than every sensitive token beyond the spread; when neither N = 3 nor
# N = all forgot, "not testable here".
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.redraw(P, tuned, experiments.prefix_runs(P), forget)
claims.show(claims.robust(claims.prefix_claim(table), second and claims.prefix_claim(
    experiments.results_table(*second, forget).rename(columns={"method": "N"}))))
