"""The one training loop and its recipe; classifier training; distillation into snapshots."""
