"""Verdicts from the authors' own Llama-2-7B generations (LIMA-OE), next to the paper's conclusions.

    python benchmarks/replicate_from_reference.py --data ../shared/reference [--out DIR] [--limit K] [--json FILE]

Runs ``overtonlite replicate --from DATA/lima-oe/responses.jsonl --role base=llama-2-base --role chat=llama-2-chat
--role urial=llama-2-icl --role hinted=llama-2-icl-chat-summary --same-family`` through its library call (no model
is loaded; the default embedder scores), then prints one row per finding: the paper's conclusion (from
overtonlite/paper.py numbers and paper-protocol.md §3), overtonlite's estimate with its 95% CI, the verdict, and
for inconclusive findings the prompts that would decide them. Validation only: reads the reference data from
outside the repository and writes nothing into it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from overtonlite.experiments.from_generations import replicate_from  # noqa: E402
from overtonlite.paper import JACCARD_TO_CHAT, LEXICAL  # noqa: E402

ROLES = ["base=llama-2-base", "chat=llama-2-chat", "urial=llama-2-icl", "hinted=llama-2-icl-chat-summary"]


def paper_conclusions() -> dict[str, str]:
    """The paper's conclusion per finding, with the published numbers it rests on."""
    jb, jc = LEXICAL["llama-2-base"][0], LEXICAL["llama-2-chat"][0]
    wb, wc = LEXICAL["llama-2-base"][2], LEXICAL["llama-2-chat"][2]
    self_j = JACCARD_TO_CHAT["llama-2-chat"]
    summ_j, urial_j = JACCARD_TO_CHAT["llama-2-icl-chat-summary"], JACCARD_TO_CHAT["llama-2-icl"]
    return {
        "lexical_similarity": f"yes: apparent diversity drop (Jaccard {jc:.3f} vs {jb:.3f})",
        "length": f"yes: aligned answers longer ({wc} vs {wb} words)",
        "both_share": "yes, on ConflictingQA (not in LIMA-OE)",
        "yes_no_split": "yes, on ConflictingQA (not in LIMA-OE)",
        "coverage": "yes: base information mostly in the aligned answer (GPT-4: 0.66 of base samples score <= 2)",
        "reaches_self_cosine": "about as similar to chat as chat to itself (TF-IDF cosine 0.364 vs 0.393)",
        "reaches_self_jaccard": f"close but below on Jaccard ({summ_j:.3f} vs {self_j:.3f}, ratio "
        f"{summ_j / self_j:.2f})",
        "beats_urial": f"yes: the hint helps (Jaccard to chat s0 {summ_j:.3f} vs URIAL {urial_j:.3f})",
    }


def _num(x: object) -> str:
    return f"{x:.3f}" if isinstance(x, int | float) else "–"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent.parent / "shared" / "reference")
    ap.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--limit", type=int, default=None, help="first K prompts only")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    src = args.data / "lima-oe" / "responses.jsonl"
    if not src.is_file():
        print(f"reference data not found: {src}", file=sys.stderr)
        return 2
    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.TemporaryDirectory()
        out = Path(tmp.name) / "run"
    t0 = time.perf_counter()
    res = replicate_from(src, roles=ROLES, out=out, seed=0, limit=args.limit, same_family=True, report=True)
    seconds = time.perf_counter() - t0
    paper = paper_conclusions()
    rows = []
    for claim_name, claim in res.claims.items():
        for f in claim.get("findings") or []:
            ci = f.get("ci")
            rows.append(
                {
                    "claim": claim_name,
                    "finding": f["name"],
                    "paper": paper.get(f["name"], "–"),
                    "estimate": f.get("estimate"),
                    "ci": ci,
                    "verdict": f["verdict"],
                    "prompts_needed": f.get("prompts_needed"),
                    "samples": f.get("samples"),
                }
            )
    print(
        f"# replicate --from on LIMA-OE (Llama-2-7B), {res.results['settings']['prompts']['selected']} prompts, "
        f"{seconds:.0f} s\n"
    )
    print("| claim | finding | paper | overtonlite estimate (95% CI) | verdict |")
    print("|---|---|---|---|---|")
    for r in rows:
        ci = f" [{_num(r['ci'][0])}, {_num(r['ci'][1])}]" if r["ci"] else ""
        verdict = r["verdict"] + (
            f" (≈{r['prompts_needed']} prompts would decide)" if r["prompts_needed"] else ""
        )
        print(f"| {r['claim']} | {r['finding']} | {r['paper']} | {_num(r['estimate'])}{ci} | {verdict} |")
    print()
    for name, claim in res.claims.items():
        print(f"{name}: {claim['verdict']}")
        for line in claim.get("lines") or []:
            print(f"  - {line}")
    print(f"\ntimings: {res.timings}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "claims": {k: v["verdict"] for k, v in res.claims.items()},
                    "seconds": seconds,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
