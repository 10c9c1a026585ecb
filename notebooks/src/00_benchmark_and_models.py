# %% [markdown]
# # 00 · Benchmark and models
#
# **Question.** Does the TOFU-shaped benchmark behave like TOFU: does the *original* model (fine-tuned on all
# authors) memorise the forget authors while the *retain* model (never shown them) does not know them?
#
# **Paper's claim (TOFU's design, Maini et al., 2024).** The original model answers its training questions
# almost verbatim (Llama-2-7B-chat: EM 0.999 on forget05) and its forget-set truth ratios differ sharply from
# the retain model's (forget quality 5.9e-14), while both keep general knowledge (model utility 0.628 vs
# 0.627). Every later notebook unlearns from this original model and scores against this retain model.
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
# ### The benchmark
# Split sizes, answer lengths and the exact sensitive spans that PALU unlearns.

# %%
from paperlib import experiments, pipeline, plots, report
from paperlib.config import get_profile

P = get_profile(profile)
forget = forget or P.benchmark.forget
print("benchmark:", pipeline.benchmark_source(P))
stats = experiments.dataset_stats(P)

# %% [markdown]
# ### Fine-tuning the original and the retain model (cached after the first run)

# %%
print(pipeline.finetune_report(P, forget))
curves = experiments.training_curves(P, forget)

# %% [markdown]
# ### Original vs retain model

# %%
tr = experiments.truth_ratios(P, forget)
models = experiments.reference_rows(P, forget)

# %% [markdown]
# ## Outputs
# `tables/00_dataset_stats`, `tables/00_models` (CSV, Markdown, LaTeX), `figures/00_training_curves`,
# `figures/00_truth_ratios` (PDF, PNG).

# %%
report.save_table(stats, "00_dataset_stats", tables_dir, caption="Benchmark splits", profile=profile)
report.show(stats, profile, caption="Benchmark splits")

# %%
models_caption = f"Original and retain model on {forget}; Fluency = n-gram entropy (bits)"
report.save_table(models, "00_models", tables_dir, caption=models_caption, profile=profile)
report.save_figure(plots.training_curves(curves), "00_training_curves", figures_dir)
report.save_figure(plots.truth_ratio_hist(tr), "00_truth_ratios", figures_dir)
report.show(models, profile, caption=models_caption)

# %% [markdown]
# ## What we see
# The closing numbers are printed below from this run; compare them with TOFU's design above.

# %%
orig, ret = models.set_index("method").loc["Original"], models.set_index("method").loc["Retain"]
print(f"Original EM {orig['EM']:.3f} vs retain {ret['EM']:.3f}; FQ(original) = {orig['FQ']:.2e}; "
      f"MU {orig['MU']:.3f} vs {ret['MU']:.3f}.")
print("TOFU's design reproduced:" if orig["FQ"] < 1e-3 and abs(orig["MU"] - ret["MU"]) < 0.1 else "NOT reproduced:",
      "the original memorises the forget authors, the retain model does not, and both keep general knowledge.")
