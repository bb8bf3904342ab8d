"""The SeqMIA core library: plain typed functions on tensors, arrays and data frames."""
