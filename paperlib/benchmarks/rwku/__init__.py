"""RWKU and mini RWKU: data loader (`data`), mini generator (`mini`), settings per profile (`settings`), the mini
base stage (`base`), metrics and the "rwku" evaluator (`metrics`), evaluations and zero-shot texts (`evaluate`),
and its plug-in of the study protocol (`plugin`)."""
