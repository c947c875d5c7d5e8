"""`examples/` is what `demo.examples` writes: the committed files cannot drift
from the formats the adapters read (the README's commands load them)."""

import io
from pathlib import Path

import pyarrow.parquet as pq

from demo.examples import example_files

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_committed_examples_are_the_generated_ones() -> None:
    generated = example_files()
    committed = {
        str(p.relative_to(EXAMPLES)): p.read_bytes() for p in EXAMPLES.rglob("*") if p.is_file()
    }
    assert sorted(committed) == sorted(generated)
    for name, body in generated.items():
        if name.endswith(".parquet"):  # the writer's version is in the file's metadata
            assert pq.read_table(io.BytesIO(committed[name])).equals(
                pq.read_table(io.BytesIO(body))
            ), name
        else:
            assert committed[name] == body, name
