"""The SeqMIA core library: plain typed functions on tensors, arrays and data frames, one
sub-package per concern, each importing only those below it (base, data, models, training,
target, attacks, audit; params, the schema of params.yaml, above them all)."""
