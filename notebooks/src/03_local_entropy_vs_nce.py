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
# Both losses on the sensitive prefix (cached runs), FQ and MU evaluated after every epoch.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
curves = experiments.epoch_curves(P, experiments.nce_runs(P), forget)

# %% [markdown]
# ## Outputs
# `tables/03_epoch_curves` (CSV, Markdown, LaTeX) and `figures/03_stability` (PDF, PNG).

# %%
report.save_table(curves, "03_epoch_curves", tables_dir, caption="FQ and MU after every epoch", profile=profile)
report.save_figure(plots.metric_lines(curves, "epoch", ["FQ", "MU", "F-TR"], hue="method",
                                      title="Per-epoch stability"), "03_stability", figures_dir)
report.show(curves, profile, caption="FQ and MU after every epoch")

# %% [markdown]
# ## What we see

# %%
last = curves[curves["epoch"] == curves["epoch"].max()].set_index("method")
pal, nce = last.loc["PALU"], last.loc["NCE"]
mu_drop = curves.groupby("method")["MU"].agg(lambda s: s.iloc[0] - s.min())
print(f"Final epoch: PALU FQ {pal['FQ']:.3g} MU {pal['MU']:.3f}; negated CE FQ {nce['FQ']:.3g} MU {nce['MU']:.3f}")
print("Largest MU drop over the epochs:", mu_drop.round(3).to_dict())
print("Paper's finding (local entropy keeps utility better than negated CE) reproduced:",
      mu_drop["PALU"] <= mu_drop["NCE"])
