"""A tiny Llama-architecture model made locally: random weights and a word-level tokenizer
with a chat template. Real OpenAI-compatible servers (transformers serve, vLLM on CPU) load
it without any hub access."""

from __future__ import annotations

from pathlib import Path

from inferplan.bench.prompts import PROMPT_WORDS

# the benchmark's prompt words, so that synthetic prompts tokenize without unknown tokens
WORDS = [*PROMPT_WORDS, "hello", "world", "tiny", "model", "tokens", "stream", "fast", "slow"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def make_tiny_model(folder: Path, layers: int = 2, widths: tuple[int, int, int, int] = (256, 512, 4, 2)) -> Path:
    """Save the model and tokenizer in ``folder`` (seconds on a CPU); ``widths``: hidden size,
    MLP width, attention heads and KV heads."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS)) + list("abcdefghijklmnopqrstuvwxyz:.,!?"))}
    vocab |= {"user": len(vocab), "assistant": len(vocab) + 1, "system": len(vocab) + 2}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    hidden, width, heads, kv_heads = widths
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
