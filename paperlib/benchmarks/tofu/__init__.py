"""TOFU and mini-TOFU: data loader (`data`), mini generator (`mini`), cached stages (`pipeline`: benchmark folder,
tokenizer, base / original / retain models, evaluations), evaluation (`evaluate`) and metrics (`metrics`)."""
