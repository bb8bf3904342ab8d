"""Data: ``readers`` turns published files into arrays (the prepare stage); ``inputs`` turns
prepared arrays into model inputs (every stage that runs a model). Kept apart so a change to one
does not rerun the stages of the other."""
