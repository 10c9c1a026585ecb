# %% [markdown]
# # 10 · Self-distillation targets: Unilogit vs UnDIAL
#
# **Question.** Unilogit and UnDIAL both unlearn by distilling the model towards a soft target on the forget
# answers: Unilogit's is the *current* model's distribution with the gold token's probability set to 1/V,
# UnDIAL's the *original* model's logits with the gold logit lowered by a fixed beta. Which target is closer
# to what a model that never saw the forget set (the retain model) predicts, and does that show in the
# forget / retain trade-off?
#
# **Paper's claim (Unilogit, Figures 2-3 and 5).** Unilogit reaches a better forget vs retain trade-off than
# UnDIAL, GA and NPO; its soft targets are closer to the retrained model's outputs than UnDIAL's at every
# beta (lower KL), and so are its final models' outputs.
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
# MU >= 95% of the original model's), then that point re-run with several seeds. GA, NPO, Unilogit and
# UnDIAL with beta in {3, 10, 30}; everything but UnDIAL's betas 3 and 30 is notebook 01's run, served from
# the cache.
#
# Scale (fixed before any result): the whole sweep for the scatter (seed 0, every lr and epoch); for the
# KL analysis, each method's selected point re-trained and saved for every seed (`distill.checkpoints`,
# the same steps as the sweep's run), and for Unilogit, whose target moves with the model, the checkpoint
# after every epoch up to the selected one. KL(p_retain || q) is per answer position over the whole
# vocabulary, averaged over every answer token of the forget split (`paperlib.studies.distill`).

# %%
from paperlib import report
from paperlib.engine.config import get_profile
from paperlib.methods import tuning
from paperlib.studies import claims, distill
from paperlib.studies import palu as experiments

P = get_profile(profile)
forget = forget or P.benchmark.forget
print(tuning.describe(P))
runs = distill.runs(P)
tuned = experiments.tune(P, runs, forget)
table = experiments.results_table(P, tuned, forget, with_references=True)
fig5 = distill.figure5(P, forget, distill.checkpoints(P, runs, tuned, forget))

# %% [markdown]
# ## Outputs
# `tables/10_tuned` (the selected points, mean ± sd over seeds), `tables/10_sweep` (every grid point with
# its forget and retain scores), `figures/10_forget_retain` (the Figures 2-3 scatter: forget score =
# ROUGE-L recall on the forget set, retain score = ROUGE-L recall on the retain set, one panel per method),
# `tables/10_target_kl` (a), `tables/10_target_kl_epochs` (b), `tables/10_output_kl` (c) and
# `figures/10_kl_analysis` (the Figure 5 panels; bars and bands: ± sd over seeds).

# %%
caption = f"TOFU {forget}: GA, NPO, Unilogit and UnDIAL (beta 3 / 10 / 30), mean ± sd over seeds"
report.save_table(table, "10_tuned", tables_dir, caption=caption, profile=profile)
report.save_table(distill.sweep_table(tuned), "10_sweep", tables_dir, profile=profile,
                  caption="Every sweep point (lr x epoch, seed 0) with forget / retain ROUGE-L recall")
_ = report.save_figure(distill.forget_retain_scatter(tuned.sweep, tuned.selected,
                                                     distill.reference_summaries(P, forget)),
                       "10_forget_retain", figures_dir)
kl_tables = {"10_target_kl": (fig5.target_table(), "(a) KL(retain ‖ soft target) on the forget answers, mean ± "
                                                   "sd over seeds"),
             "10_target_kl_epochs": (fig5.epoch_table(), "(b) KL(retain ‖ soft target) after every epoch, mean ± sd "
                                                         "over seeds"),
             "10_output_kl": (fig5.output_table(), "(c) KL(retain ‖ final model), mean ± sd over seeds; Original = "
                                                   "the start")}
for name, (kl_table, kl_caption) in kl_tables.items():
    report.save_table(kl_table, name, tables_dir, caption=kl_caption, profile=profile)
_ = report.save_figure(distill.figure5_plot(fig5), "10_kl_analysis", figures_dir)
report.show(table, profile, caption=caption)
for kl_table, kl_caption in kl_tables.values():
    report.show(kl_table, profile, caption=kl_caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.distill_claim`: Unilogit's soft targets (averaged over the
# checkpoints it trains from, mean ± sd over seeds) must be closer to the retain model's outputs than
# UnDIAL's fixed target at every beta, beyond the spread; decided only when one of these methods' reported
# points in `tables/10_tuned` forgot (the forgetting rule of `paperlib.studies.claims`), else "not testable here".
# Panel (c) and the scatter are shown beside it, not folded into the verdict.
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.redraw(P, tuned, runs, forget)
claims.show(claims.robust(claims.distill_claim(fig5.target_table(), table), second and claims.distill_claim(
    distill.figure5(second[0], forget, distill.checkpoints(second[0], runs, second[1], forget)).target_table(),
    experiments.results_table(*second, forget, with_references=True))))
