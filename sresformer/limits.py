"""The sizes this toolchain supports, in one place: every reader and every CLI option uses them.

A value outside them is refused in one line wherever it enters (a CLI option, a checkpoint,
a NIR file, an artifact), so the stages agree on what a valid model is.
"""

# Time steps per inference. MST's longest reported schedule is T of about 512 (Wang et al.,
# ICCV 2023, arXiv 2210.01208); 1024 leaves headroom while keeping [T, B, ...] tensors,
# the executor's per-step loops and chip runs bounded.
MAX_T = 1024
# Square input side in pixels: ImageNet variants run at 224; 1024 is far above any trained
# model and below a memory balloon of activations.
MAX_IMG_SIZE = 1024
