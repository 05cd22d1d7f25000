"""`python -m jaxtl.export --workdir RUN --out DIR`: the same program as
`python -m jaxtl.commands.export` (merged weights as a jaxtl pretrained folder and, where timm
has the architecture, a timm state dict)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("jaxtl.commands.export", run_name="__main__", alter_sys=True)
