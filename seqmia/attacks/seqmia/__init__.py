"""SeqMIA's own inputs: the metrics (their registry) and the metric sequences of a model's
snapshots, and the tables they are stored in."""
