# %% [markdown]
# # 03 · Local entropy vs negated cross-entropy (RQ2)
#
# **Question.** On the same sensitive-prefix tokens, is flattening the top-K logits (PALU's local entropy)
# better than pushing the gold token down (NCE: negated cross-entropy, gradient ascent on those tokens)?
#
# **Paper's claim.** Local entropy forgets steadily and keeps utility over the epochs; negated CE is
# unbounded and its utility keeps falling as training goes on.
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
# Both losses on the sensitive prefix; at each one's selected learning rate every seed trains all epochs
# and is evaluated after each, so the curves carry their spread.

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
tuned = experiments.tune(P, experiments.nce_runs(P), forget, curves=True)
curves = experiments.epoch_curves(P, tuned, forget)
table = experiments.curve_table(curves)

# %% [markdown]
# ## Outputs
# `tables/03_epoch_curves` (mean ± sd per epoch) and `figures/03_stability` (bars: ± sd over seeds).

# %%
caption = "FQ, MU and forget truth ratio after every epoch at the selected learning rate (mean ± sd over seeds)"
report.save_table(table, "03_epoch_curves", tables_dir, caption=caption, profile=profile)
refs = experiments.reference_rows(P, forget)
_ = report.save_figure(plots.metric_lines(curves, "epoch", ["FQ", "MU", "F-TR"], hue="method",
                                          title="Per-epoch stability", references=refs), "03_stability", figures_dir)
report.show(table, profile, caption=caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.stability_claim`: the largest utility drop over the epochs,
# per seed, must be smaller for local entropy than for negated CE beyond the spread; decided only when one of
# them forgot at some epoch (the forgetting rule of `paperlib.studies.claims`), else "not testable here".
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.redraw(P, tuned, experiments.nce_runs(P), forget, curves=True)
claims.show(claims.robust(claims.stability_claim(curves, experiments.original_mu(P, forget)), second and
                          claims.stability_claim(experiments.epoch_curves(*second, forget),
                                                 experiments.original_mu(second[0], forget))))
