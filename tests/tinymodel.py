"""Write a tiny random-weight llama GGUF that llama.cpp can load and sample from (test-only helper).

The vocabulary is a SentencePiece-style ("llama" tokenizer model) one:

* ids 0-2: ``<unk>``, ``<s>`` (BOS), ``</s>`` (EOS);
* optionally ``<|im_start|>`` / ``<|im_end|>`` control tokens (when a chat template is written);
* 256 byte-fallback tokens ``<0x00>``..``<0xFF>``: any character outside the vocabulary (e.g. "é") is encoded as
  its UTF-8 bytes, so multi-byte characters get split across tokens;
* one normal token per printable ASCII character (space is ``▁``) and a few merges (``▁the``, ``ing``...).

All weights come from a fixed numpy seed, so the file (and therefore greedy output) is reproducible. The output
projection is scaled so that logits are spread but not peaked: sampled text varies from seed to seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_MERGES = ("▁t", "th", "he", "▁the", "in", "ng", "ing", "er", "an", "▁a", "on", "re", "▁is", "▁of", "▁and")


def _vocab(chat: bool) -> tuple[list[str], list[float], list[int]]:
    import gguf

    tt = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>"]
    types = [tt.UNKNOWN, tt.CONTROL, tt.CONTROL]
    if chat:
        tokens += ["<|im_start|>", "<|im_end|>"]
        types += [tt.CONTROL, tt.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [tt.BYTE] * 256
    chars = ["▁"] + [chr(c) for c in range(33, 127)] + ["\n"]
    # "\n" is also covered by <0x0A>; a normal token makes newlines cheap, as in real vocabularies
    tokens += chars
    types += [tt.NORMAL] * len(chars)
    tokens += list(_MERGES)
    types += [tt.NORMAL] * len(_MERGES)
    scores = [0.0] * len(tokens)
    # SentencePiece merges prefer higher scores; longer merges win over their parts
    for i, tok in enumerate(tokens):
        if types[i] == tt.NORMAL:
            scores[i] = -100.0 + 10.0 * len(tok)
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(
    path: str | Path,
    *,
    vocab: str = "bytes",
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    context_length: int = 2048,
    seed: int = 1234,
    logit_scale: float = 3.0,
    byte_logit_factor: float = 0.4,
    chat_template: str | None = None,
    add_bos: bool = True,
    name: str = "tiny-llama",
) -> Path:
    """Write the GGUF to ``path`` and return it. ``chat_template`` (a Jinja string) adds ChatML control tokens.

    ``logit_scale`` is the standard deviation of the output logits, roughly: ~3 gives varied sampled text.
    ``byte_logit_factor`` shrinks the byte tokens' logits so that sampled text is mostly printable.
    """
    import gguf

    if vocab != "bytes":
        raise ValueError(f"unknown tiny vocabulary {vocab!r} (only 'bytes')")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, scores, types = _vocab(chat_template is not None)
    n_vocab = len(tokens)
    head_dim = n_embd // n_head
    n_embd_kv = head_dim * n_head_kv
    rng = np.random.default_rng(seed)

    def w(rows: int, cols: int, scale: float | None = None) -> np.ndarray:
        s = scale if scale is not None else 1.0 / np.sqrt(cols)
        return (rng.standard_normal((rows, cols)) * s).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(n_vocab)

    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    writer.add_tensor("token_embd.weight", w(n_vocab, n_embd, 1.0))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    out = w(n_vocab, n_embd, logit_scale / np.sqrt(n_embd))
    out[np.array(types) == gguf.TokenType.BYTE] *= byte_logit_factor  # mostly printable text, some raw bytes
    writer.add_tensor("output.weight", out)
    for i in range(n_layer):
        p = f"blk.{i}."
        writer.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(p + "attn_q.weight", w(n_embd, n_embd))
        writer.add_tensor(p + "attn_k.weight", w(n_embd_kv, n_embd))
        writer.add_tensor(p + "attn_v.weight", w(n_embd_kv, n_embd))
        writer.add_tensor(p + "attn_output.weight", w(n_embd, n_embd))
        writer.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(p + "ffn_gate.weight", w(n_ff, n_embd))
        writer.add_tensor(p + "ffn_up.weight", w(n_ff, n_embd))
        writer.add_tensor(p + "ffn_down.weight", w(n_embd, n_ff))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
