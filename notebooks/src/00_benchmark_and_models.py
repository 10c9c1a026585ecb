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
# Split sizes, answer lengths, sensitive spans per answer and the share of sensitive characters (TOFU's
# forget10: 26.9 words, 2.9 spans, 27.5% of the characters), and how many tokens each sensitive span has
# under the tokenizer, which never saw the fictitious names and places (TOFU's spans under Llama's tokenizer
# are several tokens long too): the prefix budgets N of notebook 04 select different tokens only if spans
# are longer than N.

# %%
from paperlib import report
from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import paths
from paperlib.engine.config import get_profile
from paperlib.report import plots
from paperlib.studies import calibration, claims
from paperlib.studies import palu as experiments

P = get_profile(profile)
forget = forget or P.benchmark.forget
print("benchmark:", pipeline.benchmark_source(P))
stats = experiments.dataset_stats(P)
span_tokens = experiments.sensitive_run_lengths(P, forget)
budgets = experiments.prefix_coverage(P, forget)

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
# ### Fidelity: our pair against real TOFU's
# Is the miniature's original / retain pair related as real TOFU's is? The same statistics
# (`paperlib.studies.calibration.statistics`) of our pair and of the published Llama-2-7B-chat forget05 pair
# (open-unlearning's evaluation logs, read from ../shared/data, never typed): the KS distance between the two
# models' forget truth ratios (what FQ tests), each model's forget truth-ratio aggregate, forget answer and
# paraphrased-answer probability, and the retain model's utility relative to the original's. Each row gives
# the range issue 22 asks of the miniature (`calibration.targets`) and whether our value is in it.

# %%
mini_stats = calibration.reference_statistics(P, forget)
real_stats = calibration.real_statistics()
fidelity = None if real_stats is None else calibration.fidelity_table(mini_stats, real_stats)
if fidelity is None:
    print(f"no fidelity table: the published Llama-2 logs are not in {paths.shared_data_dir()} "
          f"(set PAPERLIB_SHARED_DATA to the shared data folder)")

# %% [markdown]
# ### How the miniature was chosen
# Every design of the miniature that was tried (`paperlib.studies.calibration.DESIGNS`, measured by
# `make calibrate DESIGN=<name>` into benchmarks/calibration.json): what changed, the statistics above, the
# baselines' best FQ at >= 85% of the original's MU on notebook 01's grid (GA, GD, NPO, SimNPO, DPO, TPO only:
# no PALU number and no claim informed a design), and its minutes. The mini profile is the last design.

# %% [markdown]
# ## Outputs
# `tables/00_dataset_stats`, `tables/00_span_tokens`, `tables/00_models`, `tables/00_fidelity`,
# `tables/00_calibration` (CSV, Markdown, LaTeX), `figures/00_training_curves`, `figures/00_truth_ratios`
# (PDF, PNG).

# %%
report.save_table(stats, "00_dataset_stats", tables_dir, caption="Benchmark splits", profile=profile)
report.show(stats, profile, caption="Benchmark splits")

# %%
span_caption = f"Sensitive spans of {forget} by length in tokens, and the share of sensitive tokens each prefix budget N selects"
report.save_table(budgets, "00_span_tokens", tables_dir, caption=span_caption, profile=profile)
print("sensitive spans by length in tokens:", span_tokens.to_dict())
report.show(budgets, profile, caption=span_caption)

# %%
models_caption = f"Original and retain model on {forget}; Fluency = n-gram entropy (bits)"
report.save_table(models, "00_models", tables_dir, caption=models_caption, profile=profile)
_ = report.save_figure(plots.training_curves(curves), "00_training_curves", figures_dir)
_ = report.save_figure(plots.truth_ratio_hist(tr), "00_truth_ratios", figures_dir)
report.show(models, profile, caption=models_caption)

# %%
fidelity_caption = (f"Fidelity: our original / retain pair on {forget} (mini) against open-unlearning's "
                    f"Llama-2-7B-chat forget05 pair (real); target: the range issue 22 asks of the mini value")
if fidelity is not None:
    report.save_table(fidelity, "00_fidelity", tables_dir, caption=fidelity_caption, profile=profile)
    report.show(fidelity, profile, caption=fidelity_caption)

# %%
record = calibration.load_record()
if real_stats is not None and record:
    calibration.save_record_table(record, real_stats, tables_dir)
    print(calibration.record_table(record, real_stats).drop(columns="change").to_string(index=False))

# %% [markdown]
# ## What we see
# The verdict below comes from `paperlib.studies.claims.benchmark_claim` (tested on hand-made tables).
#
# Beside it, the same verdict on a second draw of the tiny models (base, original and retain trained from
# another seed; every selected point re-run on them with every seed, no new sweep: `experiments.redraw`).

# %%
second = experiments.second_draw(P)  # the tiny models trained from another seed
claims.show(claims.robust(claims.benchmark_claim(models),
                          second and claims.benchmark_claim(experiments.reference_rows(second, forget))))
