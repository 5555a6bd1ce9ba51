"""The lower bound of a ``replicate`` run: what its tokens need at the engine's own measured speed.

bound = sum over the run's sampling passes (one per system and model) of
    generated tokens / (engine decode tok/s at the batch size the pass ran at x slowdown at the pass's depth)
  + prompt tokens evaluated / engine prompt tok/s

Token counts come from the run's ``samples.jsonl`` and ``aux/samples.jsonl`` (per-sample ``n_tokens``, per-group
``prompt_tokens_evaluated``). The throughputs come from :func:`calibrate`: a short measurement through the engine
itself (same model files, threads and engine settings as ``replicate``) on a fixed prompt, with end-of-generation
ignored so every sequence decodes the same number of tokens. Decode tok/s is the engine's own step timing
(``stats["gen_step_us"]``: ``llama_decode`` plus sampling, detokenisation and stop matching of one step); prompt
tok/s is a fresh prompt of ``PROMPT_TOKENS`` tokens evaluated through ``generate`` (one token generated), after
a warm-up (the first ``llama_decode`` of a context allocates its buffers).

Context depth: the calibration decodes right behind a short prompt, where a step is cheapest; the run decodes
behind prompts of up to ~1,500 tokens and answers of up to ``max_tokens``, and every step attends over the KV
cells in use. So the calibration also measures decode tok/s as the context deepens (``depth_steps`` steps at the
batch sizes of :data:`DEPTH_BATCHES`, one point per :data:`DEPTH_WINDOW` steps), and :func:`bound` scales each
pass's decode speed by the slowdown measured at the pass's depth (:func:`pass_depth`: the prompt's cells behind
each sample, i.e. shared by a group's N samples in the unified KV layout and copied to each in the streams layout,
plus the token-weighted mean position in the answer). ``decode_short_s`` keeps the bound
without that factor, for comparison.

The batch size of a pass is what the scheduler can hold at once: at most ``max_seqs`` sequences and as many
N-sample jobs as fit in the KV budget (a job reserves its prompt plus N x max_tokens cells), never more than the
pass's samples. A pass's tail (the last sequences finishing alone) runs at a smaller batch; the bound ignores it,
so it is optimistic, i.e. a true lower bound for this engine's per-step speed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

PROMPT_TOKENS = 256
DECODE_STEPS = 32
DEPTH_BATCHES = (8, 32)  # batch sizes whose decode speed is also measured at depth
DEPTH_WINDOW = 32  # steps per point of a depth curve
_WORDS = (
    "The lighthouse keeper walked along the cliff every evening and counted the ships that passed the point, "
    "writing their names in a small blue notebook that his grandmother had given him before she moved away to "
    "the city where the trains ran all night and nobody ever seemed to sleep or look at the sea at all."
).split()


def records(run: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The run's group records without an error, from ``samples.jsonl`` ("." ) and ``aux/samples.jsonl`` ("aux")."""
    for f in (run / "samples.jsonl", run / "aux" / "samples.jsonl"):
        if not f.is_file():
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if not r.get("error"):
                yield (f.parent.name if f.parent != run else "."), r


