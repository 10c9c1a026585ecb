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
profile = "mini"  # smoke, mini or paper
forget = ""  # empty: the split of the profile (mini forget10, paper forget05)
figures_dir = ""  # empty: the project's figures/
tables_dir = ""  # empty: the project's tables/

# %% [markdown]
# ## Computation
# Every method of the profile unlearns the forget split from the original model (cached runs), then the
# TOFU evaluation of each result; the original and retain models are the reference rows.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
runs = experiments.main_runs(P)
table = experiments.results_table(P, runs, forget, with_references=True)
shown = report.with_paper_numbers(table, profile, split=forget)

# %% [markdown]
# ## Outputs
# `tables/01_tofu_main` (CSV, Markdown, LaTeX) and `figures/01_fq_mu_scatter` (PDF, PNG).

# %%
caption = f"TOFU {forget}: forget quality, utility and truth ratios; Fluency = n-gram entropy (bits)"
report.save_table(shown, "01_tofu_main", tables_dir, caption=caption, profile=profile)
report.save_figure(plots.fq_mu_scatter(table[table["status"].fillna("completed") == "completed"]),
                   "01_fq_mu_scatter", figures_dir)
report.show(shown, profile, caption=caption)

# %% [markdown]
# ## What we see

# %%
t = table.set_index("method")
unlearned = t.drop(index=["Original", "Retain"])
best_fq = unlearned["FQ"].idxmax()
keeps_mu = unlearned[unlearned["MU"] >= t.loc["Original", "MU"] - 0.05]
print(f"Highest FQ: {best_fq} ({unlearned['FQ'].max():.3g}); PALU: FQ {t.loc['PALU', 'FQ']:.3g}, "
      f"MU {t.loc['PALU', 'MU']:.3f} (original {t.loc['Original', 'MU']:.3f}).")
print(f"Best FQ among methods keeping MU within 0.05 of the original: "
      f"{keeps_mu['FQ'].idxmax() if len(keeps_mu) else 'none'}.")
print("Paper's finding (PALU best FQ at original-level MU) reproduced at this scale:",
      bool(len(keeps_mu)) and keeps_mu["FQ"].idxmax() == "PALU")
