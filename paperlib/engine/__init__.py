"""The engine: settings and profiles, the run cache, the one training loop, the reference pass, one unlearning
run (`unlearn`), executors that run planned requests, tiny-model training, threads / paths / errors / provenance.
It holds no paper's question; TOFU is the default benchmark of a `unlearn()` call (`paperlib.benchmarks.tofu`)."""
