"""What every concern stands on: user errors, named random streams, devices, atomic and
checksummed files, ROC arithmetic, one stop for a stage's work, jobs side by side."""
