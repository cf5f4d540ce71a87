"""heal_batch.report: every section renders from a fake run folder, from an empty one, and from a
partial one; numbers in the report match the canned records; the HTML is self-contained."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import pytest

from heal_batch.executors import make_executor
from heal_batch.pipeline.launch import launch
from heal_batch.pipeline.registry import STAGES
from heal_batch.report import write_report
from heal_batch.report.collect import collect
from heal_batch.report.labels import SECTION_TITLES as TITLES
from heal_batch.report.render import Figure, Section, Table, to_html, to_markdown
from tests.report.fake_run import CANNED, STAGE_NAMES, build_config


def make_run(tmp_path, monkeypatch, stages=STAGE_NAMES, kept_repairs=3):
    for name in stages:
        monkeypatch.setitem(STAGES, name, CANNED[name])
    cfg = build_config(tmp_path, stages, kept_repairs)
    launch(cfg, make_executor("debug"), list(stages), echo=lambda *_: None)
    return tmp_path / "run"


@pytest.fixture
def full_run(tmp_path, monkeypatch):
    return make_run(tmp_path, monkeypatch)


def sections_of(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_full_run_fills_every_section(full_run):
    html_path = write_report(full_run)
    assert html_path == full_run / "report" / "report.html"
    md = (full_run / "report" / "report.md").read_text()
    sections = sections_of(md)
    assert list(sections) == list(TITLES)
    assert "Not run yet" not in md and "Could not read" not in md
    assert re.search(
        r"\| evaluate \| \w{12} \| 12/12 \| 0 \| 0 \| yes \| 12 \|", sections["Stages"]
    )
    counts = sections["Counts and drop reasons"]
    assert "| curriculum | top_lambda | 5 |" in counts and "| heal-3 | 18 | 0 | 1 |" in counts
    assert "| repair | no_correct_continuation | 1 | 8.3% |" in counts
    assert "6 problems, 30 teacher trajectories, k = 5" in sections["Teacher pass rates"]
    assert "easy 2, hard 1, corner 3" in sections["Teacher pass rates"]
    corner = sections["Corner cases: repaired and kept by PURE"]
    assert "| problems in bucket (teacher) | 3 | 1 |" in corner
    assert "|   outcome: no_correct_continuation | 1 | 0 |" in corner
    assert "| candidates (correct, hint-free) | 4 | 3 |" in corner
    assert "| kept in training sets (curriculum) | 3 | 3 |" in corner
    assert "in set heal-3: kept 18, dropped not_in_set 0, top_lambda 1 (PURE's rules" in corner
    entropy = sections["Entropy curves and breakpoints"]
    assert "p3#s1#c0 (surge: entropy surge; kept by PURE)" in entropy and "p5#s1#c0" in entropy
    assert "⟦breakpoint⟧" in entropy
    assert "| heal-3 | 3 | 12 | 3 | 18 |" in sections["Curriculum composition"]
    assert "entropy_0.png" in entropy and "entropy_1.png" in entropy
    assert "| rs | train-baselines | 5 | 0.4000 |" in sections["Training loss"]
    evaluation = sections["Evaluation"]
    assert "| checkpoint | math500 | gsm8k |" in evaluation
    rows = [
        line.split(" | ")[0]
        for line in evaluation.splitlines()
        if line.startswith("| ") and "±" in line
    ]
    assert rows[:6] == [
        "| base student",
        "| RS-SFT (rs)",
        "| flat (all data)",
        "| HEAL stage I",
        "| HEAL stage II",
        "| HEAL stage III",
    ]
    assert "| HEAL stage III | 0.500 ± 0.100 | 0.500 ± 0.100 |" in evaluation
    assert "n_samples=2, temperature=0.6" in evaluation and "lm_eval 0.4.13" in evaluation


def test_html_is_self_contained_with_every_figure(full_run):
    html = write_report(full_run).read_text()
    for title in TITLES:
        assert f">{title}</h2>" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    pngs = sorted(p.name for p in (full_run / "report").glob("*.png"))
    assert len(images) == len(pngs) == 7, pngs
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # nothing loaded from elsewhere
    md = (full_run / "report" / "report.md").read_text()
    assert sorted(re.findall(r"\]\(([\w-]+\.png)\)", md)) == pngs


def test_empty_run_folder_says_not_run_yet(tmp_path):
    write_report(tmp_path)
    sections = sections_of((tmp_path / "report" / "report.md").read_text())
    assert list(sections) == list(TITLES)
    for title, body in sections.items():
        assert "Not run yet" in body, title


def test_partial_run_reports_progress_and_missing_stages(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAL_BATCH_FAILPOINTS", "generate/1@before-run=raise")
    run = make_run(tmp_path, monkeypatch, stages=("generate",))
    sections = sections_of((write_report(run).parent / "report.md").read_text())
    rates = sections["Teacher pass rates"]
    assert "generate: 1/2 tasks done" in rates and "3 problems, 15 teacher trajectories" in rates
    for title in (TITLES[0], *TITLES[4:]):
        assert "Not run yet" in sections[title], title


def test_unreadable_section_does_not_hide_the_others(full_run):
    for log in full_run.parent.glob("*_train_log.jsonl"):
        log.write_text("{not json\n")
    data = collect(full_run)
    assert "JSONDecodeError" in data.errors["training"] and data.evaluation
    sections = sections_of((write_report(full_run).parent / "report.md").read_text())
    assert "Could not read training data: JSONDecodeError" in sections["Training loss"]
    assert "HEAL stage III" in sections["Evaluation"]


def test_render_escapes_text():
    section = Section(
        "A <b>", ["x < y", Table(["h|1"], [["<script>"]]), Figure("f", b"\x89PNG", "cap & more")]
    )
    html = to_html([section], "T", "sub")
    assert "<script>" not in html and "&lt;script&gt;" in html and "cap &amp; more" in html
    assert "| h\\|1 |" in to_markdown([section], "T", "sub")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_chromium_renders_the_report(full_run, tmp_path):
    from matplotlib.image import imread

    html = write_report(full_run)
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels[..., :3].std() > 0.05  # not a blank page


def test_report_reads_real_generate_output(tmp_path, tiny_llama):
    """ingest + the real generate stage on the tiny model (8 tokens): pass rates per problem."""
    if "generate" not in STAGES or STAGES["generate"].__module__ != "heal_batch.stages.generate":
        pytest.skip("the generate stage is not registered")
    from heal_batch.config import PipelineConfig
    from heal_batch.stages.generate import GenerateConfig
    from heal_batch.stages.ingest import IngestConfig
    from heal_batch.stages.teacher import TeacherConfig

    cfg = PipelineConfig(
        workdir=str(tmp_path / "run"),
        executor="debug",
        ingest=IngestConfig(paths=["builtin:arith?count=4&seed=0"], num_shards=1),
        teacher=TeacherConfig(model=str(tiny_llama), dtype="float32", examples=[]),
        generate=GenerateConfig(k=2, max_new_tokens=8),
    )
    assert (
        launch(cfg, make_executor("debug"), ["ingest", "generate"], echo=lambda *_: None).failed
        == {}
    )
    md = (write_report(tmp_path / "run").parent / "report.md").read_text()
    rates = sections_of(md)["Teacher pass rates"]
    assert "4 problems, 8 teacher trajectories, k = 2" in rates and "pass_rates.png" in rates
    assert "| generate | " in sections_of(md)["Counts and drop reasons"]


def test_greedy_only_evaluation_charts_greedy_accuracy_and_lists_the_lenient_table():
    from heal_batch.report.evaltable import evaluation_blocks

    records = [
        {
            "checkpoint": c,
            "benchmark": "arith",
            "greedy_acc": acc,
            "greedy_acc_stderr": 0.05,
            "greedy_flex_acc": 0.3,
            "greedy_flex_acc_stderr": 0.08,
            "avg_at_n": None,
            "num_problems": 30,
            "n_samples": 0,
        }
        for c, acc in (("base", 0.0), ("heal-3", 0.133))
    ]
    blocks = evaluation_blocks(records)
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert len(figures) == 1 and figures[0].caption.startswith("greedy accuracy per benchmark")
    titles = [b for b in blocks if isinstance(b, str)]
    assert not any(t.startswith("avg@n") for t in titles)  # that pass did not run
    assert any(t.startswith("greedy accuracy, lenient") for t in titles)
    tables = [b for b in blocks if isinstance(b, Table)]
    assert ["HEAL stage III", "0.133 ± 0.050"] in tables[0].rows


def test_report_leads_with_what_heal_added(full_run):
    md = (write_report(full_run).parent / "report.md").read_text()
    assert md.index("## What HEAL added") < md.index("## Stages")
    added = sections_of(md)["What HEAL added"]
    assert "| set | natural | answer-guided | repaired | total |" in added
    assert "| HEAL stage II | 12 | 3 | 0 | 15 |" in added
    assert "| HEAL stage III | 12 | 3 | 3 (2 derived) | 18 |" in added
    assert '"derived": the oracle\'s count' in added  # named only where a set counted it
    assert "Warning" not in added  # every HEAL set adds to the one before it
    assert "(4 candidates: derived 3, shortcut 1;" in added
    assert "PURE kept 3, 2 of them derived. Precision 0.67" in added and "recall 0.67" in added
    assert "| top_lambda | 1 | 1 |" in added and "| (kept) | 3 | 2 |" in added
    assert "| in a set | p3#s1#c0 | derived | 1.50 | 3 + 4 = 7. \\boxed{7} |" in added
    assert "| in no set | p5#s1#c1 | derived | 4.50 | 2 + 5 = 7 gives \\boxed{7} |" in added


def test_warns_when_a_heal_set_adds_nothing(tmp_path, monkeypatch):
    run = make_run(tmp_path, monkeypatch, kept_repairs=0)
    html = write_report(run).read_text()
    added = sections_of((run / "report" / "report.md").read_text())["What HEAL added"]
    assert added.strip().startswith(
        "**Warning: heal-3 equals heal-2 (the same 15 examples): no "
        "GEAR repair made it into stage III"
    )
    assert "PURE's drops in heal-3: top_lambda 1.**" in added
    assert "<p><strong>Warning: heal-3 equals heal-2" in html and "**" not in html


def test_warns_when_heal_equals_rejection_sampling(tmp_path):
    from collections import Counter

    from heal_batch.report.added import heal_added_blocks
    from heal_batch.report.collect import RunData, ids_digest

    digest = sum(ids_digest(i) for i in ("a#s0", "b#s1")) % 2**64
    assert digest == sum(ids_digest(i) for i in ("b#s1", "a#s0")) % 2**64  # order-free
    sets = {name: Counter(natural=2) for name in ("heal-1", "heal-2", "heal-3", "rs")}
    data = RunData(
        workdir=tmp_path, stages={}, curriculum=sets, set_digests=dict.fromkeys(sets, (2, digest))
    )
    warnings = [b for b in heal_added_blocks(data) if isinstance(b, str) and "Warning" in b]
    assert [w.split(":")[1] for w in warnings] == [
        " heal-2 equals heal-1 (the same 2 examples)",
        " heal-3 equals heal-2 (the same 2 examples)",
        " heal-3 equals rs (the same 2 examples)",
    ]
    assert "HEAL and RS-SFT differ in their training schedule only" in warnings[2]


def test_evaluation_pairs_checkpoints_with_rs_and_names_unequal_budgets(full_run):
    evaluation = sections_of((write_report(full_run).parent / "report.md").read_text())[
        "Evaluation"
    ]
    assert "| checkpoint | gsm8k vs RS-SFT |" in evaluation  # math500 has no per-problem counts
    assert "| HEAL stage III | +0.300 [+0.000, +0.600] |" in evaluation
    assert "| base student | -0.100 [" in evaluation and "| RS-SFT (rs) | +" not in evaluation
    assert "| HEAL stage III | heal-1 → heal-2 → heal-3 | 5 | 15 | 18 |" in evaluation
    assert "| RS-SFT (rs) | rs | 5 | 5 | 12 |" in evaluation
    assert (
        "**Unequal step budgets: RS-SFT trained 5 optimizer steps in all, but HEAL stage II "
        "10, HEAL stage III 15;"
    ) in evaluation


def test_paired_comparison_needs_per_problem_counts():
    from heal_batch.report.compare import paired_blocks

    greedy = [
        {"checkpoint": c, "benchmark": "arith", "correct_counts": None} for c in ("rs", "heal-3")
    ]
    assert "no per-problem results" in paired_blocks(greedy)[0]
    assert "RS-SFT (rs) was not evaluated" in paired_blocks(greedy[1:])[0]
    greedy = [  # the greedy pass pairs when there is no sampled one
        {"checkpoint": c, "benchmark": "arith", "correct_counts": None, "greedy_correct": v}
        for c, v in (("rs", [1, 0, 0, 1]), ("heal-3", [1, 1, 1, 1]))
    ]
    (cell,) = paired_blocks(greedy)[1].rows[0][1:]
    assert cell.startswith("+0.500 [")
    from heal_batch.report.collect import EVAL_KEYS

    assert {"correct_counts", "greedy_correct"} <= set(EVAL_KEYS)  # the report keeps both
    uneven = [
        {"checkpoint": name, "benchmark": "arith", "correct_counts": counts, "n_samples": 1}
        for name, counts in (("rs", [1, 0]), ("heal-3", [1]))
    ]
    assert paired_blocks(uneven)[1].rows == [["HEAL stage III", "-"]]  # not the same problems
