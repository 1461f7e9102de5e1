"""Training-dynamics probes: a plain PyTorch library (torch, numpy, scipy only).

Nothing here touches the database or the service; a researcher can import these functions from
their own training script.  Every probe runs on the model's device and states its cost.
"""
