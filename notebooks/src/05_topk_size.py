# %% [markdown]
# # 05 · Top-K size (RQ3)
#
# **Question.** How many of the reference model's top logits must be flattened, and what does K cost?
# The paper uses K in {1, 1000, 5000, 10000} of Llama-2's 32k vocabulary; the mini profile uses the same
# fractions of its own vocabulary.
#
# **Paper's claim.** K about 5000 (16 % of V) works best; K = 1 is a margin loss that forgets less.
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
# PALU with K = the paper's {1, 1000, 5000, 10000} of 32k, as the same fractions of this vocabulary.

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
tuned = experiments.tune(P, experiments.topk_runs(P), forget)
table = experiments.results_table(P, tuned, forget, columns=("FQ", "MU", "F-TR", "EM")).rename(columns={"method": "K"})
steps = experiments.timing_table(tuned).rename(columns={"method": "K"})

# %% [markdown]
# ## Outputs
# `tables/05_topk_size`, `tables/05_step_times` and `figures/05_topk_size` (bars: ± sd over seeds).

# %%
caption = "PALU with top-K size K (mean ± sd over seeds)"
report.save_table(table, "05_topk_size", tables_dir, caption=caption, profile=profile)
report.save_table(steps, "05_step_times", tables_dir, caption="Seconds per unlearning step (CPU, mean ± sd over seeds)",
                  profile=profile)
seeds = tuned.seeds[tuned.seeds["status"] == "completed"].rename(columns={"label": "K"})
seeds["K"] = seeds["K"].astype(int)
refs = experiments.reference_rows(P, forget)
_ = report.save_figure(plots.metric_lines(seeds, "K", ["FQ", "MU", "train s / step"], logx=True, title="Top-K size",
                                          references=refs), "05_topk_size", figures_dir)
report.show(table, profile, caption=caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.topk_claim`: K = 1 must forget least (below every other K) and a
# middle K most (above both ends of the grid), beyond the seed spread; decided only when some K forgot (the
# forgetting rule of `paperlib.studies.claims`), else "not testable here".
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.redraw(P, tuned, experiments.topk_runs(P), forget)
claims.show(claims.robust(claims.topk_claim(table), second and claims.topk_claim(experiments.results_table(
    *second, forget, columns=("FQ", "MU", "F-TR", "EM")).rename(columns={"method": "K"}))))
