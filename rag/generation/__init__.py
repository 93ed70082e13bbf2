"""Generation stage: the llama.cpp chat model (llm), the model registry (models), prompts under a token budget (prompting), chat memory."""
