"""The attack architectures that ``attack.architecture`` may name: one registry, with the other
names of the attack's params (input transforms, epoch selections).

Each entry names its builder in ``seqmia.attacks.networks``: (input_shape, hidden_size, num_layers,
mlp_widths) -> model. Builders are imported when first used, so validating params.yaml does not
pay for torch.
"""

from __future__ import annotations

from seqmia.base.lazy import Lazy

# attention_lstm is SeqMIA; lstm/gru drop the attention, attention_gru swaps the cell; mlp
# flattens the input (no time order).
ATTACKS: dict[str, Lazy] = {
    "attention_lstm": Lazy("seqmia.attacks.networks:recurrent_attack", cell="lstm", attention=True),
    "lstm": Lazy("seqmia.attacks.networks:recurrent_attack", cell="lstm", attention=False),
    "attention_gru": Lazy("seqmia.attacks.networks:recurrent_attack", cell="gru", attention=True),
    "gru": Lazy("seqmia.attacks.networks:recurrent_attack", cell="gru", attention=False),
    "mlp": Lazy("seqmia.attacks.networks:flat_mlp_attack"),
}
ATTACK_ARCHITECTURES = tuple(ATTACKS)

# How attack inputs are rescaled before training (``attack.input_transform``).
INPUT_TRANSFORMS = ("none", "standardize", "log_loss_metrics", "log_loss_metrics_standardize")
# How attack training picks the epoch whose weights it returns (``attack.selection``).
SELECTIONS = ("best_val_auc", "last")
