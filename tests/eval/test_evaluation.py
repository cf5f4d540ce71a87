"""heal_batch.evaluation.harness: task YAMLs load, one real lm-eval run over all benchmarks,
records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lm_eval.api.model import LM

from heal_batch.evaluation import harness as ev
from heal_batch.evaluation.harness import (
    BENCHMARK_FILES,
    BENCHMARKS,
    DATA_BENCHMARKS,
    TASKS_DIR,
    EvalConfig,
)
from heal_batch.stages.evaluate import write_arith

N_SAMPLES, LIMIT, MAX_TOKS = 2, 2, 8


@pytest.fixture
def data_with_arith(shared_data, tmp_path):
    """The benchmark folder (links to ../shared/data) plus the generated held-out arith file."""
    for name in set(BENCHMARK_FILES.values()) - {BENCHMARK_FILES["arith"]}:
        (tmp_path / name).symlink_to(shared_data / name)
    write_arith(tmp_path, count=12, seed=1000)
    return tmp_path


def test_every_task_yaml_loads_its_full_file(data_with_arith):
    from lm_eval.tasks import TaskManager

    shared_data = data_with_arith
    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": str(shared_data)}
    )
    yamls = sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))
    expected = sorted(list(BENCHMARKS) + [f"{b}_sampled" for b in BENCHMARKS])
    assert yamls == expected
    names = [f"heal_{b}_{kind}" for b in BENCHMARKS for kind in ("greedy", "sampled")]
    tasks = manager.load(names)["tasks"]
    assert sorted(tasks) == sorted(names)
    for name, task in tasks.items():
        bench = name.removeprefix("heal_").rsplit("_", 1)[0]
        docs = task.test_docs()
        assert len(docs) == len(ev.benchmark_problems(bench, shared_data)), name
        assert task.doc_to_text(docs[0]).endswith("within \\boxed{}."), name
        assert task.config.repeats == (4 if name.endswith("_sampled") else 1)


def test_benchmark_problems_reads_file_order(shared_data):
    problems = ev.benchmark_problems("gsm8k", shared_data)
    first = json.loads((shared_data / BENCHMARK_FILES["gsm8k"]).open().readline())
    assert len(problems) == 1319 and problems[0] == first["problem"]


def test_config_errors_list_choices():
    with pytest.raises(ValueError, match="unknown benchmark 'math5000'; expected one of math500"):
        EvalConfig(benchmarks=["math5000"])
    with pytest.raises(ValueError, match="backend='sglang'"):
        EvalConfig(backend="sglang")
    with pytest.raises(ValueError, match="nothing to evaluate"):
        EvalConfig(n_samples=0, greedy=False)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        EvalConfig(data_dir="/no/such/dir").resolved_data_dir()


def test_model_spec_passes_think_end_and_extra_args():
    cfg = EvalConfig(think_end="</think>", dtype="bfloat16", model_args={"max_length": 2048})
    model, args = ev._model_spec("/ckpt", cfg)
    assert model == "hf"
    assert args["think_end_token"] == "</think>" and args["max_length"] == 2048
    assert args["pretrained"] == "/ckpt" and args["dtype"] == "bfloat16"
    assert args["device"] in ("cpu", "cuda")


@pytest.fixture(scope="module")
def run(tiny_llama, shared_data, tmp_path_factory):
    """ONE lm-eval call: all seven benchmarks x (greedy, sampled) on LIMIT problems each.

    think_end is set so that lm-eval's think_end_token path runs too (the tiny model never emits
    it).
    """
    cfg = EvalConfig(
        data_dir=str(shared_data),
        n_samples=N_SAMPLES,
        temperature=0.7,
        top_p=0.9,
        max_gen_toks=MAX_TOKS,
        limit=LIMIT,
        batch_size=16,
        dtype="float32",
        think_end="</think>",
    )
    out = tmp_path_factory.mktemp("eval_out")
    return ev.run_benchmarks(str(tiny_llama), list(DATA_BENCHMARKS), cfg, out), out


def test_run_returns_one_record_per_benchmark(run):
    records, _ = run
    assert [r["benchmark"] for r in records] == list(DATA_BENCHMARKS)
    for rec in records:
        assert rec["num_problems"] == LIMIT
        for key in ("greedy_acc", "avg_at_n", "pass_at_n", "answered_greedy", "answered_sampled"):
            assert 0.0 <= rec[key] <= 1.0, (rec["benchmark"], key)
        assert rec["avg_at_n"] <= rec["pass_at_n"]


def test_record_carries_sampling_params_and_versions(run, tiny_llama):
    rec = run[0][0]
    assert rec["model"] == str(tiny_llama)
    expected = {"n_samples": N_SAMPLES, "temperature": 0.7, "top_p": 0.9, "limit": LIMIT}
    assert {k: rec[k] for k in expected} == expected
    assert rec["max_gen_toks"] == MAX_TOKS and rec["backend"] == "hf" and rec["seed"] == 0
    assert rec["apply_chat_template"] is True and rec["think_end"] == "</think>"
    assert {"lm_eval", "transformers", "torch", "math_verify"} <= set(rec["versions"])
    assert "vllm" not in rec["versions"]  # only recorded for the vllm backend
    assert rec["versions"]["lm_eval"] == "0.4.13"
    assert rec["seconds"] > 0
    json.dumps(rec)  # the record goes into a shard as is


def test_lm_eval_files_are_kept(run):
    records, out = run
    results = json.loads(Path(records[0]["results_file"]).read_text())
    assert Path(records[0]["results_file"]).parent == out
    assert len(results["results"]) == 2 * len(DATA_BENCHMARKS)
    sampled = results["configs"]["heal_math500_sampled"]
    assert sampled["repeats"] == N_SAMPLES
    assert sampled["generation_kwargs"]["temperature"] == 0.7
    for rec in records:
        assert len(rec["samples_files"]) == 2
        for path in rec["samples_files"]:
            rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
            assert len(rows) == LIMIT
            is_sampled = "_sampled_" in Path(path).name
            n = N_SAMPLES if is_sampled else 1
            assert len(rows[0]["resps"][0]) == len(rows[0]["filtered_resps"][0]) == n
            prompt, gen_kwargs = rows[0]["arguments"]["gen_args_0"].values()
            assert prompt.startswith("<|im_start|>user\n")  # chat template applied
            assert gen_kwargs["do_sample"] is is_sampled
            assert gen_kwargs["max_gen_toks"] == MAX_TOKS


@pytest.mark.slow
class ScriptedLM(LM):
    """A stand-in model with known answers: greedy is right, sampled alternates right/wrong."""

    def __init__(self, answer: str):
        super().__init__()
        self.answer, self.sampled = answer, 0

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for req in requests:
            if req.args[1]["do_sample"]:
                self.sampled += 1
                out.append(rf"\boxed{{{self.answer}}}" if self.sampled % 2 else r"\boxed{-1}")
            else:
                out.append(f"...\n#### {self.answer}")
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    loglikelihood_rolling = loglikelihood


def test_known_answers_score_through_lm_eval(shared_data, tmp_path, monkeypatch):
    answer = json.loads((shared_data / "gsm8k_test.jsonl").open().readline())["answer"]
    monkeypatch.setattr(ev, "_model_spec", lambda *_: (ScriptedLM(answer), None))
    cfg = EvalConfig(data_dir=str(shared_data), n_samples=4, limit=1, apply_chat_template=False)
    rec = ev.run_benchmark("scripted", "gsm8k", cfg, tmp_path)
    assert rec["greedy_acc"] == 1.0  # '#### N' counts for GSM8K
    assert rec["avg_at_n"] == 0.5 and rec["pass_at_n"] == 1.0 and rec["answered_sampled"] == 1.0
    assert rec["greedy_flex_acc"] == 1.0 and rec["flex_avg_at_n"] == 0.5


class ProseLM(ScriptedLM):
    """Answers in prose, never with \\boxed{}: strict accuracy 0, lenient accuracy 1."""

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for req in requests:
            answer = next(a for problem, a in self.answer.items() if problem in req.args[0])
            out.append(f"{answer} So, the answer is {answer}.")
        return out


def test_arith_is_read_from_the_generated_file_and_graded_leniently(tmp_path, monkeypatch):
    path = write_arith(tmp_path / "data", count=5, seed=7)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    answers = {r["problem"]: r["answer"] for r in rows}
    monkeypatch.setattr(ev, "_model_spec", lambda *_: (ProseLM(answers), None))
    cfg = EvalConfig(data_dir=str(tmp_path / "data"), n_samples=0, apply_chat_template=False)
    rec = ev.run_benchmark("scripted", "arith", cfg, tmp_path / "out")
    assert rec["num_problems"] == 5 and rec["benchmark"] == "arith"
    assert rec["greedy_acc"] == 0.0 and rec["answered_greedy"] == 0.0
    assert rec["greedy_flex_acc"] == 1.0
