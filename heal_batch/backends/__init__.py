"""Model backends: generation (transformers, vLLM), exact teacher-forced scoring, entropy helpers.

No knowledge of HEAL lives here. Importing this package is cheap: torch, transformers and vllm are
imported inside the functions that need them.

    from heal_batch.backends.base import GenerationParams, SampleRequest, render_chat
    from heal_batch.backends.hf import HFGenerator          # exact entropy
    from heal_batch.backends.vllm import VLLMGenerator      # top-K entropy estimate
    from heal_batch.backends.scorer import score            # exact scores of given text
    from heal_batch.backends.models import resolve_model, load_model_and_tokenizer
"""
