# %% [markdown]
# # 07 · Efficiency: O(TK) vs O(TV)
#
# **Question.** How much does restricting the loss to the top-K logits of a few prefix tokens save?
#
# **Paper's claim.** PALU's loss touches T_prefix x K logits instead of T x V, so it is cheaper per step than
# full-vocabulary objectives, and it converges in fewer epochs.
#
# The next cell holds the parameters (papermill: `-p profile smoke`). Empty folders mean the project's
# `figures/` and `tables/`, whatever folder the notebook runs in; the run cache is the project's `runs/`
# (or `$PAPERLIB_CACHE`), shared with `make reproduce`.

# %%
profile = "mini"  # smoke, mini or paper
forget = ""  # empty: the split of the profile (mini forget10, paper forget05)
figures_dir = ""  # empty: the project's figures/
tables_dir = ""  # empty: the project's tables/
retime = False  # True: time the losses again (else a timing cached for this code and machine is re-read)

# %% [markdown]
# ## Computation
# The loss alone (forward + backward, median and sd over repeats) for each K and vocabulary size V, measured
# once per code version and machine (CPU, threads, torch) and kept in the run cache: the table's caption says
# when and on what, `retime = True` measures again; the seconds per unlearning step of every method at its
# tuned point (the runs of notebook 01, cached); FQ and MU against wall time for PALU and negated CE (the runs
# of notebook 03, cached).

# %%
from paperlib import report
from paperlib.engine.config import get_profile
from paperlib.report import plots
from paperlib.studies import claims
from paperlib.studies import palu as experiments
from paperlib.studies import timing as loss_timing

P = get_profile(profile)
forget = forget or P.benchmark.forget
ks = [1, 64, 320, 640, 1000, 5000, 10000]
vocab_sizes = [2048, 8192, 32000] if profile != "smoke" else [512, 2048]
timing, measured = loss_timing.cached_loss_timing(ks, vocab_sizes, tokens=256 if profile != "smoke" else 64,
                                                  force=retime)
steps = experiments.timing_table(experiments.tune(P, experiments.main_runs(P), forget))
curves = experiments.epoch_curves(P, experiments.tune(P, experiments.nce_runs(P), forget, curves=True), forget)

# %% [markdown]
# ## Outputs
# `tables/07_loss_timing`, `tables/07_step_times`, `figures/07_loss_timing`, `figures/07_convergence`.

# %%
report.save_table(timing, "07_loss_timing", tables_dir,
                  caption=f"Loss forward+backward time (ms, median ± sd over repeats, CPU; "
                          f"{loss_timing.timing_note(measured)})", profile=profile)
report.save_table(steps, "07_step_times", tables_dir, caption="Seconds per unlearning step (CPU, mean ± sd over seeds)",
                  profile=profile)
_ = report.save_figure(plots.timing(timing), "07_loss_timing", figures_dir)
refs = experiments.reference_rows(P, forget)
_ = report.save_figure(plots.metric_lines(curves, "train s", ["FQ", "MU"], hue="method", title="Metric vs wall time",
                                          references=refs), "07_convergence", figures_dir)
report.show(steps, profile, caption="Seconds per unlearning step (CPU, mean ± sd over seeds)")

# %% [markdown]
# ## What we see
# The verdict comes from `paperlib.studies.claims.efficiency_claim`: at the largest V, the top-K loss must be
# faster than the full-vocabulary loss at every K < V/4, beyond the spread over repeats.

# %%
claims.show(claims.efficiency_claim(timing))
