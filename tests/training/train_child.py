"""Run train_sft in its own process from a JSON spec: the kill/resume and multi-rank tests use it.

    python -m tests.training.train_child SPEC.json
    python -m torch.distributed.run --nproc_per_node 2 -m tests.training.train_child SPEC.json

SPEC: {"init": model dir, "out": out_dir, "records": n, "cfg": {TrainConfig fields}}. Rank 0
writes out_dir/../<out name>.result.json with the TrainResult fields (paths as strings).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path


def main(spec_path: str) -> None:
    from heal_batch.training import TrainConfig, train_sft
    from tests.training.conftest import chat_records

    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    result = train_sft(chat_records(spec["records"]), spec["init"], out, TrainConfig(**spec["cfg"]))
    if os.environ.get("RANK", "0") == "0":
        fields = dataclasses.asdict(result)
        fields["hf_dir"] = str(fields["hf_dir"])
        out.with_name(out.name + ".result.json").write_text(json.dumps(fields))


if __name__ == "__main__":
    main(sys.argv[1])
