"""``text``: one UTF-8 file as a token stream for next-token prediction.

Tokens are bytes (vocab 256) or characters (the file's sorted alphabet).  The last
``test_fraction`` of the stream is the test split (contiguous, so no test window overlaps training
text).  An example is a window of ``context`` tokens and its targets the same window shifted by
one; windows are laid end to end, so a split of ``n`` tokens holds ``(n - 1) // context``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from server.datasets.arrays import Imported, Progress
from server.datasets.store import DatasetError, Manifest

MAX_CONTEXT = 8192


def windows(tokens: int, context: int) -> int:
    """Examples (context windows with their shifted targets) in a stream of ``tokens``."""
    return max(0, (tokens - 1) // context)


def read_text(
    path: Path,
    name: str,
    progress: Progress,
    tokens: Literal["char", "byte"] = "char",
    context: int = 64,
    test_fraction: float = 0.1,
) -> Imported:
    if not 1 <= context <= MAX_CONTEXT:
        raise DatasetError(f"context must lie in [1, {MAX_CONTEXT}], got {context}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"{path.name}: not UTF-8 text ({error.reason} at byte {error.start})"
        raise DatasetError(message) from None
    alphabet = None
    if tokens == "byte":
        ids, vocab = np.frombuffer(raw, np.uint8), 256
    else:
        alphabet = "".join(sorted(set(text)))
        index = {c: i for i, c in enumerate(alphabet)}
        dtype = np.uint16 if len(alphabet) <= 2**16 else np.uint32
        ids, vocab = np.fromiter((index[c] for c in text), dtype, len(text)), len(alphabet)
    progress(1, 1)
    cut = round((1 - test_fraction) * len(ids))
    train, test = ids[:cut], ids[cut:]
    if not (windows(len(train), context) and windows(len(test), context)):
        raise DatasetError(
            f"{path.name}: {len(ids)} tokens do not make one context window of {context} in "
            "each split; use a longer text or a shorter context"
        )
    manifest = Manifest(
        name=name,
        kind="text",
        source="text",
        shape=(context,),
        n_classes=vocab,
        train=windows(len(train), context),
        test=windows(len(test), context),
        dtype=str(ids.dtype),
        vocab=vocab,
        alphabet=alphabet,
        tokens=tokens,
    )
    return Imported(manifest, {"tokens_train": train, "tokens_test": test})
