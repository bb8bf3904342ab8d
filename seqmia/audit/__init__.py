"""The evaluate stage's protocol (every attack scored and reported), plots, the HTML report,
tables across experiments, and a diagnostic of attack models' units."""
