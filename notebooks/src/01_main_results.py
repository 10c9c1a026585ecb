# %% [markdown]
# # 01 · Main results (RQ5): every method vs PALU on TOFU
#
# **Question.** Which unlearning method forgets the forget authors best (forget quality) while keeping the
# model's utility at the original model's level, and is it PALU?
#
# **Paper's claim (PALU, Table 1, TOFU forget05, Llama-2-7B-chat).** PALU reaches the highest forget quality
# (FQ 0.7126) while keeping model utility at the original model's level (MU 0.6238 vs 0.6276); GA and GD
# destroy forgetting quality or utility, NPO / SimNPO / TPO trade utility for forgetting (MU 0.59).
#
# The next cell holds the parameters (papermill: `-p profile smoke`). Empty folders mean the project's
# `figures/` and `tables/`, whatever folder the notebook runs in; the run cache is the project's `runs/`
# (or `$PAPERLIB_CACHE`), shared with `make reproduce`.

# %%
profile = "mini"  # smoke, mini, paper, or a .json profile file (e.g. the paper setting on local stand-ins)
methods = ""  # comma-separated subset of the table's methods (e.g. "PALU,NPO"); empty: every method
forget = ""  # empty: the split of the profile (mini forget10, paper forget05)
figures_dir = ""  # empty: the project's figures/
tables_dir = ""  # empty: the project's tables/

# %% [markdown]
# ## Computation
# Tuning protocol (`paperlib.methods.tuning`, fixed before any result and the same for every method and variant):
# a learning-rate grid evaluated after every epoch, the reported point chosen by one rule (highest FQ with
# MU >= 95% of the original model's), then that point re-run with several seeds; tables show mean ± sd.
# Every method unlearns the forget split from the original model (cached runs); the original and retain
# models are the reference rows.

# %%
from paperlib import report
from paperlib.engine.config import get_profile
from paperlib.methods import tuning
from paperlib.report import plots
from paperlib.studies import calibration, claims
from paperlib.studies import palu as experiments

P = get_profile(profile)
forget = forget or P.benchmark.forget
print(tuning.describe(P))
runs = [r for r in experiments.main_runs(P) if not methods or r.method in methods.split(",")]
tuned = experiments.tune(P, runs, forget)
table = experiments.results_table(P, tuned, forget, with_references=True)
shown = report.with_paper_numbers(table, P.name, split=forget)

# %% [markdown]
# ## Outputs
# `tables/01_tofu_main` (the selected points, mean ± sd over seeds), `tables/01_tofu_sweep` (every grid
# point, the selected ones marked), `figures/01_fq_mu_scatter` (the selected points with their spread) and
# `figures/01_frontier` (every sweep point of every method, MU as a fraction of the original model's; x: the
# published point of the same method, PALU paper Table 1, TOFU forget05, Llama-2-7B-chat, its MU as a fraction
# of that paper's original model's: `calibration.published_frontier`). Both figures mark FQ = 0.05
# ("forgotten", `claims.FORGOTTEN_P`), the original's FQ and 95% of the original's MU.

# %%
caption = f"TOFU {forget}: forget quality, utility and truth ratios (mean ± sd over seeds); Fluency = n-gram entropy (bits)"
report.save_table(shown, "01_tofu_main", tables_dir, caption=caption, profile=P.name)
report.save_table(experiments.sweep_table(tuned), "01_tofu_sweep", tables_dir,
                  caption="Every sweep point (lr x epoch, seed 0); selected = the reported point", profile=P.name)
refs = experiments.reference_rows(P, forget)
_ = report.save_figure(plots.fq_mu_scatter(tuned.seeds, refs), "01_fq_mu_scatter", figures_dir)
_ = report.save_figure(plots.frontier(tuned.sweep, tuned.selected, experiments.original_mu(P, forget),
                                      tuning.MU_FRACTION, references=refs,
                                      published=calibration.published_frontier()), "01_frontier", figures_dir)
report.show(shown, P.name, caption=caption)

# %% [markdown]
# ## What we see
# The verdict below comes from `paperlib.studies.claims.main_claim`: among the methods whose reported point keeps
# 95% of the original's utility, PALU must have the highest FQ beyond the seed spread and must have forgotten;
# the comparison is decided only when a compared method forgot (the forgetting rule of `paperlib.studies.claims`),
# else "not testable here". The paragraph after it reads the whole sweep (`experiments.frontier_sentence`, also written to `tables/01_frontier.md`, which the README shows).
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.redraw(P, tuned, runs, forget)  # the selected points on a second draw of the models
claims.show(claims.robust(claims.main_claim(table), second and claims.main_claim(
    experiments.results_table(*second, forget, with_references=True))))
frontier_text = experiments.frontier_sentence(tuned.sweep, experiments.original_mu(P, forget))
report.save_note(frontier_text, "01_frontier", tables_dir)
print(frontier_text)
