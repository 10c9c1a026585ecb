"""MUSE and mini-MUSE: data loader (`data`), mini generator (`mini`), scale and models (`models`), metrics
(`metrics`) and the evaluator with its cached evaluations and spans (`evaluate`)."""
