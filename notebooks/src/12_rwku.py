# %% [markdown]
# # 12 · RWKU: unlearning real-world knowledge from raw text (Unilogit paper, RWKU setting)
#
# **Question.** Trained only on passages about a target (no QA pairs, no retain corpus), how much of the
# target's knowledge do GA, NPO, UnDIAL, Unilogit and PALU remove, as RWKU probes it (fill-in-the-blank, QA and
# adversarial questions), and how much knowledge about related people (neighbours) survives?
#
# **Paper's claim (Unilogit, RWKU table).** Unilogit forgets more than UnDIAL at a similar utility.
#
# Mini RWKU (`paperlib.benchmarks.rwku.mini`): invented people learned by a tiny Llama in a base stage
# (`paperlib.benchmarks.rwku.base`); each target is unlearned on its own from its passages, then evaluated with RWKU's
# prompts and metrics (`paperlib.benchmarks.rwku.metrics`). PALU trains on automatic spans of the passages (the
# model-free capitalised-words annotator of `paperlib.benchmarks.spans`); DPO / TPO need IdK answers to questions, which
# raw passages do not have (see `paperlib.benchmarks.rwku.evaluate`).
#
# The next cell holds the parameters (papermill: `-p profile smoke`). Empty folders mean the project's
# `figures/` and `tables/`, whatever folder the notebook runs in.

# %%
profile = "mini"  # smoke, mini or paper
figures_dir = ""  # empty: the project's figures/
tables_dir = ""  # empty: the project's tables/

# %% [markdown]
# ## Computation
# Tuning protocol (`paperlib.methods.tuning`, fixed before any result, the same for every method): per target, the
# learning-rate grid evaluated after every epoch; the reported point has the highest FQ = 100 - forget All with
# MU = neighbour All >= 95% of the original model's (the utility for selection is the neighbour knowledge);
# that point is re-run with the grid's seeds. Every method runs without a retain term (RWKU's setting).

# %%
from paperlib import report
from paperlib.benchmarks.rwku import evaluate as rwku
from paperlib.engine.config import get_profile
from paperlib.studies import claims
from paperlib.studies import rwku as rwku_study

P = get_profile(profile)
print(rwku_study.describe(P))
print("targets:", rwku.target_names(P))
tuned = rwku_study.tune(P)
rows = rwku_study.per_target(tuned)
table = rwku_study.results_table(tuned)

# %% [markdown]
# **Is the miniature faithful?** The original model against Llama-3-8B-Instruct's numbers before unlearning
# (RWKU paper, Table 1), the number of targets, and issue 23's checks: the multiple-choice utility must lie above
# chance (`rwku_calibration.utility_above_chance`, a binomial test; else its column is dropped from the tables, for the reason
# printed), and a baseline (GA or NPO) must lower forget All beyond the seed spread while keeping 95% of the
# original model's neighbour All (mean over targets; MU95 says in how many targets the seed mean keeps it).

# %%
from paperlib.studies import rwku_calibration

items = rwku_calibration.mcq_items(P)
gen_kept, gen_reason = rwku_calibration.utility_above_chance(tuned["original"], items)
print(gen_reason)
if not gen_kept:
    table, rows = rwku_calibration.without_gen(table), rwku_calibration.without_gen(rows)
fidelity = rwku_calibration.fidelity_table(table, tuned["original"], items)
report.save_table(fidelity, "12_rwku_fidelity", tables_dir, caption="Mini vs real RWKU (issue 23's checks)",
                  profile=profile)
report.show(fidelity, profile, caption="Mini vs real RWKU")

# %% [markdown]
# **Forget corpus: passages vs the model's own texts.** The real RWKU trains on text the original model
# generated about the target (zero-shot: only its name is given). `rwku.generated_corpus` samples
# `gen_texts` texts of `gen_tokens` tokens per target from the base model (prompt `rwku.GENERATION_PROMPT`,
# fixed seed, cached). Each method is re-run on that corpus at the learning rate and epoch it selected on the
# passages (seed 0, no new sweep) and compared with its seed-0 passages run.

# %%
S = rwku.settings(P)
print(f"generated corpus: {S.gen_texts} texts x {S.gen_tokens} tokens per target, seed {S.gen_seed}, "
      f"prompt {rwku.GENERATION_PROMPT!r}")
print("first generated text of", rwku.target_names(P)[0], ":", rwku.generated_corpus(P, rwku.target_names(P)[0])[0])
compared = rwku_study.compare_corpora(P, tuned)
corpora = rwku_study.corpus_table(compared)

# %% [markdown]
# ## Outputs
# `tables/12_rwku` (RWKU's layout, x 100: mean over targets ± sd over seeds, and the sd over targets of forget
# All and neighbour All), `tables/12_rwku_fidelity` (above), `tables/12_rwku_targets` (every target, mean ± sd
# over seeds) and
# `figures/12_rwku` (one dot per target); `tables/12_forget_corpus` (forget All, neighbour All, MIA FM per
# forget corpus and method at the selected point, seed 0, mean ± sd over targets).

# %%
caption = ("Mini RWKU: forget (lower better), neighbour (higher better), MIA, utility; mean over targets ± sd over "
           "seeds (of the mean over targets); 'sd over targets': of the targets' seed means")
report.save_table(table, "12_rwku", tables_dir, caption=caption, profile=profile)
report.save_table(rows, "12_rwku_targets", tables_dir, caption="Mini RWKU per target (mean ± sd over seeds)",
                  profile=profile)
_ = report.save_figure(rwku_study.spread_figure(rows), "12_rwku", figures_dir)
report.show(table, profile, caption=caption)
corpus_caption = ("Mini RWKU: passages vs the base model's generated texts as forget corpus (seed 0, mean ± sd over "
                  "targets)")
report.save_table(corpora, "12_forget_corpus", tables_dir, caption=corpus_caption, profile=profile)
report.show(corpora, profile, caption=corpus_caption)

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.rwku_claim`: Unilogit must lower forget All below UnDIAL's at a
# similar utility (neighbour All not lower), each beyond the spread over seeds (of the mean over targets); it
# is decided only when one of the two forgot (forget All below the original model's beyond the spread), else
# "not testable here". The sentences after it say which targets keep the neighbour knowledge at the selected
# point (`rwku_study.keeps_neighbours_sentence`) and compare the two forget corpora (`rwku_study.corpus_sentence`).
#
# Beside the verdict, the same claim on a second draw of the tiny base model (trained from another seed; every
# target's selected points re-run on it with every seed, no new sweep: `rwku_study.redraw`).

# %%
second = rwku_study.redraw(P, tuned)
claims.show(claims.robust(claims.rwku_claim(table), second and claims.rwku_claim(rwku_study.results_table(second[1]))))
print(rwku_study.keeps_neighbours_sentence(tuned))
print(rwku_study.corpus_sentence(corpora))
