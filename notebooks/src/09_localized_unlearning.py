# %% [markdown]
# # 09 · Localized unlearning: attribution masks vs random masks, and the oracle
#
# **Question.** Does unlearning only the parameters an attribution method points at (activation, WAGLE,
# MemFlex) beat updating a random subset of the same size? And when the forget set was put into a known
# 10% of the MLP down_proj weights, does unlearning through exactly those weights beat unlearning through
# as many other, random ones?
#
# **Paper's claim** ("Does Localization Inform Unlearning?"). No: localized masks are no better than
# random masks of the same size, even the oracle mask that holds the injected knowledge.
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
# Scale, fixed before any result (`paperlib.studies.localization.SCALES`): the paper profile runs every mask under
# NPO, WGA, DPO and RMU; the mini profile (CPU budget of a few minutes) compares the five masks under NPO,
# with the grid's seeds for random and WAGLE only, and runs the oracle under NPO. Every (loss, mask) is
# tuned by the project's rule (`paperlib.methods.tuning`): a learning-rate grid evaluated after every epoch, the
# point with the highest FQ at MU >= 95% of the initial model's (the original model; the injected model
# for the oracle), then that learning rate re-run with every seed, all epochs evaluated.
#
# Definitions (`paperlib.studies.localization`, `paperlib.benchmarks.tofu.metrics.aues`): Forget Strength FS = 1 - mean extraction
# strength (ES) on the forget set, Retain Strength RS = mean ES on the retain set; AUES = area under the
# (FS, RS) curve of the initial model and every epoch of one run (upper envelope, trapezoids, RS falls to 0
# beyond the highest FS reached), per seed at the selected learning rate; "AUES all lrs" pools seed 0's
# runs of every learning rate. MU95 FQ / FS = the highest FQ / FS among those points with MU >= 95% of the
# initial model's. Oracle: the retain model, fine-tuned on the forget set through a random 10% down_proj
# mask (NLL + the NLL of a paired retain sample as the regulariser), unlearned through that mask
# ("oracle") or its random complement of equal size ("complement"). The injection's training budget is
# fixed by a rule stated in advance that looks only at the injected model (`paperlib.studies.injection`): from a
# small grid of learning rates and epochs, smallest first, the first whose injected model knows the forget
# set at least as well as the original model (FS_injected <= FS_original) with MU >= 95% of the retain
# model's; if none does, the largest, flagged. The line printed below gives the choice and the FS of the
# injected, original and retain models.

# %%
from paperlib import report
from paperlib.engine.config import get_profile
from paperlib.report import plots
from paperlib.studies import claims, localization
from paperlib.studies import palu as experiments

P = get_profile(profile)
forget = forget or P.benchmark.forget
print(localization.describe_scale(P, forget))
mask_study = localization.study(P, forget, "masks")
oracle_study = localization.study(P, forget, "oracle")
print(localization.describe_selection(localization.inject_selection(P, forget, localization.scale(P).ratio)))
table = localization.combined_table(mask_study, oracle_study)

# %% [markdown]
# ## Outputs
# `tables/09_aues_mu95` (mean ± sd over seeds; "seeds" = completed / run), `figures/09_masks` (FS-RS
# curves of every mask at its selected learning rate, one panel per loss, bars: ± sd over seeds) and
# `figures/09_oracle` (the same for the oracle and its complement).

# %%
caption = "AUES and MU95 per loss and mask at the selected learning rate (mean ± sd over seeds)"
report.save_table(table, "09_aues_mu95", tables_dir, caption=caption, profile=profile)
_ = report.save_figure(plots.strength_curves(mask_study.curves, "Masks: FS vs RS per epoch"), "09_masks",
                       figures_dir)
_ = report.save_figure(plots.strength_curves(oracle_study.curves, "Oracle vs complement: FS vs RS per epoch"),
                       "09_oracle", figures_dir)
report.show(table, profile, caption=caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.random_mask_claim`: per loss, each localized mask (the oracle;
# activation, WAGLE, MemFlex) against its random counterpart (the complement; the random mask), on AUES,
# for the pairs that have seeds (the others are named in the evidence). A pair is decided only when one of its
# masks forgot at its MU95 point ("MU95 FQ", the forgetting rule of `paperlib.studies.claims`); with no such pair the
# verdict is "not testable here". A localized mask above its random one beyond the seed spread contradicts
# the claim; the claim is reproduced only when every decided random mask lies above its localized one, forgot,
# and stays above it pooled over the learning rates ("AUES all lrs").
#
# Beside it, the same verdict on a second draw of the tiny models (original and retain trained from another
# seed, with their own masks, injection and initial point; every arm at its selected learning rate with every
# seed, no new sweep, so no "AUES all lrs": `localization.redraw`).

# %%
again = [localization.redraw(P, forget, part, s) for part, s in (("masks", mask_study), ("oracle", oracle_study))]
second = None if None in again else claims.random_mask_claim(localization.combined_table(*again))
if second is not None:
    print("second draw:", localization.describe_selection(localization.inject_selection(
        experiments.second_draw(P), forget, localization.scale(P).ratio)))
claims.show(claims.robust(claims.random_mask_claim(table), second))
