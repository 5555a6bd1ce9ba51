"""The paper's two experiments: claim 1 (distributional -> Overton pluralism, :mod:`.diversity`), claim 2
(recoverability by in-context alignment, :mod:`.icl`), their verdicts (:mod:`.verdicts`) and both end to end
(:mod:`.replicate`). Submodules are imported on demand; importing this package loads no model."""
