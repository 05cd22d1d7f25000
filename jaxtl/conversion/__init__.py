"""Converting other libraries' checkpoints into jaxtl pretrained checkpoints (the library under
the `python -m jaxtl.convert_weights.*` programs of tools/convert_weights/ and under
`model.init=hf-hub:ORG/NAME`).

`reading` reads weight files without running anyone's code; `timm_layout` maps timm's
state-dict names and layouts onto jaxtl's variables, `convert` checks a timm-named state dict
against the model and gives the checkpoint's `PretrainedInfo`; `timm` (timm and torchvision
files, the timm hub layout) and `bit` (BiT `.npz`) convert; `hf`, `open_clip` and `big_vision`
rename other libraries' ViTs into timm's names, pick the architecture (`vit_match`) and write
through `foreign`; `hub_layouts` lists the Hugging Face hub layouts and their converters;
`timm_export` is `timm_layout` in reverse (`python -m jaxtl.export`). The on-disk format
written: `jaxtl.workdir.pretrained`. What the converters know of each architecture is its
model family's `TimmCheckpoint` (jaxtl/models/<family>.py). Nothing here imports torch.
"""
