"""The HEAL method as pure functions over plain data: no model, no file I/O, no scheduler.

- ``steps``: split a completion into blank-line steps over its tokens.
- ``gear``: breakpoint strategies (``entropy-surge``, ``max-entropy``, ``random``, ``start``).
- ``hints``: build, inject and strip hindsight hints; answer-guided prompts; leak detection.
- ``answers``: the token span of the last ``\\boxed{}`` answer.
- ``pure``: step perplexities, answer uncertainty, the PURE ratio and the pooled keep/drop decision.
- ``pace``: difficulty buckets, curriculum stage membership, per-problem caps.
- ``decontam``: n-gram decontamination against benchmarks and near-duplicate keys.
- ``seeds``: process-independent seeds.

These modules import only the standard library, so they load instantly and test on hand-made data.
"""
