"""Every attack (the registry): SeqMIA, the shadow-trained baselines, the metric attacks and
the reference-model attacks, their fitting and their scores."""
