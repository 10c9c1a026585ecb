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
# PALU with each K of the grid (cached runs), evaluated on TOFU, and the seconds per unlearning step.

# %%
from paperlib import experiments, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
runs = experiments.topk_runs(P)
table = experiments.results_table(P, runs, forget).rename(columns={"method": "K"})
table["s / step"] = experiments.step_times(P, runs, forget)["s / step"].values

# %% [markdown]
# ## Outputs
# `tables/05_topk_size` (CSV, Markdown, LaTeX) and `figures/05_topk_size` (PDF, PNG).

# %%
report.save_table(table, "05_topk_size", tables_dir, caption="PALU with top-K size K", profile=profile)
table["K"] = table["K"].astype(int)
report.save_figure(plots.metric_lines(table, "K", ["FQ", "MU", "s / step"], logx=True, title="Top-K size"),
                   "05_topk_size", figures_dir)
report.show(table, profile, caption="PALU with top-K size K")

# %% [markdown]
# ## What we see

# %%
t = table.set_index("K")
print(f"Best FQ at K = {t['FQ'].idxmax()} of the grid {list(t.index)}")
print("Paper's finding (K = 1 forgets least; a mid-sized K is best) reproduced:",
      t["FQ"].idxmin() == t.index.min() and t["FQ"].idxmax() not in (t.index.min(),))
