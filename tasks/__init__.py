"""Prefect tasks: load artefacts, call one core function, write artefacts.

Tasks that write DVC outputs never use Prefect's result cache: DVC deletes a stage's outputs
before rerunning it, and a cache hit would then leave nothing behind.
"""