def passes(run: Path) -> list[dict[str, Any]]:
    """One row per (file, system, model, sampling max_tokens): groups, samples, N, tokens generated and evaluated."""
    rows: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for file, r in records(run):
        max_tokens = int((r.get("sampling") or {}).get("max_tokens") or 0)
        key = (file, str(r.get("system")), str(r.get("model")), max_tokens)
        row = rows.setdefault(
            key,
            {
                "file": key[0],
                "system": key[1],
                "model": key[2],
                "max_tokens": max_tokens,
                "n": 0,
                "groups": 0,
                "samples": 0,
                "generated_tokens": 0,
                "prompt_tokens": 0,
                "prompt_tokens_evaluated": 0,
                "group_seconds": 0.0,
                "token_positions": 0,
            },
        )
        row["groups"] += 1
        row["n"] = max(row["n"], int(r.get("n") or len(r["samples"])))
        row["samples"] += len(r["samples"])
        lengths = [int(s.get("n_tokens") or 0) for s in r["samples"]]
        row["generated_tokens"] += sum(lengths)
        row["token_positions"] += sum(n * (n - 1) // 2 for n in lengths)  # sum of 0..n-1 per sample
        row["prompt_tokens"] += int(r.get("prompt_tokens") or 0)
        row["prompt_tokens_evaluated"] += int(r.get("prompt_tokens_evaluated") or 0)
        row["group_seconds"] += float(r.get("seconds") or 0.0)
    return list(rows.values())


def engine_passes(run: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(file, system) -> the sampling passes' wall seconds and the engine's step statistics, summed over the
    passes the manifests record (``systems.SYSTEM.passes``, written by every ``sample_run`` that generated)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for f in (run / "manifest.json", run / "aux" / "manifest.json"):
        if not f.is_file():
            continue
        file = f.parent.name if f.parent != run else "."
        for system, entry in (json.loads(f.read_text(encoding="utf-8")).get("systems") or {}).items():
            total: dict[str, Any] = {"passes": 0, "seconds": 0.0, "steps_by_batch": {}}
            for p in entry.get("passes") or []:
                total["passes"] += 1
                total["seconds"] += float(p.get("seconds") or 0.0)
                for k, v in (p.get("engine") or {}).items():
                    total[k] = total.get(k, 0) + v
                for b, (steps, us) in (p.get("steps_by_batch") or {}).items():
                    acc = total["steps_by_batch"].setdefault(int(b), [0, 0])
                    acc[0] += steps
                    acc[1] += us
            if total["passes"]:
                out[(file, system)] = total
    return out


def time_split(
    row: dict[str, Any], eng: dict[str, Any], curve: dict[Any, float] | None = None
) -> dict[str, float]:
    """Where a pass's wall time went, from its engine statistics: generation-only steps (and the llama_decode
    part of them), steps that also evaluated prompt tokens, shared-prefix evaluations, and the rest (admission,
    the caller writing records, the scheduler's waits); plus the mean batch and tok/s of the generation-only
    steps, against the bound's decode tok/s for the pass.

    With the steps by batch size and the calibration's decode ``curve``, the generation-only time splits further:
    ``mix_s`` is what those steps need at the calibrated speed of each step's own batch size (times the pass's
    depth factor), so ``gen_steps_s / mix_s`` is the per-step slowdown beyond the calibration (cache holes,
    noise), and ``mix_s`` over the same tokens at the bound's batch size is what the smaller batches cost (tails,
    admission)."""
    steps = max(1, eng.get("gen_steps", 0))
    gen_s = eng.get("gen_step_us", 0) / 1e6
    split = {
        "wall_s": eng["seconds"],
        "gen_steps_s": gen_s,
        "gen_decode_s": eng.get("gen_step_decode_us", 0) / 1e6,
        "mixed_steps_s": eng.get("mixed_step_us", 0) / 1e6,
        "prefix_s": eng.get("prefix_us", 0) / 1e6,
        "mean_batch": eng.get("gen_step_tokens", 0) / steps,
        "gen_tok_s": eng.get("gen_step_tokens", 0) / gen_s if gen_s else 0.0,
    }
    split["other_s"] = split["wall_s"] - split["gen_steps_s"] - split["mixed_steps_s"] - split["prefix_s"]
    if row.get("decode_tok_s"):
        split["gen_tok_s_over_bound"] = split["gen_tok_s"] / row["decode_tok_s"]
    hist = eng.get("steps_by_batch") or {}
    if curve and hist and row.get("decode_tok_s"):
        factor = row.get("depth_factor", 1.0)
        split["mix_s"] = sum(b * steps / (decode_at(curve, b) * factor) for b, (steps, _) in hist.items())
        split["at_bound_batch_s"] = eng.get("gen_step_tokens", 0) / row["decode_tok_s"]
    return split


def batch_used(row: dict[str, Any], *, max_seqs: int, kv_budget: int) -> int:
    """Sequences decoded together in a pass: max_seqs, the KV budget, and the pass's own samples bound it."""
    n = max(1, row["n"])
    mean_prompt = row["prompt_tokens"] / max(1, row["groups"])
    jobs = max(1, int(kv_budget // max(1.0, mean_prompt + n * row["max_tokens"])))
    if n <= max_seqs:  # a job takes N sequences at once, so whole jobs fill max_seqs
        jobs = min(jobs, max_seqs // n)
    return max(1, min(max_seqs, row["samples"], n * jobs))


def decode_at(curve: dict[Any, float], b: float) -> float:
    """Decode tok/s at batch ``b``: measured, or linearly interpolated between the measured batch sizes (clamped
    to the end points; also used for any such curve, e.g. speed over depth)."""
    pts = sorted(curve.items())
    if b in curve:
        return curve[b]
    if b <= pts[0][0]:
        return pts[0][1]
    for (b0, v0), (b1, v1) in zip(pts, pts[1:], strict=False):
        if b0 <= b <= b1:
            return v0 + (v1 - v0) * (b - b0) / (b1 - b0)
    return pts[-1][1]


def _text_of_tokens(gen: Any, n: int, offset: int) -> str:
    words = [_WORDS[(offset + i) % len(_WORDS)] for i in range(4 * n)]
    while gen.count_tokens(" ".join(words)) > n:
        words = words[: max(1, len(words) - max(1, (gen.count_tokens(" ".join(words)) - n) // 2))]
    return " ".join(words)


def calibrate(
    models: dict[str, Path],
    batches: Iterable[int],
    *,
    threads: int | None,
    n_ctx: int = 2048,
    round_no: int = 0,
    max_tokens: int | None = None,
    depth_steps: int = 0,
    depth_batches: Iterable[int] = DEPTH_BATCHES,
) -> dict[str, dict[str, Any]]:
    """Engine decode tok/s at each batch size and prompt tok/s, per model (a fresh engine per model, sized as the
    run sizes it: same ``max_tokens`` hint, so the same sequence budget and KV cache). With ``depth_steps``, also
    decode tok/s as the context deepens (:func:`_depth_curve`) at each of ``depth_batches``."""
    from overtonlite.backends.base import GenRequest
    from overtonlite.backends.llamacpp import LlamaCppGenerator
    from overtonlite.config import SamplingConfig

    out: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        gen = LlamaCppGenerator(
            path, name=name, n_ctx=n_ctx, n_threads=threads, ignore_eos=True, max_tokens=max_tokens
        )
        try:
            res: dict[str, Any] = {
                "threads": gen.n_threads,
                "max_seqs": gen.max_seqs,
                "kv_budget": gen.kv.budget,
                "kv_layout": gen.kv_layout,
                "decode_tok_s": {},
            }
            short = _text_of_tokens(gen, 32, offset=3)
            sc = SamplingConfig(temperature=0.5, repetition_penalty=1.1, max_tokens=DECODE_STEPS)
            # warm-up (first llama_decode allocates buffers and starts the thread pool), not timed
            list(gen.generate([GenRequest("cal-warm", short, (1,), sc.replace(max_tokens=2))]))
            for b in _capped(batches, gen.max_seqs):
                toks0, us0 = gen.stats["gen_step_tokens"], gen.stats["gen_step_us"]
                list(gen.generate([GenRequest(f"cal-{b}", short, tuple(range(1, b + 1)), sc)]))
                toks, us = gen.stats["gen_step_tokens"] - toks0, gen.stats["gen_step_us"] - us0
                res["decode_tok_s"][b] = toks / (us / 1e6) if us else 0.0
            # prompt throughput: a text sharing no prefix with the one above, one generated token
            text = _text_of_tokens(gen, PROMPT_TOKENS, offset=7 * round_no + 11)
            before = gen.stats["prompt_tokens_evaluated"]
            t0 = time.perf_counter()
            list(gen.generate([GenRequest("cal-prompt", text, (1,), SamplingConfig(max_tokens=1))]))
            dt = time.perf_counter() - t0
            evaluated = gen.stats["prompt_tokens_evaluated"] - before
            res["prompt_tok_s"] = evaluated / dt
            res["prompt_tokens"] = evaluated
            if depth_steps:
                res["depth_tok_s"] = {
                    b: _depth_curve(gen, short, sc, b, depth_steps)
                    for b in _capped(depth_batches, gen.max_seqs)
                }
            out[name] = res
        finally:
            gen.close()
    return out


def _capped(batches: Iterable[int], max_seqs: int) -> list[int]:
    """The batch sizes to measure, none above what the engine runs at once (larger ones would measure max_seqs)."""
    return sorted({min(b, max_seqs) for b in batches})


def _depth_curve(gen: Any, text: str, sc: Any, batch: int, steps: int) -> list[tuple[float, float]]:
    """Decode tok/s of ``batch`` sequences over ``steps`` steps from one short prompt, per window of
    :data:`DEPTH_WINDOW` steps: ``[(depth, tok/s), ...]``, depth as :func:`pass_depth` defines it (the prompt's
    cells behind each sequence, plus the window's middle position in the answer)."""
    from overtonlite.backends.base import GenRequest

    marks: list[tuple[int, int]] = []

    def on_tokens(_: int) -> None:
        marks.append((gen.stats["gen_step_tokens"], gen.stats["gen_step_us"]))

    prompt = gen.count_tokens(text)
    if gen.kv_layout != "streams":
        prompt /= batch  # one copy of the prompt's cells, shared by the batch
    req = GenRequest(f"cal-depth-{batch}", text, tuple(range(1, batch + 1)), sc.replace(max_tokens=steps))
    list(gen.generate([req], on_tokens=on_tokens))
    curve = []
    # marks[0] is the step that also evaluated the prompt (not a generation-only step): windows start after it
    for w in range(1, len(marks) - DEPTH_WINDOW + 1, DEPTH_WINDOW):
        (t0, u0), (t1, u1) = marks[w - 1], marks[w - 1 + DEPTH_WINDOW]
        if u1 > u0:
            curve.append((prompt + w + DEPTH_WINDOW / 2, (t1 - t0) / ((u1 - u0) / 1e6)))
    return curve


def pass_depth(row: dict[str, Any], *, shared_prompt: bool = True) -> float:
    """The KV cells per sequence behind a pass's average generated token: the prompt's cells (shared by the N
    samples of its group in the unified cache, ``shared_prompt``; a copy per sample with a stream per sequence),
    plus the token-weighted mean position in the answer."""
    prompt = row["prompt_tokens"] / max(1, row["groups"]) / (max(1, row["n"]) if shared_prompt else 1)
    return prompt + row.get("token_positions", 0) / max(1, row["generated_tokens"])


def depth_factor(curves: dict[int, list[tuple[float, float]]], batch: int, depth: float) -> float:
    """Decode speed at ``depth`` relative to the curve's first window, interpolated over depth and then over the
    measured batch sizes (clamped at both ends; 1.0 without curves)."""
    if not curves:
        return 1.0

    def at(curve: list[tuple[float, float]]) -> float:  # the same clamped interpolation, over depth
        return decode_at({d: v / curve[0][1] for d, v in curve}, depth) if curve else 1.0

    factors = {b: at(c) for b, c in sorted(curves.items())}
    return decode_at(factors, batch)


def merge_calibrations(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean of the calibration rounds (taken before and after the run, to damp drift on a shared machine)."""
    merged: dict[str, dict[str, Any]] = {}
    for name in rounds[0]:
        rs = [r[name] for r in rounds if name in r]
        merged[name] = {
            "threads": rs[0]["threads"],
            "max_seqs": rs[0]["max_seqs"],
            "kv_budget": rs[0]["kv_budget"],
            "prompt_tok_s": sum(r["prompt_tok_s"] for r in rs) / len(rs),
            "decode_tok_s": {
                b: sum(r["decode_tok_s"][b] for r in rs) / len(rs) for b in rs[0]["decode_tok_s"]
            },
            "depth_tok_s": next((r["depth_tok_s"] for r in rs if r.get("depth_tok_s")), {}),
            "rounds": rs,
        }
    return merged


def bound(rows: list[dict[str, Any]], cal: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-pass and total lower bound (seconds); rows need ``batch``.

    ``decode_s`` is the context-aware bound: decode tok/s at the pass's batch size (short-context calibration)
    times the slowdown the depth curves measured at the pass's depth (:func:`pass_depth`). ``decode_short_s`` is
    the bound without that factor, as if every token were decoded right behind a 32-token prompt."""
    total_gen = total_short = total_prompt = 0.0
    for row in rows:
        c = cal[row["model"]]
        short = decode_at(c["decode_tok_s"], row["batch"])
        row["depth"] = round(pass_depth(row, shared_prompt=c.get("kv_layout") != "streams"), 1)
        row["depth_factor"] = depth_factor(c.get("depth_tok_s") or {}, row["batch"], row["depth"])
        row["decode_tok_s_short"] = short
        row["decode_tok_s"] = short * row["depth_factor"]
        row["prompt_tok_s"] = c["prompt_tok_s"]
        row["bound_decode_s"] = row["generated_tokens"] / row["decode_tok_s"]
        row["bound_decode_short_s"] = row["generated_tokens"] / short
        row["bound_prompt_s"] = row["prompt_tokens_evaluated"] / row["prompt_tok_s"]
        total_gen += row["bound_decode_s"]
        total_short += row["bound_decode_short_s"]
        total_prompt += row["bound_prompt_s"]
    return {
        "decode_s": total_gen,
        "prompt_s": total_prompt,
        "total_s": total_gen + total_prompt,
        "decode_short_s": total_short,
        "total_short_s": total_short + total_prompt,
    }


def full_preset_passes(
    quick_rows: list[dict[str, Any]], full: dict[str, Any], *, summary_max_tokens: int, quick_cap_words: int
) -> list[dict[str, Any]]:
    """An ESTIMATE of the full preset's passes from a quick run: the full preset's groups x N x max_tokens, scaled
        by each system's share of max_tokens actually generated in the quick run (its "fill"), and prompt tokens per
        group from the quick run (ICL prompts scaled by the answer-cap ratio). Systems the quick run lacks borrow
        from the closest one it has (``base+summary`` from base, fixed examples from URIAL's shared preamble, kNN
    from the kNN condition), plus the summary tokens a ``+summary`` hint adds to each prompt (test query and the k
    examples)."""
    by_sys = {r["system"]: r for r in quick_rows}
    icl_quick = [r for r in quick_rows if r["file"] == "." and r["system"] not in ("base", "chat", "urial")]
    icl_quick = icl_quick or [r for r in quick_rows if r["system"] == "urial"]
    chat = by_sys.get("chat")
    oe, cq = full["prompts"]["open-ended"], full["prompts"]["contested"]
    n, mt, cap = full["n"], full["max_tokens"], full["answer_cap_words"] / max(1, quick_cap_words)

    def fill(rows: list[dict[str, Any]]) -> float:
        return sum(r["generated_tokens"] for r in rows) / max(
            1, sum(r["samples"] * r["max_tokens"] for r in rows)
        )

    def per_group(rows: list[dict[str, Any]], key: str) -> float:
        return sum(r[key] for r in rows) / max(1, sum(r["groups"] for r in rows))

    def row(
        file: str,
        system: str,
        like: list[dict[str, Any]],
        groups: int,
        nn: int,
        max_tokens: int,
        scale: float = 1.0,
    ) -> dict[str, Any]:
        samples = groups * nn
        generated = round(samples * max_tokens * fill(like))
        mean_pos = sum(r.get("token_positions", 0) for r in like) / max(
            1, sum(r["generated_tokens"] for r in like)
        )
        mean_pos *= max_tokens / max(1, like[0]["max_tokens"])  # answers run longer under a larger cap
        return {
            "file": file,
            "system": system,
            "model": like[0]["model"],
            "max_tokens": max_tokens,
            "n": nn,
            "groups": groups,
            "samples": samples,
            "generated_tokens": generated,
            "token_positions": round(generated * mean_pos),
            "prompt_tokens": round(groups * per_group(like, "prompt_tokens") * scale),
            "prompt_tokens_evaluated": round(groups * per_group(like, "prompt_tokens_evaluated") * scale),
            "estimated_like": [r["system"] for r in like],
        }

    # diversity samples base, urial and chat on both sets; the ICL conditions "base" and "urial" render the same
    # prompts and are resumed from them (no new tokens)
    diversity = ("base", "urial", "chat")
    out = [row(".", s, [by_sys[s]], oe + cq, n, mt, scale=cap if s == "urial" else 1.0) for s in diversity]
    summ = by_sys.get("summaries")
    summary_tokens = summ["generated_tokens"] / max(1, summ["samples"]) if summ else 0.0
    for cond in full["conditions"]:
        if cond in diversity:
            continue
        selection, _, hint = cond.partition("+")
        if cond in by_sys:
            out.append(row(".", cond, [by_sys[cond]], oe, n, mt, scale=cap))
            continue
        # closest quick pass: base prompts for "base", the shared URIAL preamble for fixed examples, else kNN
        if selection == "base":
            like = [by_sys["base"]]
        elif selection in ("urial", "fixed-aligned") and "urial" in by_sys:
            like = [by_sys["urial"]]
        else:
            like = [r for r in icl_quick if r["system"].startswith(selection)] or icl_quick
        r = row(".", cond, like, oe, n, mt, scale=1.0 if selection == "base" else cap)
        if hint == "summary" and not any(x["system"].endswith("+summary") for x in like):
            extra = round(oe * summary_tokens * (1 if selection == "base" else full["k"] + 1))
            r["prompt_tokens"] += extra
            r["prompt_tokens_evaluated"] += extra
        out.append(r)
    if any(c.startswith("fixed-aligned") for c in full["conditions"]):
        out.append(row("aux", "aligned-examples", [chat], 3, 1, mt))
    if any(c.endswith("+summary") for c in full["conditions"]):
        like = [by_sys["summaries"]] if "summaries" in by_sys else [chat]
        out.append(row("aux", "summaries", like, oe + 3, 1, summary_max_tokens, scale=cap))
    return out
