"""Classifier architectures (the registry), building them fresh or from saved weights, and
querying them for logits."""
