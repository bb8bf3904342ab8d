"""The schema of ``params.yaml``, one module per section, so that a stage depends on the schema
of the sections it reads and not on the others (see ``seqmia.params.schema``).

Kept empty: importing one section's module must not import the others.
"""
