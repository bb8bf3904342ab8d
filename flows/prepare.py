"""Stage prepare: read the dataset into data/prepared/."""

from prefect import flow

from flows._stage import run, setup
from tasks.prepare import prepare_dataset


@flow(name="prepare")
def prepare_flow(params_file: str = "params.yaml") -> dict:
    """Read ``data.name`` from the data root into one array artefact with its provenance."""
    params, layout = setup(params_file)
    return prepare_dataset(params.data, layout)


if __name__ == "__main__":
    run(prepare_flow, __doc__)
