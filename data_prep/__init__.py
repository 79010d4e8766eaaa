"""Corpus preparers: one module per corpus, each turning a corpus folder into Lhotse manifests
(``{corpus}_{recordings,supervisions,cuts}_{part}.jsonl.gz``) plus Kaldi-style lists
(``{part}/wav.scp``, ``utt2spk``, ...). ``dino-speech prepare CORPUS`` dispatches here."""
