"""Datasets (the registry and their readers), the prepared arrays, model inputs, and the
partition into five disjoint parts. ``readers`` turns published files into arrays (the prepare
stage) and ``inputs`` prepared arrays into model inputs (every stage that runs a model): kept
apart so a change to one does not rerun the stages of the other."""
