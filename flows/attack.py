"""Stage attack: the attention-LSTM attack model, trained on shadow sequences, into data/attack/."""

from prefect import flow

from flows._stage import run, setup
from tasks.attack import check_attack_inputs, train_seqmia_attack


@flow(name="attack")
def attack_flow(params_file: str = "params.yaml") -> dict:
    """Learn member vs non-member from the shadow model's metric sequences."""
    params, layout = setup(params_file)
    check_attack_inputs(layout)
    return train_seqmia_attack(params.attack, params.seed, params.device, layout)


if __name__ == "__main__":
    run(attack_flow, __doc__)
