"""The names of a partition: its five disjoint parts and the two roles that own four of them.

Standard library only: params validation reads these names.
"""

# The original models whose members an attack tells apart: the audited one and the attacker's.
ROLES = ("target", "shadow")
# The five disjoint parts, in the order they are dealt: each role's members and non-members,
# then the attacker's distillation data.
PARTS = ("target_in", "target_out", "shadow_in", "shadow_out", "distill")
