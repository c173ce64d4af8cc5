"""3D reconstruction of a clip: 68 landmarks per frame, 5-point alignment, and the R-Net.

landmarks.py  detector backends ("fan", "file") and the shared clean-up (gaps, smoothing)
alignment.py  5 points, the POS fit, 224x224 aligned crops and the fixed per-clip window
rnet.py       the ResNet-50 coefficient regressor, loadable from Deep3DFaceRecon checkpoints
losses.py     the R-Net's self-supervised losses (photometric, landmarks, priors, identity)
train.py      the R-Net training stage for the shared Trainer (`talkface recon train`)
fitting.py    a clip's coefficients: R-Net per frame, then the whole-clip refinement
"""
