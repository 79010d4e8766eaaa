"""A speechbrain ECAPA model folder as our model: how far our embeddings are from speechbrain's.

Builds a folder in the layout of ``spkrec-ecapa-voxceleb`` (its ``hyperparams.yaml``, a randomly
initialised ``ECAPA_TDNN`` saved as speechbrain saves it, BatchNorm statistics randomised) at
the test suite's small size and at spkrec's size (channels 1024 x 4 + 3072, 192-dim), embeds
waveforms of 1.0 / 1.47 / 0.51 / 2.5 s with speechbrain's own ``EncoderClassifier.encode_batch``
(one file at a time) and with ``Embedder.from_pretrained(folder)`` one at a time and as one
zero-padded batch, then exports the folder (TorchScript and ONNX, batched form) and prints the
export check (the exported model on a mixed-length batch against the eager embedder)::

    python bench/speechbrain_parity.py
"""

from __future__ import annotations

import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import write_speechbrain_folder  # noqa: E402

from dino_speech import Embedder  # noqa: E402
from dino_speech.export import export_embedder  # noqa: E402

LENGTHS = (16_000, 23_456, 8_123, 40_000)
SIZES = {
    "test size (channels 32 x 4 + 96, 24-dim)": {},
    "spkrec size (channels 1024 x 4 + 3072, 192-dim)": {
        "channels": [1024, 1024, 1024, 1024, 3072],
        "attention_channels": 128,
        "se_channels": 128,
        "res2net_scale": 8,
        "lin_neurons": 192,
    },
}


def main() -> None:
    from speechbrain.inference.speaker import EncoderClassifier
    from speechbrain.utils.fetching import LocalStrategy

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    gen = torch.Generator().manual_seed(1)
    waves = [0.1 * torch.randn(n, generator=gen) for n in LENGTHS]
    with tempfile.TemporaryDirectory() as tmp:
        for name, edits in SIZES.items():
            folder = write_speechbrain_folder(Path(tmp) / name.split()[0], **edits)
            classifier = EncoderClassifier.from_hparams(
                source=str(folder),
                savedir=str(Path(tmp) / f"{folder.name}_savedir"),
                overrides={"pretrained_path": str(folder)},
                local_strategy=LocalStrategy.NO_LINK,
                run_opts={"device": "cpu"},
            )
            with torch.no_grad():
                want = np.stack([classifier.encode_batch(w[None])[0, 0].numpy() for w in waves])
            embedder = Embedder.from_pretrained(folder, chunk_seconds=None)
            alone = np.stack([embedder.embed_array(w.numpy(), 16000) for w in waves])
            batched = embedder._embed_waves(waves, batch_size=len(waves))
            print(
                f"{name}: max |ours - speechbrain| one file at a time "
                f"{np.abs(alone - want).max():.2g}, as one padded batch "
                f"{np.abs(batched - want).max():.2g} (embeddings up to {np.abs(want).max():.2g})"
            )
            for fmt, suffix in (("torchscript", "pt"), ("onnx", "onnx")):
                out = Path(tmp) / f"{folder.name}.{suffix}"
                summary = export_embedder(folder, out, fmt, model_card=False)
                print(
                    f"  export {fmt} ({summary.input_form}): max |exported - eager| "
                    f"{summary.max_abs_diff:.2g} on lengths {summary.checked_lengths}"
                )


if __name__ == "__main__":
    main()
